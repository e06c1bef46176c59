#!/usr/bin/env bash
# Speaker-independent FSDD: train 5 models, each with one speaker held out entirely, and
# report each held-out speaker's test WER (rows go to RESULTS.md via run.sh's stage 5).
#   local/run_speaker_heldout.sh [run.sh options...]
set -euo pipefail
cd "$(dirname "$0")/.."
speakers="george jackson nicolas theo yweweler"
for spk in $speakers; do
  ./run.sh --split speaker --heldout-speaker "$spk" "$@"
done
echo "== speaker held out: test WER (ctc-greedy)"
for spk in $speakers; do
  printf '%-10s %s\n' "$spk" "$(awk 'NR==2{print $2}' "exp/spk-$spk/asr/decode-test/wer-summary-test.txt")"
done
