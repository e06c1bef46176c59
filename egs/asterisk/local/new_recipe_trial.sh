#!/usr/bin/env bash
# The "new user" trial of a language: turn the upstream layout (core-sounds-<lang>.txt: "key: text"
# lines beside <key>.wav) into a plain TSV with no normalisation of our own, let
# `speechlm new-recipe` generate a recipe from it, and run that recipe with its default config.
#   cd egs/asterisk && local/new_recipe_trial.sh --lang es [--corpus-dir ../../../shared/data/asterisk]
#       [--stop-stage 5]
# Writes <work>/<lang>.tsv and the recipe ../ast_<lang>_new/ (delete it to start again); its
# RESULTS.md gets the test WER/CER. Compare with hand configs by re-running its stage 4-5 with
# --train-args (same split, same data).
set -euo pipefail
lang=es
corpus_dir=../../../shared/data/asterisk
work=data/new_recipe_trial
stop_stage=5
while [ $# -gt 0 ]; do
  case "$1" in
    --lang) lang=$2 ;;
    --corpus-dir) corpus_dir=$2 ;;
    --work) work=$2 ;;
    --stop-stage) stop_stage=$2 ;;
    *) echo "new_recipe_trial.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
. ../../tools/stage_lib.sh   # the repository's .venv on PATH when needed
src=$corpus_dir/$lang
[ -f "$src/core-sounds-$lang.txt" ] || { echo "new_recipe_trial.sh: $src/core-sounds-$lang.txt not found (--corpus-dir)" >&2; exit 2; }
mkdir -p "$work"
tsv=$(cd "$work" && pwd)/$lang.tsv
python3 - "$src" "$lang" "$tsv" <<'PY'
import sys
from pathlib import Path
src, lang, out = Path(sys.argv[1]).resolve(), sys.argv[2], Path(sys.argv[3])
rows = ["path\ttext"]
for line in (src / f"core-sounds-{lang}.txt").read_text(encoding="utf-8-sig").splitlines():
    key, sep, text = line.partition(":")
    if line.startswith(";") or not sep:
        continue
    wav = src / f"{key.strip()}.wav"
    if wav.is_file():
        rows.append(f"{wav}\t{text.strip()}")
out.write_text("\n".join(rows) + "\n", encoding="utf-8")
print(f"{out}: {len(rows) - 1} rows", file=sys.stderr)
PY
recipe=../ast_${lang}_new
[ -d "$recipe" ] || speechlm new-recipe "ast_${lang}_new" --egs-dir .. --from tsv "$tsv" --on-error skip \
  --import-args "--language $lang"
cd "$recipe" && ./run.sh --stop-stage "$stop_stage"
