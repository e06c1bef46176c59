#!/usr/bin/env bash
# Stages 1-5 shared by every ASR recipe; sourced by run.sh after stage 0 is defined.
# Inputs (set by run.sh): corpus (manifest prefix), data (data dir), exp (exp dir), conf,
# vocab_size, token_type (unigram|bpe|char|word), speed_perturb, nj, nproc, train_args (config overrides), methods,
# lm_text (extra tokenizer text, may be empty), splits (e.g. "train dev test"); optional:
# tokenizer_args (more train-tokenizer options, e.g. --languages), lang_max_lines (stage 2: the
# HLG n-gram from a seeded sample of that many lm_text lines), test_sets (the splits stage 5
# decodes, default "test"), subset_sets (those of test_sets after the first that are subsets of
# it, e.g. one voice's: scored from its decode, not decoded again), tune (stage 5: decode.* values chosen on dev), streaming, ssl_conf / ssl_splits / ssl_args / ssl_extra (stage 3 self-supervised
# encoder pretraining; stage 4 then fine-tunes from $exp/ssl/final.pt).
# Reads  $data/manifests/${corpus}_cuts_<split>.jsonl.gz  (written by stage 0).

_sl_cuts() { echo "$data/fbank/${corpus}_cuts_$1.jsonl.gz"; }
_sl_has_dev() { case " $splits " in *" dev "*) return 0 ;; esac; return 1; }

stage_features() {
  for s in $splits; do
    local sp=""
    if [ "$s" = train ] && [ -n "$speed_perturb" ]; then sp="--speed-perturb $speed_perturb"; fi
    # shellcheck disable=SC2086
    speechlm compute-fbank --cuts "$data/manifests/${corpus}_cuts_$s.jsonl.gz" \
      --out "$(_sl_cuts "$s")" --storage "$data/fbank/feats_$s" --num-jobs "$nj" $sp || return 1
  done
}

stage_tokenizer() {
  local text_args=()
  if [ -n "${lm_text:-}" ]; then text_args=(--text "$lm_text"); fi
  # shellcheck disable=SC2086
  speechlm train-tokenizer --cuts "$data/manifests/${corpus}_cuts_train.jsonl.gz" "${text_args[@]}" \
    --out-dir "$data/lang_bpe" --vocab-size "$vocab_size" --model-type "${token_type:-unigram}" \
    ${tokenizer_args:-}
}

stage_lang() {
  local text_args=()
  if [ -n "${lm_text:-}" ]; then text_args=(--text "$lm_text"); fi
  speechlm prepare-lang --tokenizer "$data/lang_bpe/bpe.model" \
    --cuts "$data/manifests/${corpus}_cuts_train.jsonl.gz" "${text_args[@]}" \
    --out-dir "$data/lang_bpe" --ngram-order "${ngram_order:-3}" \
    ${lang_max_lines:+--max-text-lines "$lang_max_lines"}
}

stage_tokenizer_and_lang() {
  stage_tokenizer || return 1
  if [ -n "$hlg_graph" ]; then stage_lang; fi
}

stage_lm() {
  # Text-LM pretraining on $lm_text (conf: $lm_conf, overrides: $lm_args); writes perplexity.txt
  # shellcheck disable=SC2086
  speechlm train-lm --config "${lm_conf:-conf/lm.yaml}" --exp-dir "$exp/lm" --text "$lm_text" \
    --tokenizer "$data/lang_bpe/bpe.model" ${resume:+--resume} --set ${lm_args:-} || return 1
  local cmd="cd egs/$(basename "$PWD") && ./run.sh ${recipe_args:-}"
  printf -- '- %s @COMMIT@ text LM (%s, %s): %s  \n  command: `%s`\n' "$(date +%F)" "$exp/lm" \
    "${lm_conf:-conf/lm.yaml}" "$(cat "$exp/lm/perplexity.txt")" "$cmd" |
    speechlm results-md --section "$exp/lm" --title "text LM (stage 3)"
}

