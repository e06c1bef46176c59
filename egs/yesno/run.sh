#!/usr/bin/env bash
# yesno (Kaldi's first recipe): 8 words of "yes"/"no" per file, Conformer-CTC + HLG decoding.
#   ./run.sh                     # all stages; icefall's anchor is 0.42% WER (1 error in 240 words)
#   ./run.sh --stage 5 --stop-stage 5 --methods ctc-greedy   # re-decode only
set -euo pipefail
cd "$(dirname "$0")"
. ../../tools/asr_options.sh   # stages, conf, train_args, vocab_size, nj, nproc, methods, resume ...

# begin options
corpus_dir=../../../shared/data/yesno   # local yesno copy (holds waves_yesno/); downloaded when absent
vocab_size=13           # sentencepiece vocabulary size (incl. 5 special ids): ▁yes ▁no + letters
ngram_order=3           # word n-gram order of G in HLG (clipped for tiny text)
nj=1                    # parallel jobs for features (1: worker start-up costs more than 60 files)
speed_perturb=0.9,1.1   # speed-perturbed copies of the 30 training files: with them 10 of 10 seeds reach 0.42% (RESULTS.md)
methods=ctc-greedy,hlg-1best   # decoding methods, comma-separated
# end options
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh
. ../../tools/asr_stages.sh

# One intra-op thread: this model is too small to gain from two, and on a shared or busy CPU
# two spinning OpenMP threads made an epoch ~20x slower (0.5 s -> 10-40 s) in our runs.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

corpus=yesno
splits="train test"   # the conventional split has no dev (see speechlm/corpora/yesno.py)
[ -d "$corpus_dir" ] || { echo "run.sh: $corpus_dir not found; yesno will be downloaded"; corpus_dir=; }
run_stage 0 "data prep" "$data/manifests/" \
  speechlm prepare yesno ${corpus_dir:+--corpus-dir "$corpus_dir"} --out-dir "$data/manifests"
asr_stages
