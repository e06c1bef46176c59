#!/usr/bin/env bash
# Options every ASR recipe has, declared once. run.sh sources this file before its own
# "# begin options" block, where it adds corpus options and may change any default here;
# parse_options.sh reads both blocks (the recipe's last), so --help shows the recipe's values.
# Also sets the recipe-wide variables asr_stages.sh reads (a recipe may change them after
# parse_options.sh): data, exp, splits, recipe_args (this run's arguments, for RESULTS.md).
po_shared_options="${BASH_SOURCE[0]}"
recipe_args=$(if [ $# -gt 0 ]; then printf '%q ' "$@"; fi)   # quoted, so the RESULTS.md command re-runs as is
recipe_args=${recipe_args% }
data=data
exp=exp
splits="train dev test"

# begin options
stage=0                 # first stage to run
stop_stage=5            # last stage to run
conf=conf/asr.yaml      # model + training config
train_args=""           # config overrides, e.g. "train.num_epochs=5 data.max_duration=60"
vocab_size=256          # sentencepiece vocabulary size (incl. 5 special ids)
token_type=unigram      # sentencepiece model type: bpe | unigram | char | word
speed_perturb=""        # e.g. 0.9,1.1 to add speed-perturbed training copies
nj=2                    # parallel jobs for data prep and features
nproc=1                 # training processes (torchrun + DDP when > 1)
methods=ctc-greedy      # decoding methods, comma-separated
resume=""               # set to 1 to resume training from the last epoch checkpoint
tune=""                 # e.g. decode.blank_penalty=0,1,2,3 (several keys space-separated: a grid): stage 5 tries the values on the dev split and decodes the test sets with each method's best (speechlm decode --tune)
streaming=""            # N: train a streaming model (chunk-cut conv, dynamic chunks) and decode it also as a stream in chunks of N x 40 ms (e.g. 16)
llm=""                  # e.g. smollm2 (or a .gguf / HF dir): stages 4-5 train and decode the speech-LM ASR on that pretrained LLM (model.kind=speechlm-llm: LLM frozen + LoRA, llm.* overrides in --train-args) in exp/llm-NAME, beside the default model
ssl_conf=""             # e.g. conf/ssl.yaml: stage 3 pretrains the encoder on audio alone (BEST-RQ; encoder from conf) and stage 4 fine-tunes from it
ssl_splits=train        # splits whose stage-1 audio stage 3 pretrains on (their text is never read; never a test split)
ssl_args=""             # overrides for the pretraining, e.g. "train.num_epochs=20 ssl.num_codebooks=4"
ssl_extra=""            # more cut manifests with fbank for stage 3, e.g. another recipe's unlabeled audio (never a test set you report on)
# end options
