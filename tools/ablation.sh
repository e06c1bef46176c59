#!/usr/bin/env bash
# The speech-language pretraining ablation shared by the recipes: speech-LM ASR ($conf) with its
# decoder random-init, from the text LM ($lm), or a pretrained LLM ($llm), and its encoder random or
# from a BEST-RQ pretraining ($ssl), on all paired data and on a low-resource subset; each run decodes
# every method in one pass, and one table (best method per arm, relative to random init) goes to
# $out/table.md and RESULTS.md. --seeds "42 1 2" repeats every run per seed (train.seed; the same
# low-resource subset, LM and SSL encoder) in ${out}_s<seed>/, each with its own table.md, and the
# table in $out is the mean over the seeds (speechlm ablation-table --dir DIR...). Sourced by a
# recipe's local/run_ablation.sh after tools/ablation_options.sh, its own options, parse_options.sh
# and stage_lib.sh (which see).
[ -n "$corpus" ] || { echo "$(basename "$0"): --corpus is empty (the recipe sets it)" >&2; exit 2; }
cmd="cd egs/$(basename "$PWD") && local/$(basename "$0")$(quote_args "${ablation_args[@]}")"

fbank=data/fbank/${corpus}_cuts
train_full=${fbank}_train.jsonl.gz
ssl_cuts=${ssl_cuts:-$train_full}
read -ra test_list <<< "$test_sets"
read -ra seed_list <<< "$seeds"
for s in "${seed_list[@]}"; do
  [[ $s =~ ^[0-9]+$ ]] || { echo "$(basename "$0"): --seeds: $s is not a seed (non-negative integers, e.g. \"42 1 2\")" >&2; exit 2; }
done
run_dirs=("$out")  # one ablation per seed, or one
[ ${#seed_list[@]} -eq 0 ] || { run_dirs=(); for s in "${seed_list[@]}"; do run_dirs+=("${out}_s$s"); done; }
[ ${#test_list[@]} -gt 0 ] || { echo "$(basename "$0"): --test-sets is empty" >&2; exit 2; }
for s in $subset_sets; do  # scored from the decode of the first test set
  case " ${test_list[*]:1} " in *" $s "*) ;; *)
    echo "$(basename "$0"): --subset-sets: $s is not one of the test sets after the first (${test_list[*]:1})" >&2; exit 2 ;;
  esac
done
subset_decode_args "${test_list[*]}" "$subset_sets" "$fbank"
for f in "$train_full" "$tokenizer"; do
  [ -f "$f" ] || { echo "$(basename "$0"): $f missing: run ./run.sh --stop-stage 2 first" >&2; exit 1; }
done
for s in "${test_list[@]}"; do
  f=${fbank}_$s.jsonl.gz
  [ -f "$f" ] || { echo "$(basename "$0"): --test-sets: $f missing: run ./run.sh --stop-stage 2 first, or leave $s out" >&2; exit 1; }
done
case " $encoders " in *" ssl "*)  # the pretraining audio, checked before anything trains
  if [ ! -f "$ssl" ]; then
    for f in $ssl_cuts; do
      [ -f "$f" ] || { echo "$(basename "$0"): --ssl-cuts: $f missing (the unlabeled split comes from ./run.sh --stop-stage 2 --num-unlabeled N)" >&2; exit 1; }
      case "${f##*/}" in *_test*) echo "$(basename "$0"): --ssl-cuts has $f: test audio is never used for pretraining" >&2; exit 2 ;; esac
    done
  fi ;;
esac
mkdir -p "$out"
if [ ! -f "$lm" ]; then
  echo "== ablation: training the text LM $(dirname "$lm") ($(date '+%T'))"
  # shellcheck disable=SC2086
  speechlm train-lm --config conf/lm.yaml --exp-dir "$(dirname "$lm")" --text data/text/lm_text.txt \
    --tokenizer "$tokenizer" ${lm_args:+--set $lm_args}
