#!/usr/bin/env bash
# Regenerates the small checkpoints in data/ with the built program:
#   data/regenerate.sh [path/to/epmoe]        (default: build/src/app/epmoe)
# One file per mini preset: bfloat16, seed 1234 (the default seed of 'epmoe run'), as few layers as keep it small
# (1 layer keeps every file under 1 MB). tests/io/test_checkpoint.cpp checks that every
# file equals what 'epmoe run --preset NAME' generates.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
epmoe=${1:-$here/../build/src/app/epmoe}
presets=(gpt-oss-mini deepseek-mini nemotron-mini latent-mini qwen3-mini mixtral-mini)
for preset in "${presets[@]}"; do
  "$epmoe" make-checkpoint --preset "$preset" --out "$here/$preset.h5" --dtype bf16 --layers 1 --seed 1234
done
ls -l "$here"/*.h5
