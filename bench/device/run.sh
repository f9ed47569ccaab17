#!/usr/bin/env bash
# Run THERE (a lent CUDA machine, see prepare.sh): the train bench in bf16 on a ~99M-parameter random Llama, with
# sdpa and then with Liger kernels (flash-attention too when the image has flash_attn); each table goes to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install --quiet --no-index --no-deps bench/device/wheels/*.whl
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
model=(--device cuda --hidden 1024 --layers 10 --heads 16 --novel-docs 400 --dialogue-docs 6000 --batch-size 16)
python3 bench/train_bench.py "${model[@]}" --attn sdpa 2>&1 | tee "$OUT/train_sdpa.txt"
python3 bench/train_bench.py "${model[@]}" --attn sdpa --liger 2>&1 | tee "$OUT/train_sdpa_liger.txt"
if python3 -c "import flash_attn" 2>/dev/null; then
    python3 bench/train_bench.py "${model[@]}" --attn flash_attention_2 2>&1 | tee "$OUT/train_fa2.txt"
fi
