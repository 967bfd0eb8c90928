#!/usr/bin/env bash
# benchmarks/gpu.py on the device machine (one H200) in ONE call. Two steps:
#
#   1. Here, in the repository root of the checkout the session was started in (the device tool
#      sends that checkout, not a helper's worktree):
#          bash benchmarks/gpu_device.sh download
#      downloads the wheels the H200 image lacks into .whl/ (ignored through .git/info/exclude;
#      about 18 MB, well under the tool's 64 MiB) and writes the commit to .whl/COMMIT.
#
#   2. One device call (the tool's `run`), carrying .whl:
#          run(command="bash benchmarks/gpu_device.sh run", carry=[".whl"], timeout_s=600)
#      It installs the wheels with --target /tmp/site, runs benchmarks/gpu.py (budget 440 s, about
#      8 minutes in all) and writes RESULTS.md, gpu_results.json and log.txt to $OUT. Copy
#      RESULTS.md and gpu_results.json from the returned files_at folder into benchmarks/ and commit.
#
# What the H200 image has (see the device notes' package list): torch 2.11 (CUDA), timm, numpy,
# pandas, PyYAML, einops, rich, typer, scikit-learn, Pillow, tqdm, packaging, MarkupSafe, narwhals,
# tabulate, portalocker, onnx, onnxruntime, safetensors. What travels: optuna and its needs
# (alembic, SQLAlchemy, colorlog, Mako), pydantic (pydantic-core, annotated-types,
# typing-inspection, and typing-extensions >= 4.16 that pydantic-core requires), plotly, fvcore
# (iopath, yacs, termcolor; built here from its sdist: fvcore publishes no wheel). The list was
# checked with Python 3.12: installed with --no-deps into a throwaway --target beside the image's
# packages, `pip check` found no broken requirement and every package imported.
set -euo pipefail

WHEELS=(
    optuna==5.0.0 alembic==1.20.1 sqlalchemy==2.1.9 colorlog==6.12.0 Mako==1.4.3
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    typing-extensions==4.16.0
    plotly==7.1.0
    iopath==0.1.9 yacs==0.1.8 termcolor==3.3.0
)
FVCORE=fvcore==0.1.5.post20221221

case "${1:-}" in
download)
    mkdir -p .whl
    grep -qx '/.whl/' "$(git rev-parse --git-path info/exclude)" 2>/dev/null ||
        echo '/.whl/' >>"$(git rev-parse --git-path info/exclude)"
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        -d .whl "${WHEELS[@]}"
    ls .whl/fvcore-*.whl >/dev/null 2>&1 || python3 -m pip wheel --no-deps -w .whl "$FVCORE"
    git rev-parse HEAD >.whl/COMMIT
    du -sh .whl
    ;;
run)
    : "${OUT:?run this on the device machine, where OUT is set}"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,temperature.gpu --format=csv \
        >"$OUT/log.txt" 2>&1 || true
    set +e
    timeout 540 python3 benchmarks/gpu.py --out "$OUT" --commit "$(cat .whl/COMMIT 2>/dev/null || echo unknown)" \
        "${@:2}" 2>&1 | tee -a "$OUT/log.txt"
    exit "${PIPESTATUS[0]}"
    ;;
*)
    echo "usage: bash benchmarks/gpu_device.sh download   (here)  |  run [gpu.py args]   (on the device)" >&2
    exit 2
    ;;
esac
