#!/usr/bin/env bash
# TTS ablation on synth_en: the TTS text encoder (a) randomly initialised vs (b) initialised from
# the stage-3 text LM. Same data (the recipe's one-voice TTS set), config, steps and seed; only
# tts.lm_init differs. Each model is evaluated like stage 5 (MCD-DTW, round-trip ASR WER).
#   ./run.sh                          # stages 0-5 incl. the TTS stages (data/tts/feats_train.pt, exp/asr, exp/lm)
#   local/run_tts_ablation.sh         # 2 trainings + evaluations; table appended to RESULTS.md
# Outputs: exp/tts_ablation/<init>/ (checkpoints, eval-test/), exp/tts_ablation/table.md
set -euo pipefail
cd "$(dirname "$0")/.."

# begin options
tts_conf=conf/tts.yaml               # TTS config (the same for both runs)
tts_args=""                          # extra overrides for both runs, e.g. "train.num_epochs=8"
inits="random pretrained"            # random | pretrained (exp/lm/final.pt)
features=data/tts/feats_train.pt     # TTS features (recipe TTS data stage)
ref_cuts=data/tts/manifests/tts_cuts_test.jsonl.gz  # one-voice references of the test sentences
tokenizer=data/lang_bpe/bpe.model    # sentencepiece model (stage 2; the LM's and the ASR's)
lm=exp/lm/final.pt                   # stage-3 text LM
asr=exp/asr                          # ASR model for the round trip
lang_dir=data/lang_bpe               # hlg-1best is added when it has HLG.fst
out=exp/tts_ablation                 # where the runs and table.md go
# end options
args=("$@")  # the command line as given, before option parsing consumes "$@"
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh   # puts .venv/bin on PATH when needed
cmd="cd egs/synth_en && local/run_tts_ablation.sh$(quote_args "${args[@]}")"

for f in "$lm" "$features" "$ref_cuts" "$tokenizer" "$asr/final.pt"; do
  [ -f "$f" ] || { echo "run_tts_ablation.sh: $f missing: run ./run.sh (TTS stages included) first" >&2; exit 1; }
done
mkdir -p "$out"
# random init gets the stage-3 LM's architecture too, so only the initial weights differ
py="$(dirname "$(command -v speechlm)")/python"  # the venv's python has pyyaml
arch=$("$py" -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1]))["lm"]
print(" ".join(f"lm.{k}={c[k]}" for k in ("d_model", "num_layers", "num_heads", "ff_mult")))' \
  "$(dirname "$lm")/config.yaml")
for init in $inits; do
  exp_dir=$out/$init
  case $init in
    random) lm_init="tts.lm_init=''" ;;
    pretrained) lm_init="tts.lm_init=$lm" ;;
    *) echo "run_tts_ablation.sh: unknown init $init" >&2; exit 2 ;;
  esac
  if [ ! -f "$exp_dir/final.pt" ]; then
    echo "== TTS ablation: training $exp_dir ($(date '+%T'))"
    t0=$SECONDS
    # shellcheck disable=SC2086
    speechlm train-tts --config "$tts_conf" --exp-dir "$exp_dir" --features "$features" \
      --tokenizer "$tokenizer" --set "$lm_init" $arch $tts_args
    echo "$((SECONDS - t0))" > "$exp_dir/train_seconds.txt"
  fi
  if [ ! -f "$exp_dir/eval-test/tts-summary.json" ]; then
    speechlm eval-tts --model-dir "$exp_dir" --ref-cuts "$ref_cuts" --asr-dir "$asr" \
      --lang-dir "$lang_dir" --out-dir "$exp_dir/eval-test"
  fi
done

speechlm ablation-table --kind tts --dir "$out" --inits "$inits" --command "$cmd" | tee "$out/table.md"
{
  echo "Run $(date +%F). Same one-voice data, config ($tts_conf${tts_args:+, $tts_args}), steps and seed; only tts.lm_init differs."
  echo
  cat "$out/table.md"
} | speechlm results-md --section "$out" --title "TTS ablation: LM-pretrained vs random text encoder"
echo "== TTS ablation table appended to RESULTS.md (also in $out/table.md)"
