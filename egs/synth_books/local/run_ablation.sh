#!/usr/bin/env bash
# Speech-language pretraining ablation on synth_books (issue 18's comparison): the speech-LM ASR
# (conf/speechlm.yaml) with its decoder random-init, from the tiny text LM (conf/lm.yaml, trained
# here on the LM books), or SmolLM2-135M (--inits llm: frozen + LoRA), and its encoder random or
# from BEST-RQ (--encoders ssl, conf/ssl.yaml); on all paired data and on a low-resource subset
# (--low-fraction of it); every method decoded on the whole test set and on each engine's held-out
# test set (the table compares the first of --test-sets). The steps: tools/ablation.sh (shared
# with synth_en); every option: --help.
#   ./run.sh --num-train 2000 --num-dev 100 --num-test 300 --num-unlabeled 12000 --stop-stage 2
#   local/run_ablation.sh --conditions low --inits "random pretrained llm" --encoders ssl \
#     --ssl-cuts "data/fbank/synth_books_cuts_train.jsonl.gz data/fbank/synth_books_cuts_unlabeled.jsonl.gz" \
#     --low-speed-perturb 0.9,1.1 --seeds "42 1 2"
# Outputs: exp/ablation_s<seed>/<condition>-<init>[+ssl]/ (checkpoints, decode-<set>/ reports, and
# each seed's table.md; without --seeds: exp/ablation/<condition>-<init>[+ssl]/), exp/ablation/lm/,
# exp/ablation/ssl/, exp/ablation/table.md (means over the seeds); the table is appended to RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. ../../tools/ablation_options.sh

# begin options
corpus=synth_books           # manifests data/fbank/synth_books_cuts_<split>.jsonl.gz
methods=ctc-greedy,ctc-prefix-beam,attention-rescoring,attention-beam,lm-shallow-fusion  # decoded in one pass
decode_args="decode.ctc_weight=0.5 decode.lm_weight=0.5"  # untuned (conf/speechlm.yaml), the same for every run
test_sets="test test_espeak test_flite test_piper"  # the whole test set, then each engine's (stage 0 writes them)
subset_sets="test_espeak test_flite test_piper"     # the engines' sets are parts of test: scored from its decode
low_args="train.num_epochs=20 optim.warmup_steps=100"  # low-resource schedule (same for every init)
lm_args="train.num_epochs=1 lm.sentences_per_epoch=20000 optim.warmup_steps=30"  # the text LM of RESULTS.md's run
# end options
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh   # puts .venv/bin on PATH when needed
. ../../tools/ablation.sh
