"""Bad specs: every one raises SpecError naming the file, the line, the YAML path and what is allowed.

The corpus below is written as YAML files; each case gives the YAML path and the line the first
issue must point at, and a regex its message must match. The CLI turns the same errors into one
``error:`` line per issue on stderr and exit status 2, without a traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archsearch
from archsearch import SpecError
from archsearch._errors import format_path
from archsearch.cli import app
from archsearch.spec import ZOO_DIR, load_spec

MISSING = object()  # the spec file does not exist
DIRECTORY = object()  # the spec "file" is a directory


def case(name: str, text: str | object, path: str, line: int | None, match: str):
    """One malformed spec; ``text`` is dedented, so the cases can be indented in the source."""
    if isinstance(text, str):
        text = textwrap.dedent(text).lstrip("\n")
    return pytest.param(text, path, line, match, id=name)


# A small transformer and a small bottleneck spec, for reference (every case spells its file out):
#
#   1 input: {size: 32, channels: 3}            1 input: {size: 32}
#   2 stages:                                   2 stages:
#   3   - embed: {kind: patch, stride: 4}       3   - dim: 64
#   4     dim: 64                               4     depth: 1
#   5     depth: 2                              5     mixer: conv
#   6     mixer: {kind: attention, heads: 4}
#   7 head: {pool: avg, num_classes: 10}

CORPUS = [
    # ------------------------------------------------------------------ unknown keys
    case(
        "unknown-key-root",
        """
        foo: 1
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        """,
        "foo",
        1,
        r"unknown key 'foo' in Spec; allowed: name, input, stem, depths, stages, head",
    ),
    case(
        "unknown-key-stage",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer: conv
            bogus: 3
        """,
        "stages[0].bogus",
        6,
        r"unknown key 'bogus' in Stage; allowed: embed, dim, depth, block, mixer, mlp_ratio, expansion",
    ),
    case(
        "unknown-key-mixer",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer: {kind: conv, heads: 2}
        """,
        "stages[0].mixer.heads",
        5,
        r"unknown key 'heads' in ConvMixer \(kind 'conv'\); allowed: kind, kernel, groups$",
    ),
    case(
        "unknown-key-embed",
        """
        input: {size: 32}
        stages:
          - embed:
              kind: patch
              stride: 4
              kernel: 4
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 4}
        """,
        "stages[0].embed.kernel",
        6,
        r"unknown key 'kernel' in PatchEmbed \(kind 'patch'\); "
        r"allowed: kind, stride, norm, norm_first, bias$",
    ),
    case(
        "unknown-key-head-with-suggestion",
        """
        input: {size: 32}
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        head:
          pool: avg
          classes: 10
        """,
        "head.classes",
        6,
        r"unknown key 'classes' in Head \(did you mean 'num_classes'\?\); "
        r"allowed: pool, num_classes, dropout",
    ),
    case(
        "unknown-key-input-with-suggestion",
        """
        input:
          size: 32
          chans: 3
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        """,
        "input.chans",
        3,
        r"unknown key 'chans' in InputSpec \(did you mean 'channels'\?\); allowed: size, channels$",
    ),
    case(
        "unknown-key-stem",
        """
        input: {size: 64}
        stem: {kind: resnet, width: 64}
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        """,
        "stem.width",
        2,
        r"unknown key 'width' in ResNetStem \(kind 'resnet'\); allowed: kind, channels$",
    ),
    case(
        "unknown-key-that-is-a-number",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer: conv
            3: 4
        """,
        "stages[0].3",
        6,
        r"unknown key 3 in Stage; allowed: embed, dim",
    ),
    # ------------------------------------------------------------------ wrong types
    case(
        "depth-quoted-number",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: '3'
            mixer: conv
        """,
        "stages[0].depth",
        4,
        r"expected an integer; a quoted number is a string: write 3 without quotes \(got '3'\)$",
    ),
    case(
        "depth-word",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: three
            mixer: conv
        """,
        "stages[0].depth",
        4,
        r"stages\[0\]\.depth: expected an integer \(got 'three'\)$",
    ),
    case(
        "depth-float",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 2.5
            mixer: conv
        """,
        "stages[0].depth",
        4,
        r"expected an integer \(got 2\.5\)$",
    ),
    case(
        "dim-whole-float",
        """
        input: {size: 32}
        stages:
          - dim: 64.0
            depth: 1
            mixer: conv
        """,
        "stages[0].dim",
        3,
        r"expected an integer; write 64 without the decimal point \(got 64\.0\)$",
    ),
    case(
        "depth-bool",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: true
            mixer: conv
        """,
        "stages[0].depth",
        4,
        r"expected an integer, not true/false \(got true\)$",
    ),
    case(
        "stages-mapping-not-list",
        """
        input: {size: 32}
        stages:
          dim: 64
          depth: 1
          mixer: conv
        """,
        "stages",
        2,
        r"stages: expected a list \(got \{'dim': 64",
    ),
    case(
        "head-list-not-mapping",
        """
        input: {size: 32}
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        head:
          - avg
        """,
        "head",
        4,
        r"head: expected a mapping \(got \['avg'\]\); allowed: keys pool, num_classes, dropout, norm",
    ),
    case(
        "mixer-list-not-mapping",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer: [conv]
        """,
        "stages[0].mixer",
        5,
        r"expected a mapping \(got \['conv'\]\); "
        r"allowed: a kind name \(conv, mhsa, attention, window, dwconv, mbconv, mobilevit\) or a mapping",
    ),
    case(
        "mixer-empty",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer:
        """,
        "stages[0].mixer",
        5,
        r"expected a mapping \(got null\); allowed: a kind name "
        r"\(conv, mhsa, attention, window, dwconv, mbconv, mobilevit\)",
    ),
    case(
        "cls-token-quoted",
        """
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 4}
            cls_token: 'yes'
        """,
        "stages[0].cls_token",
        7,
        r"expected true or false; a quoted word is a string: "
        r"write true or false without quotes \(got 'yes'\)$",
    ),
    case(
        "qkv-bias-number",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer: {kind: mhsa, qkv_bias: 1}
        """,
        "stages[0].mixer.qkv_bias",
        5,
        r"expected true or false, not a number \(got 1\)$",
    ),
    case(
        "kv-stride-word",
        """
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 4, qkv: dw_bn, kv_stride: two}
        """,
        "stages[0].mixer.kv_stride",
        6,
        r"expected an integer or a list of integers \(got 'two'\)$",
    ),
    case(
        "kv-stride-zero-in-list",
        """
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 2
            mixer:
              kind: attention
              qkv: dw_bn
              kv_stride:
                - 2
                - 0
        """,
        "stages[0].mixer.kv_stride[1]",
        11,
        r"kv_stride\[1\]: must be greater than 0 \(got 0\)$",
    ),
    case(
        "name-number",
        """
        name: 5
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        """,
        "name",
        1,
        r"name: expected a string \(got 5\)$",
    ),
    # ------------------------------------------------------------------ kinds
    case(
        "unknown-mixer-kind",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer:
              kind: lstm
        """,
        "stages[0].mixer.kind",
        6,
        r"unknown kind 'lstm'; allowed: conv, mhsa, attention, window, dwconv, mbconv, mobilevit$",
    ),
    case(
        "unknown-mixer-kind-shorthand",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer: lstm
        """,
        "stages[0].mixer",
        5,
        r"stages\[0\]\.mixer: unknown kind 'lstm'; "
        r"allowed: conv, mhsa, attention, window, dwconv, mbconv, mobilevit$",
    ),
    case(
        "unknown-embed-kind",
        """
        input: {size: 32}
        stages:
          - embed: {kind: pixel}
            dim: 64
            depth: 1
            mixer: conv
        """,
        "stages[0].embed.kind",
        3,
        r"unknown kind 'pixel'; allowed: conv, patch, block, t2t, merge, mbconv, none$",
    ),
    case(
        "unknown-stem-kind-with-suggestion",
        """
        input: {size: 64}
        stem:
          kind: resnett
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        """,
        "stem.kind",
        3,
        r"unknown kind 'resnett' \(did you mean 'resnet'\?\); allowed: resnet, conv$",
    ),
    case(
        "null-embed-kind",
        """
        input: {size: 32}
        stages:
          - embed:
              kind: null
            dim: 64
            depth: 1
            mixer: conv
        """,
        "stages[0].embed.kind",
        4,
        r"expected a kind name \(got null\); allowed: conv, patch, block, t2t, merge, mbconv, none$",
    ),
    case(
        "missing-mixer-kind",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer: {heads: 4}
        """,
        "stages[0].mixer",
        5,
        r"missing 'kind'; allowed: conv, mhsa, attention, window, dwconv, mbconv, mobilevit$",
    ),
    case(
        "missing-embed-kind",
        """
        input: {size: 32}
        stages:
          - embed: {stride: 4}
            dim: 64
            depth: 1
            mixer: conv
        """,
        "stages[0].embed",
        3,
        r"missing 'kind'; allowed: conv, patch, block, t2t, merge, mbconv, none$",
    ),
    case(
        "mixer-not-fitting-block",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            block: bottleneck
            mixer: {kind: attention, heads: 4}
        """,
        "stages[0].mixer.kind",
        6,
        r"mixer 'attention' does not fit a bottleneck block \(got 'attention'\); allowed: conv, mhsa$",
    ),
    case(
        "block-embed-on-transformer",
        """
        input: {size: 32}
        stages:
          - embed: {kind: block, stride: 2}
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 4}
        """,
        "stages[0].embed.kind",
        3,
        r"embedding 'block' does not fit a transformer stage \(got 'block'\); "
        r"allowed: conv, patch, t2t, merge, mbconv, none$",
    ),
    # ------------------------------------------------------------------ numbers out of range
    case(
        "negative-depth",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: -1
            mixer: conv
        """,
        "stages[0].depth",
        4,
        r"stages\[0\]\.depth: must be greater than 0 \(got -1\)$",
    ),
    case(
        "zero-depth",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 0
            mixer: conv
        """,
        "stages[0].depth",
        4,
        r"must be greater than 0 \(got 0\)$",
    ),
    case(
        "zero-dim",
        """
        input: {size: 32}
        stages:
          - dim: 0
            depth: 1
            mixer: conv
        """,
        "stages[0].dim",
        3,
        r"stages\[0\]\.dim: must be greater than 0 \(got 0\)$",
    ),
    case(
        "negative-mlp-ratio",
        """
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 4}
            mlp_ratio: -1
        """,
        "stages[0].mlp_ratio",
        7,
        r"must be greater than 0 \(got -1\)$",
    ),
    case(
        "dropout-one",
        """
        input: {size: 32}
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        head: {dropout: 1.0}
        """,
        "head.dropout",
        4,
        r"head\.dropout: must be less than 1 \(got 1\.0\)$",
    ),
    case(
        "input-size-three-items",
        """
        input: {size: [32, 32, 3]}
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        """,
        "input.size",
        1,
        r"input\.size: needs at most 2 items, not 3 \(got \[32, 32, 3\]\)$",
    ),
    case(
        "no-stages",
        """
        input: {size: 32}
        stages: []
        """,
        "stages",
        2,
        r"stages: needs at least 1 item, not 0",
    ),
    # ------------------------------------------------------------------ missing keys and depths
    case(
        "missing-stages",
        """
        input: {size: 32}
        """,
        "<root>",
        1,
        r":1: missing required key 'stages'$",
    ),
    case(
        "missing-dim",
        """
        input: {size: 32}
        stages:
          - depth: 1
            mixer: conv
        """,
        "stages[0]",
        3,
        r"stages\[0\]: missing required key 'dim'$",
    ),
    case(
        "missing-depth",
        """
        input: {size: 32}
        stages:
          - dim: 64
            mixer: conv
        """,
        "stages[0]",
        3,
        r"stages\[0\]: missing 'depth' \(give it here or as the spec's 'depths' list\)$",
    ),
    case(
        "depths-wrong-length",
        """
        input: {size: 32}
        depths: [1, 2]
        stages:
          - dim: 64
            mixer: conv
        """,
        "depths",
        2,
        r"depths: needs one depth per stage: 1 stage, 2 depths \(got \[1, 2\]\)$",
    ),
    case(
        "depth-in-stage-and-depths",
        """
        input: {size: 32}
        depths: [1]
        stages:
          - dim: 64
            depth: 2
            mixer: conv
        """,
        "stages[0].depth",
        5,
        r"depth is given both here and in the spec's 'depths' \(got 2\)$",
    ),
    # ------------------------------------------------------------------ shapes
    case(
        "heads-not-dividing-dim",
        """
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 5}
        """,
        "stages[0].mixer.heads",
        6,
        r"heads must divide the dim 64 \(got 5\); allowed: 1, 2, 4, 8, 16, 32, 64$",
    ),
    case(
        "mhsa-heads-not-dividing-width",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer:
              kind: mhsa
              heads: 3
        """,
        "stages[0].mixer.heads",
        7,
        r"heads must divide the bottleneck width 16 \(got 3\); allowed: 1, 2, 4, 8, 16$",
    ),
    case(
        "expansion-not-dividing-dim",
        """
        input: {size: 32}
        stages:
          - dim: 60
            depth: 1
            mixer: conv
            expansion: 8
        """,
        "stages[0].expansion",
        6,
        r"expansion 8 does not divide dim 60 \(got 8\)$",
    ),
    case(
        "kv-stride-on-tiny-input",
        """
        input: {size: 8}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 1
            mixer: {kind: attention, heads: 4, qkv: dw_bn, kv_stride: 4}
        """,
        "stages[0].mixer.kv_stride",
        6,
        r"kv_stride 4 is larger than the 2x2 token map block 0 sees.* \(got 4\); allowed: at most 2$",
    ),
    case(
        "kv-stride-in-late-stage",
        """
        input: {size: 64}
        stages:
          - embed: {kind: conv, kernel: 7, stride: 4}
            dim: 32
            depth: 1
            mixer: {kind: attention, qkv: dw_bn, kv_stride: 2}
          - embed: {kind: conv, stride: 2}
            dim: 64
            depth: 1
            mixer: {kind: attention, qkv: dw_bn, kv_stride: 2}
          - embed: {kind: conv, stride: 2}
            dim: 128
            depth: 2
            mixer:
              kind: attention
              qkv: dw_bn
              kv_stride:
                - 2
                - 8
        """,
        "stages[2].mixer.kv_stride[1]",
        19,
        r"kv_stride 8 is larger than the 4x4 token map block 1 sees.* \(got 8\); allowed: at most 4$",
    ),
    case(
        "kv-stride-with-linear-qkv",
        """
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 4, kv_stride: 2}
        """,
        "stages[0].mixer.kv_stride",
        6,
        r"kv_stride > 1 needs a convolutional projection \(got 2\); allowed: qkv: dw_bn, avg or sr",
    ),
    case(
        "mlp-ratio-list-wrong-length",
        """
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 4}
            mlp_ratio: [4, 4, 4]
        """,
        "stages[0].mlp_ratio",
        7,
        r"a per-block list needs exactly depth=2 items, one per block \(got \[4\.0, 4\.0, 4\.0\]\)$",
    ),
    case(
        "kv-stride-list-wrong-length",
        """
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 3
            mixer: {kind: attention, heads: 4, qkv: dw_bn, kv_stride: [2, 2]}
        """,
        "stages[0].mixer.kv_stride",
        6,
        r"needs exactly depth=3 items, one per block \(got \[2, 2\]\)$",
    ),
    case(
        "patch-stride-not-dividing",
        """
        input: {size: 30}
        stages:
          - embed: {kind: patch, stride: 16}
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 4}
        """,
        "stages[0].embed.stride",
        3,
        r"the 30x30 map is not divisible into 16x16 patches \(got 16\); "
        r"allowed: strides dividing both sides: 1, 2, 3, 5, 6, 10, 15, 30$",
    ),
    case(
        "conv-embed-leaving-no-tokens",
        """
        input: {size: 4}
        stages:
          - embed: {kind: conv, kernel: 7, stride: 8, padding: 0}
            dim: 64
            depth: 1
            mixer: {kind: attention, heads: 4}
        """,
        "stages[0].embed.stride",
        3,
        r"the 7x7 conv with stride 8 and padding 0 leaves no tokens from the 4x4 map \(got 8\)$",
    ),
    case(
        "pool-cls-without-cls-token",
        """
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 4}
        head:
          pool: cls
        """,
        "head.pool",
        8,
        r"pool 'cls' needs a class token in the last stage \(cls_token: true\)",
    ),
    case(
        "mlp-ratio-on-bottleneck",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer: conv
            mlp_ratio: 4
        """,
        "stages[0].mlp_ratio",
        6,
        r"mlp_ratio applies to transformer, convnext and mobilevit stages, "
        r"but this stage is a bottleneck stage \(mixer 'conv'\)",
    ),
    case(
        "cls-token-on-bottleneck",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer: {kind: mhsa, heads: 4}
            cls_token: true
        """,
        "stages[0].cls_token",
        6,
        r"cls_token applies to transformer stages, but this stage is a bottleneck stage \(mixer 'mhsa'\) "
        r"\(got true\)$",
    ),
    case(
        "pos-embed-not-fitting-mixer",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer: conv
            pos_embed: absolute
        """,
        "stages[0].pos_embed",
        6,
        r"position embedding 'absolute' does not fit mixer 'conv' \(got 'absolute'\); allowed: none$",
    ),
    # ------------------------------------------------------------------ literals
    case(
        "unknown-activation",
        """
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 4}
            act: swish
        """,
        "stages[0].act",
        7,
        r"not an allowed value \(got 'swish'\); allowed: relu, gelu, quick_gelu, silu$",
    ),
    case(
        "invalid-qkv",
        """
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 2
            mixer: {kind: attention, heads: 4, qkv: conv}
        """,
        "stages[0].mixer.qkv",
        6,
        r"mixer\.qkv: not an allowed value \(got 'conv'\); allowed: linear, dw_bn, avg, sr$",
    ),
    case(
        "invalid-head-pool-with-suggestion",
        """
        input: {size: 32}
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        head: {pool: avgg}
        """,
        "head.pool",
        4,
        r"not an allowed value \(did you mean 'avg'\?\) \(got 'avgg'\); allowed: avg, cls$",
    ),
    # ------------------------------------------------------------------ YAML syntax
    case(
        "yaml-indented-too-far",
        """
        input: {size: 32}
        stages:
          - dim: 64
             depth: 1
            mixer: conv
        """,
        "<root>",
        4,
        r"YAML syntax error: unexpected ':' at column 11; check this line's indentation",
    ),
    case(
        "yaml-indented-too-little",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
           mixer: conv
        """,
        "<root>",
        5,
        r"YAML syntax error: bad indentation at column 4: "
        r"expected the end of the block that starts on line 3",
    ),
    case(
        "yaml-unclosed-brace",
        """
        input: {size: 32
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        """,
        "<root>",
        1,
        r"YAML syntax error: the '\{' at column 8 is never closed: expected ',' or '\}', but found ':' "
        r"on line 2, column 7$",
    ),
    case(
        "yaml-unclosed-bracket-at-end",
        """
        input: {size: 32}
        stages: [{dim: 64, depth: 1, mixer: conv}
        """,
        "<root>",
        2,
        r"the '\[' at column 9 is never closed: expected ',' or '\]', but the file ends$",
    ),
    case(
        "yaml-tab",
        "input: {size: 32}\nstages:\n\t- {dim: 64, depth: 1, mixer: conv}\n",
        "<root>",
        3,
        r"YAML syntax error: a tab character at column 1; YAML indents with spaces only$",
    ),
    case(
        "yaml-unclosed-quote",
        """
        name: 'tiny
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        """,
        "<root>",
        1,
        r"the quoted string starting at column 7 is never closed \(the file ends\)$",
    ),
    case(
        "yaml-key-without-colon",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth
            mixer: conv
        """,
        "<root>",
        4,
        r"the key at column 5 is not followed by ':'",
    ),
    case(
        "yaml-two-documents",
        """
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        ---
        head: {pool: avg}
        """,
        "<root>",
        3,
        r"a second YAML document \('---'\); a spec file holds exactly one$",
    ),
    case(
        "yaml-python-tag",
        """
        name: !!python/object:os.system echo
        stages:
          - {dim: 64, depth: 1, mixer: conv}
        """,
        "<root>",
        1,
        r"the tag '!!python/object:os\.system' at column 7 is not supported",
    ),
    case(
        "duplicate-key",
        """
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            dim: 128
            mixer: conv
        """,
        "stages[0].dim",
        5,
        r"stages\[0\]\.dim: duplicate key 'dim' \(first given on line 3\)$",
    ),
    # ------------------------------------------------------------------ not a spec at all
    case(
        "empty-file", "", "<root>", 1, r":1: the file is empty; a spec is a mapping with at least 'stages'$"
    ),
    case(
        "comment-only-file",
        """
        # a spec, some day

        # (nothing yet)
        """,
        "<root>",
        1,
        r":1: the file has only comments; a spec is a mapping with at least 'stages'$",
    ),
    case(
        "list-at-root",
        """
        - {dim: 64, depth: 1, mixer: conv}
        - {dim: 128, depth: 1, mixer: conv}
        """,
        "<root>",
        1,
        r"a spec must be a mapping of keys \(input, stem, stages, head, \.\.\.\), not a list .*"
        r"allowed: keys name, input, stem, depths, stages, head",
    ),
    case(
        "scalar-at-root",
        """
        resnet-50
        """,
        "<root>",
        1,
        r"a spec must be a mapping of keys .*, not a string \(got 'resnet-50'\)",
    ),
    case("missing-file", MISSING, "<root>", None, r"spec file does not exist$"),
    case("directory", DIRECTORY, "<root>", None, r"spec file is a directory, not a spec file$"),
]


def _write(tmp_path: Path, text: str | object) -> Path:
    path = tmp_path / "spec.yaml"
    if text is DIRECTORY:
        path.mkdir()
    elif text is not MISSING:
        assert isinstance(text, str)
        path.write_text(text, encoding="utf-8")
    return path


def test_the_corpus_is_large_and_its_ids_unique():
    ids = [p.id for p in CORPUS]
    assert len(ids) >= 35 and len(set(ids)) == len(ids)


@pytest.mark.parametrize(("text", "path", "line", "match"), CORPUS)
def test_malformed_spec_names_file_line_path_and_what_is_allowed(tmp_path, text, path, line, match):
    file = _write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(str(file))
    err = info.value
    first = err.issues[0]
    assert err.path == format_path(first.path) == path
    assert first.line == err.line == line
    assert first.file == err.file == str(file)
    assert str(file) in str(err)
    location = f"{file}:{line}" if line is not None else str(file)
    assert str(first).startswith(location + ": ")
    if path != "<root>":
        assert f"{location}: {path}: " in str(first)
    assert re.search(match, str(first)), f"{str(first)!r} does not match {match!r}"
    for word in ("function-after", "constrained-", "list[", "Input should", "model_attributes_type"):
        assert word not in str(err)


def test_an_issue_is_one_line():
    for param in CORPUS:
        text = param.values[0]
        if not isinstance(text, str):
            continue
        try:
            archsearch.spec.spec_from_dict(*archsearch.spec.load_yaml_text(text, "x.yaml"))
        except SpecError as err:
            assert all("\n" not in str(issue) for issue in err.issues), param.id
        else:  # pragma: no cover - every text in the corpus is bad
            pytest.fail(f"{param.id} loaded")


# --------------------------------------------------------------------------- several issues


def test_schema_errors_are_all_reported_at_once(tmp_path):
    file = _write(
        tmp_path,
        textwrap.dedent("""\
        input: {size: 32}
        stages:
          - dim: 64
            depth: 1
            mixer: conv
            bogus: 1
          - dim: 0
            depth: 1
            mixer: conv
        head:
          pool: max
        """),
    )
    with pytest.raises(SpecError) as info:
        load_spec(file)
    found = [(format_path(i.path), i.line) for i in info.value.issues]
    assert found == [("stages[0].bogus", 6), ("stages[1].dim", 7), ("head.pool", 11)]
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{file}:") for line in lines)


def test_shape_errors_of_a_stage_are_all_reported_at_once(tmp_path):
    file = _write(
        tmp_path,
        textwrap.dedent("""\
        input: {size: 32}
        stages:
          - dim: 64
            depth: 2
            mixer: conv
            mlp_ratio: 4
            cls_token: true
            pos_embed: absolute
        """),
    )
    with pytest.raises(SpecError) as info:
        load_spec(file)
    found = [(format_path(i.path), i.line) for i in info.value.issues]
    assert found == [("stages[0].mlp_ratio", 6), ("stages[0].cls_token", 7), ("stages[0].pos_embed", 8)]


def test_a_scalar_or_list_value_reports_only_the_alternative_that_fits(tmp_path):
    # ``kv_stride`` is an int or a per-block list: a list with a bad item names the item, not "not an int"
    file = _write(
        tmp_path,
        textwrap.dedent("""\
        input: {size: 32}
        stages:
          - embed: {kind: patch, stride: 4}
            dim: 64
            depth: 2
            mixer: {kind: attention, qkv: dw_bn, kv_stride: [2, 0], q_stride: []}
        """),
    )
    with pytest.raises(SpecError) as info:
        load_spec(file)
    assert [format_path(i.path) for i in info.value.issues] == [
        "stages[0].mixer.kv_stride[1]",
        "stages[0].mixer.q_stride",
    ]
    assert "needs at least 1 item, not 0" in str(info.value.issues[1])
    assert "integer" not in str(info.value)


# --------------------------------------------------------------------------- zoo specs edited in one place


ZOO_EDITS = [
    pytest.param(
        "cvt-13",
        "heads: 6",
        "heads: 5",
        "stages[2].mixer.heads",
        r"heads must divide the dim 384",
        id="cvt-13-heads",
    ),
    pytest.param(
        "cvt-13",
        "depths: [1, 2, 10]",
        "depths: [1, 2]",
        "depths",
        r"needs one depth per stage",
        id="cvt-13-depths",
    ),
    pytest.param(
        "deit-s", "depth: 12", "depth: 0", "stages[0].depth", r"must be greater than 0", id="deit-s-depth"
    ),
    pytest.param(
        "resnet-50",
        "dim: 1024, depth: 6, mixer: conv",
        "dim: 1024, depth: 6, mixer: lstm",
        "stages[2].mixer",
        r"unknown kind 'lstm'",
        id="resnet-50-mixer",
    ),
    pytest.param(
        "bot-50",
        "heads: 4}",
        "heads: 4, qkv_bias: maybe}",
        "stages[3].mixer.qkv_bias",
        r"expected true or false",
        id="bot-50-qkv-bias",
    ),
    pytest.param(
        "vit-b16",
        "head: {pool: cls",
        "head: {pool: cls, size: 3",
        "head.size",
        r"unknown key 'size' in Head",
        id="vit-b16-head",
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "path", "match"), ZOO_EDITS)
def test_an_edited_zoo_spec_points_at_the_edited_line(tmp_path, name, old, new, path, match):
    text = (ZOO_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    assert text.count(old) >= 1
    at = text.index(old)
    line = text[:at].count("\n") + 1
    file = tmp_path / f"{name}.yaml"
    file.write_text(text[:at] + new + text[at + len(old) :], encoding="utf-8")
    with pytest.raises(SpecError, match=match) as info:
        load_spec(file)
    assert (info.value.path, info.value.line, info.value.file) == (path, line, str(file))


def test_an_override_that_breaks_a_zoo_model_names_the_zoo_file_and_line():
    with pytest.raises(SpecError, match=r"the 30x30 map is not divisible into 16x16 patches") as info:
        load_spec("deit-ti", input_size=30)
    err = info.value
    assert err.file == str(ZOO_DIR / "deit-ti.yaml")
    assert (err.path, err.line) == ("stages[0].embed.stride", 6)


def test_an_unknown_zoo_name_lists_the_zoo():
    with pytest.raises(SpecError, match=r"no file and no zoo model named 'resnet-5'; allowed: .*resnet-50"):
        load_spec("resnet-5")


# --------------------------------------------------------------------------- YAML merge keys


def test_an_explicit_key_overrides_a_merged_one(tmp_path):
    file = _write(
        tmp_path,
        textwrap.dedent("""\
        input: {size: 32}
        stages:
          - &base {dim: 64, depth: 1, mixer: conv}
          - {<<: *base, dim: 128}
          - <<: *base
            mixer: {kind: conv, kernel: 0}
        """),
    )
    with pytest.raises(SpecError) as info:
        load_spec(file)
    # stage 1 overrides 'dim' without complaint; stage 2's own mixer replaces the merged one
    assert (info.value.path, info.value.line) == ("stages[2].mixer.kernel", 6)
    file.write_text(file.read_text().replace("kernel: 0", "kernel: 3"))
    assert [s.dim for s in load_spec(file).stages] == [64, 128, 64]


def test_a_key_twice_beside_a_merge_is_still_a_duplicate(tmp_path):
    file = _write(
        tmp_path,
        "input: {size: 32}\nstages:\n  - &b {dim: 64, depth: 1, mixer: conv}\n"
        "  - {<<: *b, dim: 128, dim: 256}\n",
    )
    with pytest.raises(SpecError, match=r"duplicate key 'dim' \(first given on line 4\)") as info:
        load_spec(file)
    assert (info.value.path, info.value.line) == ("stages[1].dim", 4)


# --------------------------------------------------------------------------- the command line

CLI_CASES = [
    "missing-file",
    "yaml-unclosed-brace",
    "yaml-tab",
    "empty-file",
    "list-at-root",
    "unknown-key-stage",
    "depth-quoted-number",
    "unknown-mixer-kind",
    "heads-not-dividing-dim",
    "kv-stride-in-late-stage",
    "mlp-ratio-list-wrong-length",
    "pool-cls-without-cls-token",
    "directory",
]
_BY_ID = {p.id: p.values for p in CORPUS}
_ENV = {"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "300"}


def _expected_cli_text(file: Path, path: str, line: int | None) -> str:
    location = f"{file}:{line}" if line is not None else str(file)
    return f"error: {location}: " + (f"{path}: " if path != "<root>" else "")


@pytest.mark.parametrize("command", ["validate", "compile"])
@pytest.mark.parametrize("case_id", CLI_CASES)
def test_cli_prints_one_clear_error_and_exits_2(tmp_path, command, case_id):
    text, path, line, match = _BY_ID[case_id]
    file = _write(tmp_path, text)
    result = CliRunner().invoke(app, [command, str(file)], env=_ENV)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit(2), not an exception escaping
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(_expected_cli_text(file, path, line))
    assert re.search(match, lines[0])
    assert "Traceback" not in result.stderr


def test_cli_reports_every_issue_on_its_own_line(tmp_path):
    text = (
        "input: {size: 32}\nstages:\n  - {dim: 0, depth: 1, mixer: conv}\n"
        "  - {dim: 8, depth: -2, mixer: conv}\n"
    )
    file = _write(tmp_path, text)
    result = CliRunner().invoke(app, ["validate", str(file)], env=_ENV)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {file}:3: stages[0].dim: must be greater than 0 (got 0)",
        f"error: {file}:4: stages[1].depth: must be greater than 0 (got -2)",
    ]


def test_cli_validate_stops_at_the_first_bad_file_with_status_2(tmp_path):
    file = _write(tmp_path, "stages: 3\n")
    result = CliRunner().invoke(app, ["validate", "deit-ti", str(file)], env=_ENV)
    assert result.exit_code == 2
    assert result.stdout.startswith("ok deit-ti")
    assert result.stderr == f"error: {file}:1: stages: expected a list (got 3)\n"


@pytest.mark.parametrize("case_id", ["missing-file", "yaml-unclosed-brace"])
def test_cli_process_prints_no_traceback(tmp_path, case_id):
    """The real entry point, in a process of its own, for both commands."""
    text, path, line, _ = _BY_ID[case_id]
    file = _write(tmp_path, text)
    env = {**os.environ, **_ENV}
    entry = [sys.executable, "-c", "from archsearch.cli import main; main()"]
    procs = [
        subprocess.Popen(
            [*entry, command, str(file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for command in ("validate", "compile")
    ]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, stderr
        assert "Traceback" not in stdout + stderr
        assert stdout == ""
        assert stderr.startswith(_expected_cli_text(file, path, line))
        assert stderr.count("\n") == 1


def test_cli_prints_values_that_look_like_markup_verbatim(tmp_path):
    file = _write(tmp_path, "stages:\n  - {dim: 8, depth: 1, mixer: {kind: '[/x]'}}\n")
    result = CliRunner().invoke(app, ["validate", str(file)], env=_ENV)
    assert result.exit_code == 2
    assert "unknown kind '[/x]'" in result.stderr


def test_every_unknown_key_and_bad_value_of_one_mapping_is_reported_at_once(tmp_path):
    file = _write(
        tmp_path, "stages:\n  - dim: 8\n    depth: 1\n    mixer: {kind: conv, kernal: 3, groups: 0, x: 1}\n"
    )
    with pytest.raises(SpecError) as info:
        archsearch.load_spec(file)
    paths = sorted(format_path(i.path) for i in info.value.issues)
    assert paths == ["stages[0].mixer.groups", "stages[0].mixer.kernal", "stages[0].mixer.x"]
    assert "did you mean 'kernel'" in str(info.value)
