#!/usr/bin/env bash
# Options of the speech-language pretraining ablation (tools/ablation.sh), declared once. A
# recipe's local/run_ablation.sh sources this file, then its own "# begin options" block (corpus=
# and any default it chooses for its data), then parse_options.sh and tools/ablation.sh;
# parse_options.sh reads both blocks (the recipe's last), so --help shows the recipe's values.
po_shared_options="${BASH_SOURCE[0]}"
ablation_args=("$@")  # the command line as given, before option parsing consumes it (for RESULTS.md)

# begin options
corpus=""                    # manifests data/fbank/<corpus>_cuts_<split>.jsonl.gz (set by the recipe)
conf=conf/speechlm.yaml      # speech-LM ASR config
conditions="low full"        # low: low-resource subset; full: all paired training utterances
inits="random pretrained"    # LM part: random | pretrained (from $lm) | pretrained-frozen (kept frozen) | llm (the LLM $llm)
low_fraction=0.1             # share of the paired training utterances in the low-resource subset
low_args="train.num_epochs=60 optim.warmup_steps=100"  # low-resource schedule (same for every init)
full_args=""                 # extra overrides for the full-data runs
random_args=""               # extra overrides for the random-init runs only
pretrained_args=""           # extra overrides for the pretrained(-frozen) runs only
llm=smollm2                  # init llm: the LLM (llm.source: smollm2 | a .gguf | an HF dir)
llm_args="speechlm.adapter_stride=4"  # extra overrides for the llm runs only (after the condition's), e.g. llm.num_layers=8
subset_seed=0                # seed of the random low-resource subset
low_speed_perturb=""         # e.g. 0.9,1.1: the low-resource runs train on the subset plus speed-perturbed copies
methods=ctc-greedy,ctc-prefix-beam,attention-rescoring,attention-beam,lm-shallow-fusion  # decoded in one pass
decode_args="decode.ctc_weight=0.5"  # decoding overrides, the same for every run (choose them on dev)
test_sets=test               # decoded test sets (<corpus>_cuts_<set>); the table compares the first
subset_sets=""               # those of the other test sets that are subsets of the first (e.g. one engine's): scored from its decode, not decoded again
tokenizer=data/lang_bpe/bpe.model  # sentencepiece model (stage 2)
out=exp/ablation             # where the runs and table.md go
seeds=""                     # e.g. "42 1 2": the runs once per seed (train.seed, last override) in ${out}_s<seed>/, the table of means in $out
lm=exp/ablation/lm/final.pt  # text LM (on $tokenizer); trained here with conf/lm.yaml + lm_args when missing
lm_args=""                   # text-LM overrides when it is trained here, e.g. "train.num_epochs=6"
encoders=random              # encoder init: random | ssl (from $ssl), e.g. "random ssl" for both
ssl=exp/ablation/ssl/final.pt  # BEST-RQ encoder; pretrained here (conf/ssl.yaml + ssl_args) when missing
ssl_args=""                  # pretraining overrides, e.g. "train.num_epochs=40"
ssl_cuts=""                  # the pretraining audio (cut manifests, space-separated; never test); empty: the paired training cuts
ssl_ft_args=""               # extra fine-tuning overrides of the SSL-encoder runs, e.g. "encoder.lr_scale=0.5"
# end options
