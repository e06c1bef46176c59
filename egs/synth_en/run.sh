#!/usr/bin/env bash
# synth_en: the embedded default corpus. English spoken requests (numbers, dates, times, money,
# phone numbers) synthesised locally by espeak-ng in >= 20 voices; no download at all.
# Test and dev use held-out voices AND held-out sentences. Stages: 0 synthesis, 1 fbank,
# 2 tokenizer + HLG graph, 3 text-LM pretraining, 4 ASR training and TTS fine-tuning from the
# stage-3 LM (one voice), 5 decoding + WER, TTS synthesis + MCD + round-trip WER.
#   ./run.sh                       # stages 0-5
#   ./run.sh --stage 4 --stop-stage 5 --train-args "train.num_epochs=2"
set -euo pipefail
cd "$(dirname "$0")"
recipe_args=$(if [ $# -gt 0 ]; then printf '%q ' "$@"; fi)   # quoted, so the RESULTS.md command re-runs as is
recipe_args=${recipe_args% }

# begin options
stage=0                 # first stage to run
stop_stage=5            # last stage to run
num_text=100000         # text-only sentences (LM pretraining text)
num_train=2000          # paired training utterances
num_dev=150             # dev utterances (held-out voices and sentences)
num_test=300            # test utterances (other held-out voices and sentences)
num_unlabeled=0         # audio without transcripts (split 'unlabeled': training voices, later sentences) for SSL pretraining, e.g. 12000 (local/run_ablation.sh --ssl-cuts)
seed=0                  # corpus seed (sentences, voices, split)
conf=conf/asr.yaml      # model + training config
train_args=""           # config overrides, e.g. "train.num_epochs=2"
vocab_size=64           # sentencepiece vocabulary size (incl. 5 special ids); small units learn faster from 2000 utterances
speed_perturb=""        # e.g. 0.9,1.1 to add speed-perturbed training copies
nj=2                    # parallel jobs for synthesis and features
nproc=1                 # training processes (torchrun + DDP when > 1)
methods=ctc-greedy,hlg-1best,hlg-nbest-lm  # decoding methods, comma-separated (hlg-*: stage 2 builds the HLG graph)
tune=""                 # e.g. decode.blank_penalty=0,1,2,3: stage 5 tries the values on dev and decodes test with each method's best
streaming=""            # N: train a streaming model (chunk-cut conv, dynamic chunks) and decode it also as a stream in chunks of N x 40 ms (e.g. 16)
resume=""               # set to 1 to resume training from the last epoch checkpoint
llm=""                  # e.g. smollm2: stages 4-5 train and decode the speech-LM ASR on that pretrained LLM (frozen + LoRA) in exp/llm-NAME, beside exp/asr (which the TTS stages align with: run the default first)
lm_conf=conf/lm.yaml    # stage 3: text-LM config (LM pretraining on data/text/lm_text.txt)
lm_args=""              # stage 3: config overrides, e.g. "train.num_epochs=2"
tts_conf=conf/tts.yaml  # stages 4-5 TTS (tools/tts_stages.sh): config
tts_args=""             # TTS config overrides, e.g. "train.num_epochs=2"; "tts.llm_layers=12": word features from SmolLM2 (local/run_tts_ablation.sh)
tts_voice=en-us+m8:175:43  # TTS: the one espeak-ng voice, VOICE[:RATE[:PITCH]]
tts_num_train=1200      # TTS: one-voice training utterances (sentences from the LM text)
tts_num_test=100        # TTS: test sentences synthesised and evaluated (references in the same voice)
# end options
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh
. ../../tools/asr_stages.sh
. ../../tools/tts_stages.sh

corpus=synth_en
splits="train dev test"
if [ "$num_unlabeled" -gt 0 ]; then splits="$splits unlabeled"; fi   # fbank for pretraining (stage 1)
data=data
exp=exp
lm_text=$data/text/lm_text.txt

run_stage 0 "data prep (synthesis)" "$data/manifests/, $data/wav/, $lm_text" \
  speechlm prepare synth_en --out-dir "$data" \
    --num-text "$num_text" --num-train "$num_train" --num-dev "$num_dev" --num-test "$num_test" \
    --seed "$seed" --num-jobs "$nj" --num-unlabeled "$num_unlabeled"
asr_stages
tts_stages
