#!/usr/bin/env bash
# Kaldi-style option parsing, sourced by a recipe's run.sh after its option defaults:
#
#   # begin options
#   stage=0          # first stage to run
#   stop_stage=5     # last stage to run
#   # end options
#   . ../../tools/parse_options.sh
#
# `--stop-stage 3` sets stop_stage=3 (dashes become underscores); `--name=value` works too.
# Only variables declared between the markers are options: anything else is an error (exit 2).
# An option whose default is a whole number (stage=0, nj=2) takes only whole numbers, and
# --stage must not come after --stop-stage: a bad value is one message and exit 2.
# `--help` lists every option with its default and comment, read from the block itself.

_po_script="${BASH_SOURCE[1]:-$0}"
# run.sh cds to its own folder first (local/*.sh to the recipe folder), so a relative path it was
# started by may no longer resolve
[ -f "$_po_script" ] || _po_script="./$(basename "$_po_script")"
[ -f "$_po_script" ] || _po_script="local/$(basename "$_po_script")"

# A block of options shared by a family of recipes (tools/asr_options.sh) sets
# po_shared_options to its own path; it is read first, so a recipe's own line for the same
# option (its default and comment) wins.
_po_block() {
  sed -n '/^# begin options/,/^# end options/p' ${po_shared_options:+"$po_shared_options"} "$_po_script" |
    grep -E '^[A-Za-z_][A-Za-z0-9_]*=' |
    awk -F= '{ if (!($1 in line)) order[++n] = $1; line[$1] = $0 } END { for (i = 1; i <= n; i++) print line[order[i]] }'
}

_po_help() {
  echo "usage: $(basename "$_po_script") [options]"
  [ -n "${help_message:-}" ] && echo "$help_message"
  echo "options (default in brackets):"
  _po_block | while IFS= read -r line; do
    name=${line%%=*}
    rest=${line#*=}
    default=${rest%%#*}
    default=$(echo "$default" | sed -e 's/[[:space:]]*$//' -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/")
    comment=""
    case "$rest" in *"#"*) comment=${rest#*#}; comment=${comment# } ;; esac
    printf '  --%-22s %s [%s]\n' "${name//_/-}" "$comment" "$default"
  done
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) _po_help; exit 0 ;;
    --*=*) _po_opt=${1%%=*}; _po_val=${1#*=}; shift ;;
    --*)
      _po_opt=$1
      if [ $# -lt 2 ]; then echo "$(basename "$_po_script"): option $_po_opt needs a value" >&2; exit 2; fi
      _po_val=$2; shift 2 ;;
    *) break ;;
  esac
  _po_name=${_po_opt#--}
  _po_name=${_po_name//-/_}
  _po_line=""
  if [[ $_po_name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    _po_line=$(_po_block | grep -m1 "^${_po_name}=" || true)
  fi
  if [ -z "$_po_line" ]; then
    echo "$(basename "$_po_script"): unknown option $_po_opt (see --help for the list)" >&2
    exit 2
  fi
  _po_default=${_po_line#*=}
  _po_default=${_po_default%%#*}
  _po_default=${_po_default%"${_po_default##*[![:space:]]}"}
  if [[ $_po_default =~ ^[0-9]+$ ]] && ! [[ $_po_val =~ ^[0-9]+$ ]]; then
    echo "$(basename "$_po_script"): option $_po_opt takes a whole number (like its default," \
      "$_po_default), not '$_po_val'" >&2
    exit 2
  fi
  printf -v "$_po_name" '%s' "$_po_val"
done
if [ $# -gt 0 ]; then
  echo "$(basename "$_po_script"): unexpected argument '$1' (options are --name value; see --help)" >&2
  exit 2
fi
if [ -n "${stage:-}" ] && [ -n "${stop_stage:-}" ] && [ "$stage" -gt "$stop_stage" ]; then
  echo "$(basename "$_po_script"): --stage $stage comes after --stop-stage $stop_stage, so no stage" \
    "would run: give a --stage no greater than --stop-stage" >&2
  exit 2
fi
unset _po_opt _po_val _po_name _po_line _po_default
