#!/usr/bin/env bash
# The four monolingual models (es, fr, it, ru), then one multilingual model over all four
# (shared tokenizer with language tokens; it_menardi imported as unlabeled audio), then the
# comparison table (local/compare.sh) in RESULTS.md. One training at a time. The multilingual
# model sees four times the audio per epoch: 10 epochs (twice the steps of one monolingual run).
#   local/run_all.sh [run.sh options...]      # e.g. --train-args "train.num_epochs=20"
set -euo pipefail
cd "$(dirname "$0")/.."
langs="es fr it ru"
for lang in $langs; do
  /usr/bin/time -f "== $lang: whole recipe %e s wall, %U s user CPU" ./run.sh --langs "$lang" "$@"
done
/usr/bin/time -f "== es_fr_it_ru: whole recipe %e s wall, %U s user CPU" \
  ./run.sh --langs "${langs// /,}" --unlabeled it_menardi --train-args "train.num_epochs=10" "$@"
local/compare.sh --write
