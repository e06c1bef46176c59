#!/usr/bin/env bash
# LJSpeech 1.1: 24 h of one female speaker reading non-fiction, 13,100 clips. ASR (Conformer-CTC)
# on the normalised transcripts; TTS on this corpus comes with the TTS work (not here yet).
# Data prep is Lhotse's LJSpeech recipe; the last 500 clips (sorted ids) are dev and test.
#   ./run.sh                                  # downloads LJSpeech-1.1 (2.6 GB) when absent
#   ./run.sh --corpus-dir /data/LJSpeech-1.1 --nproc 2
set -euo pipefail
cd "$(dirname "$0")"
. ../../tools/asr_options.sh   # stages, conf, train_args, vocab_size, nj, nproc, methods, resume ...

# begin options
corpus_dir=download/LJSpeech-1.1   # the LJSpeech folder (metadata.csv, wavs/)
vocab_size=500          # sentencepiece vocabulary size (incl. 5 special ids)
token_type=bpe          # sentencepiece model type: bpe | unigram | char | word
nj=4                    # parallel jobs for features
# end options
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh
. ../../tools/asr_stages.sh

corpus=ljspeech
run_stage 0 "data prep (download when absent)" "$data/manifests/" \
  speechlm prepare ljspeech --corpus-dir "$corpus_dir" --download --out-dir "$data/manifests" --prefix "$corpus"
asr_stages
