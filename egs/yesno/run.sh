#!/usr/bin/env bash
# yesno (Kaldi's first recipe): 8 words of "yes"/"no" per file, Conformer-CTC + HLG decoding.
#   ./run.sh                     # all stages; icefall's anchor is 0.42% WER (1 error in 240 words)
#   ./run.sh --stage 5 --stop-stage 5 --methods ctc-greedy   # re-decode only
set -euo pipefail
cd "$(dirname "$0")"
recipe_args="$*"

# begin options
stage=0                 # first stage to run
stop_stage=5            # last stage to run
corpus_dir=../../../shared/data/yesno   # local yesno copy (holds waves_yesno/); downloaded when absent
conf=conf/asr.yaml      # model + training config
train_args=""           # config overrides, e.g. "train.num_epochs=5 train.seed=1"
vocab_size=13           # sentencepiece vocabulary size (incl. 5 special ids): ▁yes ▁no + letters
ngram_order=3           # word n-gram order of G in HLG (clipped for tiny text)
speed_perturb=""        # e.g. 0.9,1.1 to add speed-perturbed training copies
nj=1                    # parallel jobs for features (1: worker start-up costs more than 60 files)
nproc=1                 # training processes (torchrun + DDP when > 1)
methods=ctc-greedy,hlg-1best   # decoding methods, comma-separated
resume=""               # set to 1 to resume training from the last epoch checkpoint
# end options
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh
. ../../tools/asr_stages.sh

corpus=yesno
splits="train test"
data=data; exp=exp

corpus_args=(--corpus-dir "$corpus_dir")
if [ ! -d "$corpus_dir" ]; then
  echo "run.sh: $corpus_dir not found; yesno will be downloaded from OpenSLR"
  corpus_args=()
fi
run_stage 0 "data prep" "$data/manifests/" \
  speechlm prepare yesno "${corpus_args[@]}" --out-dir "$data/manifests"
asr_stages
