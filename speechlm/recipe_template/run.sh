#!/usr/bin/env bash
@DESCRIPTION_COMMENT@
#   ./run.sh                                    # stages 0-5: manifests, fbank, tokenizer, train, decode
#   ./run.sh --stage 4 --stop-stage 5 --train-args "train.num_epochs=2"   # retrain + rescore only
#   ./run.sh --help                             # every option with its default
set -euo pipefail
cd "$(dirname "$0")"
. @TOOLS@/asr_options.sh   # stages, conf, train_args, vocab_size, nj, nproc, methods, resume ...

# begin options
@OPTIONS@
# end options
. @TOOLS@/parse_options.sh
. @TOOLS@/stage_lib.sh
. @TOOLS@/asr_stages.sh

corpus=@NAME@
@SETUP@
run_stage 0 "data prep" "$data/manifests/" \
  @STAGE0@
asr_stages
