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
echo "== speaker held out: test WER %"
printf '%-10s %-11s %s\n' speaker ctc-greedy hlg-1best
for spk in $speakers; do
  summary=exp/spk-$spk/asr/decode-test/wer-summary-test.txt
  printf '%-10s %-11s %s\n' "$spk" "$(awk '$1=="ctc-greedy"{print $2}' "$summary")" \
    "$(awk '$1=="hlg-1best"{print $2}' "$summary")"
done
