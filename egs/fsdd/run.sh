#!/usr/bin/env bash
# FSDD (Free Spoken Digit Dataset): real spoken digits, Conformer-CTC, WER.
#   ./run.sh                                    # official split (index 0-4 = test)
#   ./run.sh --split speaker --heldout-speaker theo   # one speaker held out entirely
#   local/run_speaker_heldout.sh                # all 5 speakers, one table
set -euo pipefail
cd "$(dirname "$0")"
recipe_args="$*"

# begin options
stage=0                 # first stage to run
stop_stage=5            # last stage to run
corpus_dir=../../../shared/data/fsdd   # local FSDD copy (holds recordings/); downloaded when absent
split=official          # official | speaker
heldout_speaker=        # test speaker for --split speaker (george jackson nicolas theo yweweler)
conf=conf/asr.yaml      # model + training config
train_args=""           # config overrides, e.g. "train.num_epochs=5 data.max_duration=60"
vocab_size=60           # sentencepiece vocabulary size (incl. 5 special ids)
token_type=bpe          # sentencepiece model type: bpe | unigram | char | word
speed_perturb=""        # e.g. 0.9,1.1 to add speed-perturbed training copies
nj=2                    # parallel jobs for data prep and features
nproc=1                 # training processes (torchrun + DDP when > 1)
methods=ctc-greedy      # decoding methods, comma-separated
resume=""               # set to 1 to resume training from the last epoch checkpoint
# end options
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh
. ../../tools/asr_stages.sh

corpus=fsdd
splits="train dev test"
if [ "$split" = speaker ]; then
  [ -n "$heldout_speaker" ] || { echo "run.sh: --split speaker needs --heldout-speaker NAME" >&2; exit 2; }
  data=data/spk-$heldout_speaker; exp=exp/spk-$heldout_speaker
  done_dir=.done/spk-$heldout_speaker; log_dir=$exp/log
else
  data=data; exp=exp
fi

corpus_args=(--corpus-dir "$corpus_dir")
if [ ! -d "$corpus_dir" ]; then
  echo "run.sh: $corpus_dir not found; FSDD will be downloaded from upstream"
  corpus_args=()
fi
run_stage 0 "data prep" "$data/manifests/" \
  speechlm prepare fsdd "${corpus_args[@]}" --out-dir "$data/manifests" \
    --split "$split" ${heldout_speaker:+--heldout-speaker "$heldout_speaker"}
asr_stages