stage_ssl() {
  # BEST-RQ pretraining of the encoder on the audio of $ssl_splits (text never read), dev for
  # validation; the encoder architecture is $conf's (and train_args' encoder.*), as fine-tuning needs
  local cuts=() dev_args=() s
  for s in ${ssl_splits:-train}; do
    case "$s" in test*) echo "stage 3: ssl_splits has $s: test audio is never used for pretraining" >&2
                        return 1 ;; esac
    cuts+=("$(_sl_cuts "$s")")
  done
  for s in ${ssl_extra:-}; do cuts+=("$s"); done
  if _sl_has_dev; then dev_args=(--dev-cuts "$(_sl_cuts dev)"); fi
  local launcher=(speechlm)
  if [ "$nproc" -gt 1 ]; then
    launcher=(torchrun --standalone --nproc_per_node "$nproc" -m speechlm.cli)
  fi
  # shellcheck disable=SC2086
  "${launcher[@]}" train-ssl --config "$ssl_conf" --encoder-config "$conf" --exp-dir "$exp/ssl" \
    --train-cuts "${cuts[@]}" "${dev_args[@]}" ${resume:+--resume} --set $ssl_encoder_args ${ssl_args:-} || return 1
  local cmd="cd egs/$(basename "$PWD") && ./run.sh ${recipe_args:-}"
  printf -- '- %s @COMMIT@ SSL encoder (%s, %s, audio of %s): %s  cost: %s  \n  command: `%s`\n' \
    "$(date +%F)" "$exp/ssl" "$ssl_conf" "${ssl_splits:-train}${ssl_extra:+ + $ssl_extra}" "$(cat "$exp/ssl/masked_accuracy.txt")" \
    "$(cat "$exp/ssl/cost.json")" "$cmd" | speechlm results-md --section "$exp/ssl" --title "SSL encoder (stage 3)"
}

stage_lm_and_ssl() {
  stage_lm && stage_ssl
}

stage_train() {
  local launcher=(speechlm)
  if [ "$nproc" -gt 1 ]; then
    launcher=(torchrun --standalone --nproc_per_node "$nproc" -m speechlm.cli)
  fi
  local dev_args=()
  if _sl_has_dev; then dev_args=(--dev-cuts "$(_sl_cuts dev)"); fi
  # shellcheck disable=SC2086
  "${launcher[@]}" train --config "$conf" --exp-dir "$exp/asr" --train-cuts "$(_sl_cuts train)" \
    "${dev_args[@]}" --tokenizer "$data/lang_bpe/bpe.model" ${resume:+--resume} \
    --set $train_args
}

stage_decode() {
  local cmd="cd egs/$(basename "$PWD") && ./run.sh ${recipe_args:-}"
  local lm_args=()  # lm-shallow-fusion uses the stage-3 LM when there is one
  if [ -f "$exp/lm/final.pt" ]; then lm_args=(--lm-checkpoint "$exp/lm/final.pt"); fi
  local tune_args=()  # --tune: values chosen on the dev split, per method and per stream/full
  # shellcheck disable=SC2206
  if [ -n "${tune:-}" ]; then tune_args=(--tune $tune --tune-cuts "$(_sl_cuts dev)"); fi
  local s sets=${test_sets:-test} first subset_args sub
  read -r first _ <<< "$sets"
  subset_decode_args "$sets" "${subset_sets:-}" "$data/fbank/${corpus}_cuts"  # scored with the first set
  for s in $sets; do
    case " ${subset_args[*]} " in *" $s="*) continue ;; esac
    sub=(); [ "$s" != "$first" ] || sub=("${subset_args[@]}")
    speechlm decode --exp-dir "$exp/asr" --cuts "$(_sl_cuts "$s")" --set-name "$s" \
      --methods "$methods" --lang-dir "$data/lang_bpe" --results-md RESULTS.md --command "$cmd" \
      "${lm_args[@]}" "${tune_args[@]}" "${sub[@]}" || return 1
    if [ -n "${streaming:-}" ]; then  # the same model as a stream: the CTC methods
      local ctc_methods
      ctc_methods=$(echo "$methods" | tr ',' '\n' | grep -E '^(ctc|hlg)-' | paste -sd, -)
      [ -z "$ctc_methods" ] && continue
      speechlm decode --exp-dir "$exp/asr" --cuts "$(_sl_cuts "$s")" --set-name "$s" \
        --methods "$ctc_methods" --lang-dir "$data/lang_bpe" --results-md RESULTS.md \
        --command "$cmd" --tag "stream$streaming" --set "decode.streaming_chunk=$streaming" \
        "${tune_args[@]}" "${sub[@]}" || return 1
    fi
  done
}

# _llm_methods: with --llm, the decoding methods that apply to a model on the LLM's own
# tokenizer (hlg-* and the tiny-LM fusions are built on speechlm's), the decoder's methods added
_llm_methods() {
  local kept dropped="" m
  kept=$(llm_decoding_methods "$methods,attention-beam,attention-rescoring")
  for m in ${methods//,/ }; do
    case ",$kept," in *",$m,"*) ;; *) dropped+="$m," ;; esac
  done
  methods=$kept
  if [ -n "$dropped" ]; then
    echo "$(basename "$0"): --llm $llm: stages 4-5 decode with $methods; ${dropped%,} need" \
      "speechlm's own tokenizer (the LLM has its own) and are left out for this model"
  fi
}

