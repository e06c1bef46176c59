#!/usr/bin/env bash
# Seed study of a recipe's ASR model: train it once per seed on the recipe's stage-1 features and
# stage-2 tokenizer, decode the test set, and print one table row per seed plus the spread.
# Run from a recipe dir after `./run.sh --stop-stage 2`:
#   ../../tools/seed_study.sh --seeds "0 1 2 3 4" [--out exp/seeds] [--conf conf/asr.yaml]
#       [--train-args "optim.lr=1e-3"] [--methods ctc-greedy,hlg-1best] [--corpus NAME]
#       [--data DIR]   # the recipe's data dir for this run (default data; e.g. data/spk-theo)
# Each seed trains into OUT/sN (skipped when OUT/sN/decode-test has its summary: delete to redo).
set -euo pipefail

seeds="0 1 2 3 4"
out=exp/seeds
conf=conf/asr.yaml
train_args=""
methods=ctc-greedy
corpus=$(basename "$PWD")
data=data
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds=$2 ;;
    --out) out=$2 ;;
    --conf) conf=$2 ;;
    --train-args) train_args=$2 ;;
    --methods) methods=$2 ;;
    --corpus) corpus=$2 ;;
    --data) data=$2 ;;
    *) echo "seed_study.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
. "$(dirname "$0")/stage_lib.sh"   # puts the repository's .venv on PATH when needed
cuts() { echo "$data/fbank/${corpus}_cuts_$1.jsonl.gz"; }
for f in "$(cuts train)" "$(cuts test)" "$data/lang_bpe/bpe.model"; do
  [ -f "$f" ] || { echo "seed_study.sh: $f not found: run ./run.sh --stop-stage 2 first" >&2; exit 2; }
done
dev_args=()
if [ -f "$(cuts dev)" ]; then dev_args=(--dev-cuts "$(cuts dev)"); fi
lang_args=()
case ",$methods," in *,hlg*) lang_args=(--lang-dir "$data/lang_bpe") ;; esac

for s in $seeds; do
  dir=$out/s$s
  if [ ! -f "$dir/decode-test/wer-summary-test.txt" ]; then
    t0=$SECONDS
    # shellcheck disable=SC2086
    speechlm train --config "$conf" --exp-dir "$dir" --train-cuts "$(cuts train)" "${dev_args[@]}" \
      --tokenizer "$data/lang_bpe/bpe.model" --set train.seed="$s" $train_args > "$out.s$s.log" 2>&1 \
      || { echo "seed $s: training failed, see $out.s$s.log" >&2; exit 1; }
    speechlm decode --exp-dir "$dir" --cuts "$(cuts test)" --methods "$methods" "${lang_args[@]}" \
      >> "$out.s$s.log" 2>&1 || { echo "seed $s: decoding failed, see $out.s$s.log" >&2; exit 1; }
    echo "seed $s: trained and decoded in $((SECONDS - t0)) s" >&2
  fi
done

# table: seed x method (test WER %), then mean / min / max per method
python3 - "$out" "$methods" $seeds <<'EOF'
import sys
from pathlib import Path
out, methods, seeds = Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3:]
rows = {}
for s in seeds:
    lines = (out / f"s{s}" / "decode-test" / "wer-summary-test.txt").read_text().split("\n")[1:]
    rows[s] = {p[0]: float(p[1]) for p in (line.split("\t") for line in lines if line)}
print("| seed | " + " | ".join(methods) + " |")
print("|---|" + "---|" * len(methods))
for s in seeds:
    print(f"| {s} | " + " | ".join(f"{rows[s][m]:.2f}" for m in methods) + " |")
for name, f in (("mean", lambda v: sum(v) / len(v)), ("min", min), ("max", max)):
    print(f"| {name} | " + " | ".join(f"{f([rows[s][m] for s in seeds]):.2f}" for m in methods) + " |")
EOF
