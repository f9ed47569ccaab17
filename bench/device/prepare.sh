#!/usr/bin/env bash
# Run HERE, before asking for a lent GPU: puts what the device machine lacks inside the checkout, since a device
# call gets the checkout alone (no ../shared, no network). Then, with the `device` tool:
#   run(command="bash bench/device/run.sh", carry=["bench/device/wheels"], timeout_s=540)
# shared/ (the data slices, ~13 MB) travels by itself; both paths are git-ignored.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=../shared/data
mkdir -p shared/data/longform shared/data/dialogue shared/data/tokenizers bench/device/wheels
cp -r "$src/longform/koconovel" shared/data/longform/
cp -r "$src/dialogue/chatbot_data" shared/data/dialogue/
cp -r "$src/tokenizers/qwen3" shared/data/tokenizers/
# The device image (Python 3.12, torch with CUDA, transformers, peft, accelerate, pyarrow, tiktoken, rich, regex)
# lacks these; the versions are this project's.
pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
    -d bench/device/wheels trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 liger-kernel
du -sh shared bench/device/wheels