asr_stages() {
  # stage 2 reads whether an hlg-* method is asked for, not the list (its marker records what
  # the stage read: adding a method that needs no graph re-runs decoding only)
  hlg_graph=$(case ",$methods," in *,hlg*) echo yes ;; esac)
  local llm_tag=""
  if [ -n "${llm:-}" ]; then
    llm_tag=$(basename "$llm"); llm_tag=${llm_tag%.gguf}; llm_tag=${llm_tag//[^A-Za-z0-9_.-]/-}
    local methods=$methods train_args="model.kind=speechlm-llm llm.source=$llm $train_args"
    _llm_methods
  fi
  if [ -n "${tune:-}" ] && ! _sl_has_dev; then
    echo "$(basename "$0"): --tune '$tune' needs a dev split to choose on, and this recipe's" \
      "splits are: $splits (never tune on a test set); leave --tune out" >&2
    exit 2
  fi
  # a hlg-* method decodes with the graph stage 2 builds: when this run decodes but does not
  # include stage 2 and no graph is there, say so now (not after training)
  if [ -n "$hlg_graph" ] && [ -z "$llm_tag" ] && [ "$stage" -gt 2 ] && [ "$stop_stage" -ge 5 ] &&
     [ ! -f "$data/lang_bpe/HLG.fst" ]; then
    echo "$(basename "$0"): --methods $methods needs the decoding graph $data/lang_bpe/HLG.fst," \
      "which stage 2 builds when a hlg-* method is asked for, and this run starts at stage" \
      "$stage: run from stage 2 (./run.sh --stage 2 --methods $methods; the stages after it run" \
      "again), or leave the hlg-* methods out" >&2
    exit 2
  fi
  if [ -n "${streaming:-}" ]; then
    # a model that can stream: conv module cut at chunk ends, attention trained on chunks of 1..16
    # frames or full context (train_args, after these, may override them)
    train_args="encoder.chunk_conv=true encoder.dynamic_chunk=16 $train_args"
  fi
  if [ -n "${ssl_conf:-}" ]; then
    # stage 4 fine-tunes from stage 3's encoder (train_args, after it, may override the path);
    # the pretraining takes the ASR run's encoder.* overrides, so the architectures match, and
    # its data.speaker_cmvn, so both normalise the features alike
    train_args="encoder.init=$exp/ssl/final.pt $train_args"
    ssl_encoder_args=$(for a in $train_args; do case "$a" in
      encoder.init=*|encoder.freeze_steps=*|encoder.lr_scale=*|encoder.layer_lr_decay=*) ;;
      encoder.*|data.speaker_cmvn=*) printf '%s ' "$a" ;; esac; done)
  fi
  run_stage 1 "fbank features" "$data/fbank/" stage_features
  run_stage 2 "tokenizer + lang" "$data/lang_bpe/ (bpe.model; HLG.fst when decoding with hlg-*)" \
    stage_tokenizer_and_lang
  local ssl_out="$exp/ssl/final.pt, $exp/ssl/masked_accuracy.txt, cost.json (log: $exp/ssl/log/train.log)"
  if [ -n "${lm_text:-}" ] && [ -n "${ssl_conf:-}" ]; then
    run_stage 3 "LM + SSL pretraining" "$exp/lm/final.pt, $ssl_out" stage_lm_and_ssl
  elif [ -n "${ssl_conf:-}" ]; then
    run_stage 3 "SSL pretraining" "$ssl_out" stage_ssl
  elif [ -n "${lm_text:-}" ]; then
    run_stage 3 "LM pretraining" "$exp/lm/final.pt, $exp/lm/perplexity.txt (log: $exp/lm/log/train.log)" \
      stage_lm
  else
    skip_stage 3 "LM pretraining" "this recipe has no LM text (lm_text is not set)"
  fi
  if [ -n "$llm_tag" ]; then
    # the LLM model lives beside the default one: its own exp dir, markers and logs; nothing
    # after this (TTS stages) depends on it
    local exp=$exp/llm-$llm_tag done_dir=$done_dir/llm-$llm_tag _sl_upstream=$_sl_upstream
    local log_dir=$exp/log
  fi
  run_stage 4 "ASR training" "$exp/asr/final.pt (log: $exp/asr/log/train.log)" stage_train
  run_stage 5 "decoding + scoring" "$exp/asr/decode-<set>/ for ${test_sets:-test}; RESULTS.md" stage_decode
  local s
  for s in ${test_sets:-test}; do
    if [ "$stop_stage" -ge 5 ] && [ -f "$exp/asr/decode-$s/wer-summary-$s.txt" ]; then
      echo "== $s WER ($exp/asr/decode-$s/wer-summary-$s.txt):"
      cat "$exp/asr/decode-$s/wer-summary-$s.txt"
    fi
  done
}
