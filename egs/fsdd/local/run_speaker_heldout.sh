#!/usr/bin/env bash
# Speaker-independent FSDD: train 5 models, each with one speaker held out entirely, and
# report each held-out speaker's test WER and the mean (rows go to RESULTS.md via run.sh's stage 5).
#   local/run_speaker_heldout.sh [run.sh options...]
#   local/run_speaker_heldout.sh --ssl-conf conf/ssl.yaml [...]   # each: BEST-RQ on the other four
#       speakers' audio (stage 3), CTC fine-tuned from it; exp/spk-NAME-ssl/
#   local/run_speaker_heldout.sh --encoder-init exp/ssl-asterisk/final.pt [...]   # each fine-tuned
#       from one encoder pretrained on asterisk's audio (local/pretrain_ssl_asterisk.sh); exp/spk-NAME-init/
#   local/run_speaker_heldout.sh --conf conf/asr_si.yaml --variant si [...]   # the speaker-independent
#       config; exp/spk-NAME-si/ (with --encoder-init: exp/spk-NAME-si-init/)
#   local/run_speaker_heldout.sh --conf conf/asr_si.yaml --variant si --synthetic-voices 122 [...]
#       # plus the digits read by 122 synthetic voices in training; exp/spk-NAME-si-syn122/
#   local/run_speaker_heldout.sh --conf conf/asr_spk.yaml --variant spk --speed-perturb '' --synthetic-voices 122
#       # the best: per-speaker CMVN (the test speaker's own audio) + the synthetic voices; exp/spk-NAME-spk-syn122/
#       # (mean 11.00% over 3 seeds; adding --ssl-conf conf/ssl.yaml, BEST-RQ on the training split's audio
#       # first, gives 10.81%: no measurable gain; RESULTS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
speakers="george jackson nicolas theo yweweler"
kind=""     # -ssl | -init: the run.sh dirs of these options, after the --variant name
variant=""
syn=""      # -synN: --synthetic-voices N
for a in "$@"; do
  case "$a" in
    --ssl-conf=?*|--ssl_conf=?*) kind=-ssl ;;
    --encoder-init=?*|--encoder_init=?*) kind=-init ;;
    --variant=?*) variant=-${a#*=} ;;
    --synthetic-voices=*|--synthetic_voices=*) syn=-syn${a#*=}; [ "$syn" != -syn0 ] || syn="" ;;
  esac
done
prev=""
for a in "$@"; do
  case "$prev" in
    --ssl-conf|--ssl_conf) if [ -n "$a" ]; then kind=-ssl; fi ;;
    --encoder-init|--encoder_init) if [ -n "$a" ]; then kind=-init; fi ;;
    --variant) if [ -n "$a" ]; then variant=-$a; fi ;;
    --synthetic-voices|--synthetic_voices) syn=-syn$a; [ "$syn" != -syn0 ] || syn="" ;;
  esac
  prev=$a
done
suffix=$variant$syn$kind
for spk in $speakers; do
  ./run.sh --split speaker --heldout-speaker "$spk" "$@"
done
echo "== speaker held out: test WER % (exp/spk-NAME$suffix)"
rows=$(for spk in $speakers; do
  summary=exp/spk-$spk$suffix/asr/decode-test/wer-summary-test.txt
  printf '%-10s %-11s %s\n' "$spk" "$(awk '$1=="ctc-greedy"{print $2}' "$summary")" \
    "$(awk '$1=="hlg-1best"{print $2}' "$summary")"
done)
printf '%-10s %-11s %s\n%s\n' speaker ctc-greedy hlg-1best "$rows"
awk '{g += $2; h += $3; n++} END { printf "%-10s %-11.2f %.2f\n", "mean", g / n, h / n }' <<<"$rows"
