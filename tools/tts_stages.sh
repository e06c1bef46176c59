#!/usr/bin/env bash
# TTS stages (fine-tuning from the stage-3 text LM; synthesis + evaluation), sourced by a recipe's
# run.sh after stage_lib.sh and asr_stages.sh. Call `tts_stages` after `asr_stages`: the TTS data
# stage aligns with the stage-4 ASR model, and the evaluation decodes with it.
# Inputs (set by run.sh): data, exp, corpus, lm_text (training sentences), nj, resume,
#   tts_conf (e.g. conf/tts.yaml), tts_args (config overrides), tts_voice (espeak
#   VOICE[:RATE[:PITCH]], or "corpus": the recipe's own recorded voice, its train cuts for training
#   and its test cuts as references; one speaker's corpus), tts_num_train, tts_num_test, recipe_args.
# Reads  $data/manifests/${corpus}_cuts_test.jsonl.gz (test sentences), $exp/asr (aligner + round
#   trip), $exp/lm/final.pt (text-encoder init; random init when missing), $data/lang_bpe/bpe.model,
#   $data/lang_bpe/HLG.fst (hlg-1best in the round trip, when present).
# Writes $data/tts/ (one-voice WAVs, manifests, feats_train.pt), $exp/tts/ (model, log,
#   eval-test/: WAVs, mels.png, asr-* reports, tts-summary.txt), a RESULTS.md row.
# Own markers and logs: .done/tts-data/, .done/tts/ and exp/log/tts*/ (stage numbers 4 and 5 are
# shared with the ASR stages, so a finished ASR stage 4 does not skip TTS stage 4).

_tts_cuts() {  # _tts_cuts SPLIT: the TTS data's cut manifest (a recorded voice: the corpus's own)
  if [ "${tts_voice:-}" = corpus ]; then echo "$data/manifests/${corpus}_cuts_$1.jsonl.gz"
  else echo "$data/tts/manifests/tts_cuts_$1.jsonl.gz"; fi
}

stage_tts_data() {
  if [ "${tts_voice:-}" != corpus ]; then
    speechlm prepare-tts-data --out-dir "$data/tts" --train-text "$lm_text" \
      --test-text "$data/manifests/${corpus}_cuts_test.jsonl.gz" --voice "${tts_voice:-en-us+m8:175:43}" \
      --num-train "${tts_num_train:-1200}" --num-test "${tts_num_test:-100}" --num-jobs "$nj" || return 1
  fi
  # shellcheck disable=SC2086
  speechlm tts-features --cuts "$(_tts_cuts train)" --asr-dir "$exp/asr" \
    --out "$data/tts/feats_train.pt" --config "${tts_conf:-conf/tts.yaml}" --set ${tts_args:-}
}

stage_tts_train() {
  local init="tts.lm_init=''"
  if [ -f "$exp/lm/final.pt" ]; then
    init="tts.lm_init=$exp/lm/final.pt"
  else
    echo "TTS: $exp/lm/final.pt not found (stage 3 not run): text encoder starts from random init"
  fi
  # shellcheck disable=SC2086
  speechlm train-tts --config "${tts_conf:-conf/tts.yaml}" --exp-dir "$exp/tts" \
    --features "$data/tts/feats_train.pt" --tokenizer "$data/lang_bpe/bpe.model" \
    ${resume:+--resume} --set "$init" ${tts_args:-}
}

stage_tts_eval() {
  local cmd="cd egs/$(basename "$PWD") && ./run.sh ${recipe_args:-}"
  speechlm eval-tts --model-dir "$exp/tts" --ref-cuts "$(_tts_cuts test)" \
    --asr-dir "$exp/asr" --lang-dir "$data/lang_bpe" --out-dir "$exp/tts/eval-test" \
    --results-md RESULTS.md --command "$cmd"
}

tts_stages() {
  local outer_done=$done_dir outer_log=$log_dir
  local done_dir="$outer_done/tts-data" log_dir="$outer_log/tts-data"  # seen by run_stage
  run_stage 4 "TTS data: one voice (${tts_voice:-en-us+m8:175:43}) + CTC alignment" "$data/tts/ (feats_train.pt)" \
    stage_tts_data
  done_dir="$outer_done/tts" log_dir="$outer_log/tts"
  run_stage 4 "TTS training" "$exp/tts/final.pt (log: $exp/tts/log/train.log)" stage_tts_train
  run_stage 5 "TTS synthesis + evaluation" "$exp/tts/eval-test/ (tts-summary.txt, mels.png), RESULTS.md" \
    stage_tts_eval
  if [ "$stop_stage" -ge 5 ] && [ -f "$exp/tts/eval-test/tts-summary.txt" ]; then
    echo "== TTS ($exp/tts/eval-test/tts-summary.txt):"
    cat "$exp/tts/eval-test/tts-summary.txt"
  fi
}
