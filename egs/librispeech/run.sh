#!/usr/bin/env bash
# LibriSpeech (OpenSLR 12): read English audiobooks. Conformer-CTC trained on 100 h or 960 h,
# WER on test-clean. Data prep is Lhotse's LibriSpeech recipe (speechlm/corpora/librispeech.py).
#   ./run.sh                                  # 100 h (train-clean-100) with conf/asr_100h.yaml
#   ./run.sh --parts 960h --nproc 8           # 960 h with conf/asr_960h.yaml, DDP over 8 GPUs
#   ./run.sh --corpus-dir /data/LibriSpeech   # an existing copy (missing parts are downloaded)
#   ./run.sh --parts mini                     # mini LibriSpeech (train-clean-5): a quick check
set -euo pipefail
cd "$(dirname "$0")"
. ../../tools/asr_options.sh   # stages, conf, train_args, vocab_size, nj, nproc, methods, resume ...

# begin options
corpus_dir=download/LibriSpeech   # the LibriSpeech folder (train-clean-100/, dev-clean/ ...)
parts=100h              # training data: 100h | 960h | mini; dev-clean is dev, test-clean test
conf=                   # model + training config; empty: conf/asr_<parts>.yaml (mini: 100h)
vocab_size=500          # sentencepiece vocabulary size (incl. 5 special ids)
token_type=bpe          # sentencepiece model type: bpe | unigram | char | word
nj=8                    # parallel jobs for data prep and features
# end options
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh
. ../../tools/asr_stages.sh

corpus=librispeech
[ -n "$conf" ] || conf=conf/asr_${parts/mini/100h}.yaml
[ "$parts" != mini ] || splits="train test"   # mini LibriSpeech has one held-out part
run_stage 0 "data prep (download when absent)" "$data/manifests/" \
  speechlm prepare librispeech --corpus-dir "$corpus_dir" --parts "$parts" --download --num-jobs "$nj" \
    --out-dir "$data/manifests" --prefix "$corpus"
asr_stages
