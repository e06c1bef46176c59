#!/usr/bin/env bash
# One BEST-RQ encoder for FSDD pretrained on audio that holds no FSDD speaker at all: the Asterisk
# prompts (es, fr, it, ru training splits and the untranscribed it_menardi folder; never a test
# split; their text is never read), 1.67 h. The encoder is conf/asr.yaml's, so every FSDD run,
# whichever speaker it holds out, can fine-tune from it:
#   local/pretrain_ssl_asterisk.sh [--epochs 5] [--asterisk-dir ../../../shared/data/asterisk]
#       [--encoder-config conf/asr.yaml] [--out exp/ssl-asterisk]
#   local/run_speaker_heldout.sh --speed-perturb '' --encoder-init exp/ssl-asterisk/final.pt
# --encoder-config: the ASR config the encoder will be fine-tuned with (its encoder section, e.g.
# conf/asr_si.yaml's utterance CMN, shapes the pretraining).
# Writes ../asterisk/data/es_fr_it_ru-ssl/ (asterisk's stages 0-1, run by its own run.sh) and
# OUT/ (final.pt, masked_accuracy.txt, cost.json). Skips the pretraining when
# OUT/final.pt exists (delete it to redo).
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=5
asterisk_dir=../../../shared/data/asterisk
encoder_config=conf/asr.yaml
out=exp/ssl-asterisk
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs=$2 ;;
    --asterisk-dir) asterisk_dir=$2 ;;
    --encoder-config) encoder_config=$2 ;;
    --out) out=$2 ;;
    *) echo "pretrain_ssl_asterisk.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
. ../../tools/stage_lib.sh   # the repository's .venv on PATH when needed
[ -f "$encoder_config" ] || { echo "pretrain_ssl_asterisk.sh: --encoder-config $encoder_config not found (relative to egs/fsdd)" >&2; exit 2; }
if [ -f "$out/final.pt" ]; then
  echo "pretrain_ssl_asterisk.sh: $out/final.pt exists, not pretraining again (delete it to redo)"
  cat "$out/masked_accuracy.txt"; exit 0
fi
# asterisk's stages 0-1 for all four languages plus the unlabeled folder, no speed perturbation
[ -d "$asterisk_dir" ] || { echo "pretrain_ssl_asterisk.sh: --asterisk-dir $asterisk_dir not found (relative to egs/fsdd)" >&2; exit 2; }
asterisk_dir=$(cd "$asterisk_dir" && pwd)
(cd ../asterisk && ./run.sh --corpus-dir "$asterisk_dir" \
  --langs es,fr,it,ru --unlabeled it_menardi --ssl-conf conf/ssl.yaml --speed-perturb '' --stop-stage 1)
fbank=../asterisk/data/es_fr_it_ru-ssl/fbank
# FSDD's SSL config (short mask spans for ~0.4 s digits) on FSDD's ASR encoder
speechlm train-ssl --config conf/ssl.yaml --encoder-config "$encoder_config" --exp-dir "$out" \
  --train-cuts "$fbank/asterisk_cuts_train.jsonl.gz" "$fbank/asterisk_cuts_unlabeled.jsonl.gz" \
  --dev-cuts "$fbank/asterisk_cuts_dev.jsonl.gz" --set train.num_epochs="$epochs" train.average_last=2
cat "$out/masked_accuracy.txt" "$out/cost.json"
