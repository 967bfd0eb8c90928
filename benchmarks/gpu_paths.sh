#!/usr/bin/env bash
# The CUDA paths of `archsearch train` that benchmarks/gpu.py does not take, in one device call
# (issue 15): torchrun (NCCL on one GPU), bf16 autocast, torch.compile, gradient checkpointing,
# mixup/CutMix, EMA, a checkpoint after epoch 1 and a resume to epoch 2, on synthetic 224-px data.
#
#   run(command="bash benchmarks/gpu_paths.sh", carry=[".whl"], timeout_s=300)   # on the device
#   QUICK=1 OUT=/tmp/gp bash benchmarks/gpu_paths.sh                              # here, on the CPU
#
# Writes $OUT/paths.md (the runs' result.json and log.csv) and $OUT/paths_log.txt.
set -euo pipefail
: "${OUT:?set OUT to a folder for the results}"
if [ -z "${QUICK:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
    size=224 n=8192 batch=256 model=cvt-13 device=cuda compile=true
else
    export PYTHONPATH="$PWD"
    size=32 n=128 batch=32 model=cvt-13 device=cpu compile=false
fi
export PYTHONUNBUFFERED=1
cat >"$OUT/train.yaml" <<YAML
data: {kind: synthetic, num_train: $n, num_val: 512, num_classes: 100, image_size: $size}
epochs: 2
batch_size: $batch
warmup_epochs: 0.5
precision: bf16
compile: $compile
grad_checkpointing: true
mixup: {prob: 1.0}
ema: {decay: 0.999}
device: $device
YAML
run() { torchrun --standalone --nproc_per_node 1 -m archsearch.cli train "$model" -c "$OUT/train.yaml" \
    -o "$OUT/run" -r "$size" --num-classes 100 "$@"; }
{
    echo "## first run: epoch 1, then stop"; time run --stop-after 1
    echo "## resume: epoch 2"; time run --resume
} >"$OUT/paths_log.txt" 2>&1 || { tail -40 "$OUT/paths_log.txt"; exit 1; }
{
    echo "# archsearch train on $device: torchrun, bf16, compile=$compile, grad checkpointing, mixup, EMA, resume"
    echo; echo '```'; cat "$OUT/train.yaml"; echo '```'
    echo; echo "## result.json"; echo '```'; cat "$OUT/run/result.json"; echo; echo '```'
    echo; echo "## log.csv"; echo '```'; cat "$OUT/run/log.csv"; echo '```'
} >"$OUT/paths.md"
cat "$OUT/paths.md"
ls -la "$OUT/run"