fi
case " $encoders " in *" ssl "*)
  if [ ! -f "$ssl" ]; then
    echo "== ablation: pretraining the encoder $(dirname "$ssl") on the audio of $ssl_cuts ($(date '+%T'))"
    # shellcheck disable=SC2086
    speechlm train-ssl --config conf/ssl.yaml --encoder-config "$conf" --exp-dir "$(dirname "$ssl")" \
      --train-cuts $ssl_cuts --dev-cuts "${fbank}_dev.jsonl.gz" ${ssl_args:+--set $ssl_args}
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
for r in "${!run_dirs[@]}"; do
  run_out=${run_dirs[$r]}
  seed_args=${seed_list[$r]:+train.seed=${seed_list[$r]}}
  for cond in $conditions; do
    for init in $inits; do
    for encoder in $encoders; do
      case $encoder in
        random) exp_dir=$run_out/$cond-$init enc_args=() ;;
        ssl) exp_dir=$run_out/$cond-$init+ssl enc_args=("encoder.init=$ssl_yaml") ;;
        *) echo "$(basename "$0"): unknown encoder init $encoder (random | ssl)" >&2; exit 2 ;;
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
        *) echo "$(basename "$0"): unknown init $init" >&2; exit 2 ;;
      esac
      if [ ! -f "$exp_dir/final.pt" ]; then
        echo "== ablation: training $exp_dir ($(date '+%T'))"
        t0=$SECONDS
        # shellcheck disable=SC2086
        speechlm train --config "$conf" --exp-dir "$exp_dir" --train-cuts "$cuts" \
          --tokenizer "$tokenizer" --set "${lm_init[@]}" "${enc_args[@]}" $init_args $extra \
          ${enc_args[0]:+$ssl_ft_args} $post_args $seed_args
        echo "== ablation: $exp_dir trained in $((SECONDS - t0)) s"
      fi
      for set in "${test_list[@]}"; do
        [ ! -f "$exp_dir/decode-$set/.done" ] || continue
        case " $subset_sets " in *" $set "*) continue ;; esac  # scored with the first set
        sub=(); [ "$set" != "${test_list[0]}" ] || sub=("${subset_args[@]}")
        if [ "$init" = llm ]; then  # the methods on the LLM's own tokenizer (no tiny-LM fusion)
          # shellcheck disable=SC2086
          speechlm decode --exp-dir "$exp_dir" --cuts "${fbank}_$set.jsonl.gz" --set-name "$set" \
            --methods "$(llm_decoding_methods "$methods")" "${sub[@]}" --set $decode_args
        else
          # shellcheck disable=SC2086
          speechlm decode --exp-dir "$exp_dir" --cuts "${fbank}_$set.jsonl.gz" --set-name "$set" \
            --methods "$methods" --lm-checkpoint "$lm" "${sub[@]}" --set $decode_args
        fi
        touch "$exp_dir/decode-$set/.done"
        for s in $subset_sets; do
          [ "$set" != "${test_list[0]}" ] || touch "$exp_dir/decode-$s/.done"
        done
      done
    done
    done
  done
done

# one table: method x (condition, init), best method per init, relative reductions; over several
# seeds, the means (each seed's own table in its dir)
tables() {  # the run dirs to tabulate together
  speechlm ablation-table --dir "$@" --set-name "${test_list[0]}" --command "$cmd"
  for set in "${test_list[@]:1}"; do  # the other test sets, each its own table
    printf '\n%s:\n\n' "$set"
    speechlm ablation-table --dir "$@" --set-name "$set"
  done
  echo
  echo "text LM: $(cat "$(dirname "$lm")/perplexity.txt")"
  case " $encoders " in *" ssl "*) echo "SSL encoder ($ssl; audio of $ssl_cuts, no text): $(cat "$(dirname "$ssl")/masked_accuracy.txt")" ;; esac
}
if [ ${#seed_list[@]} -gt 0 ]; then
  for d in "${run_dirs[@]}"; do tables "$d" > "$d/table.md"; done
fi
tables "${run_dirs[@]}" | tee "$out/table.md"
{
  echo "Run $(date +%F). Speech-LM ASR ($conf): LM part random-init vs from the text LM $lm."
  case " $conditions " in *" low "*) echo "low = $low_fraction of the paired training utterances (random subset, seed $subset_seed${low_speed_perturb:+, plus speed-perturbed copies at $low_speed_perturb}; $low_args)." ;; esac
  case " $conditions " in *" full "*) echo "full = all paired training utterances (${full_args:-the schedule of $conf})." ;; esac
  [ -z "$random_args" ] || echo "random-init runs also: $random_args."
  [ -z "$pretrained_args" ] || echo "pretrained runs also: $pretrained_args."
  [ ${#seed_list[@]} -eq 0 ] || echo "Seeds ${seed_list[*]} (train.seed; runs in ${out}_s<seed>/): means over them."
  echo "Every method decodes ${test_list[*]} in one pass ($decode_args; the rest of the decode section of $conf)${subset_sets:+; $subset_sets scored from the decode of ${test_list[0]}}; RTF on a shared 2-core CPU."
  echo
  cat "$out/table.md"
} | speechlm results-md --section "$out" --title "speech-language pretraining ablation"
echo "== ablation table appended to RESULTS.md (also in $out/table.md)"
