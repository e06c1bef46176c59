#!/usr/bin/env bash
# Multilingual vs monolingual: per language, test WER and CER of the monolingual model
# (exp/<lang>/asr, decoded on data/<lang>'s test) and of the multilingual one
# (exp/es_fr_it_ru/asr on test_<lang>, the same prompts), for each decoding method.
#   local/compare.sh            # print the table
#   local/compare.sh --write    # also add it to RESULTS.md (section "comparison")
set -euo pipefail
cd "$(dirname "$0")/.."
multi=${MULTI:-es_fr_it_ru}
cell() {  # cell SUMMARY METHOD -> "WER / CER" from a wer-summary file
  [ -f "$1" ] || { echo "n/a"; return; }
  awk -F'\t' -v m="$2" 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i }
    $1 == m { printf "%s / %s", $col["WER"], $col["CER"] }' "$1"
}
methods=$(awk -F'\t' 'NR > 1 { print $1 }' "exp/es/asr/decode-test/wer-summary-test.txt" | sort)
{
  printf '| language | method | monolingual WER / CER %% | multilingual WER / CER %% |\n|---|---|---|---|\n'
  for lang in es fr it ru; do
    for m in $methods; do
      printf '| %s | %s | %s | %s |\n' "$lang" "$m" \
        "$(cell "exp/$lang/asr/decode-test/wer-summary-test.txt" "$m")" \
        "$(cell "exp/$multi/asr/decode-test_$lang/wer-summary-test_$lang.txt" "$m")"
    done
  done
} > "exp/comparison.md"
cat exp/comparison.md
if [ "${1:-}" = --write ]; then
  { printf -- '- %s %s: `cd egs/asterisk && local/run_all.sh`\n\n' "$(date +%F)" "$(git rev-parse --short HEAD)"
    cat exp/comparison.md; } |
    speechlm results-md --section comparison --title "multilingual vs monolingual (test WER / CER %)"
fi
