#!/usr/bin/env bash
# Stage runner shared by every recipe. Sourced by run.sh after parse_options.sh; needs
# $stage and $stop_stage. Each stage: skipped outside [stage, stop_stage]; skipped when its
# .done marker exists and records the inputs it would run with now; otherwise run with its
# output tee'd to exp/log/stage-N.log, timed, and reported, and its marker written last (only
# after the command succeeded).
#
# A marker records what its stage ran with: the command line, the value of every variable that
# the stage's shell function (and the functions it calls) reads, with a checksum where the value
# is a file, and a checksum of the marker of every stage before it (so re-running a stage re-runs
# what comes after it). A re-run with other values says which changed and runs the stage again.

done_dir=${done_dir:-.done}
log_dir=${log_dir:-exp/log}
# variables that never change what a stage makes: how it was started, how many jobs it used, and
# bash's own that change by themselves
stage_inputs_ignore=${stage_inputs_ignore:-"recipe_args resume nj PWD OLDPWD RANDOM SECONDS LINENO
  BASHPID EPOCHSECONDS EPOCHREALTIME"}
_sl_upstream=""   # "N:marker" of every run_stage call so far, in script order
_sl_told_old=""   # said once that a marker predates input tracking

# The venv that `make install` creates is used when the caller has not activated one.
if ! command -v speechlm >/dev/null 2>&1; then
  _sl_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [ -x "$_sl_root/.venv/bin/speechlm" ]; then
    export PATH="$_sl_root/.venv/bin:$PATH"
  else
    echo "speechlm is not installed: run 'make install' at the top of the repository" >&2
    exit 1
  fi
fi

# quote_args ARGS...: the arguments as a shell would need them typed, each after a space: plain
# words as they are, the rest in single quotes ('--set' 'a=1 b=2' -> " --set 'a=1 b=2'"). For the
# command lines that scripts record in RESULTS.md: readable, and runnable when pasted.
quote_args() {
  local a q="'\\''"
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./=:,+@%-]+$ ]]; then printf ' %s' "$a"
    else printf " '%s'" "${a//\'/$q}"; fi
  done
}

# _sl_functions NAME: NAME and every shell function it calls, directly or through others.
_sl_functions() {
  local todo=("$1") seen=" " f w
  while [ ${#todo[@]} -gt 0 ]; do
    f=${todo[0]}; todo=("${todo[@]:1}")
    case "$seen" in *" $f "*) continue ;; esac
    declare -F "$f" >/dev/null || continue
    seen+="$f "
    for w in $(declare -f "$f" | tail -n +2 | grep -oE '[A-Za-z_][A-Za-z0-9_]*' | sort -u); do
      if declare -F "$w" >/dev/null; then todo+=("$w"); fi
    done
  done
  echo "$seen"
}

# _sl_read_vars FUNCTION...: the variables they read, less their own locals and loop variables.
_sl_read_vars() {
  [ $# -gt 0 ] || return 0
  local body own f
  body=$(for f in "$@"; do declare -f "$f"; done)
  own=$({ grep -E '^[[:space:]]*local ' <<<"$body" |
            grep -oE '(^[[:space:]]*local|[[:space:]])[[:space:]]*[A-Za-z_][A-Za-z0-9_]*(=|[[:space:]]|;|$)'
          grep -oE 'for +[A-Za-z_][A-Za-z0-9_]*' <<<"$body"; } |
        grep -oE '[A-Za-z_][A-Za-z0-9_]*' | grep -vxE 'local|for' || true)
  grep -oE '\$\{?[A-Za-z_][A-Za-z0-9_]*' <<<"$body" | sed -E 's/^\$\{?//' | sort -u |
    grep -vxF -f <(printf '%s\n' $own $stage_inputs_ignore) || true
}

# _sl_inputs N CMD [ARGS...]: what stage N runs with, one "name=value" line each.
_sl_inputs() {
  local n=$1 name value entry command
  shift
  command=$(quote_args "$@")
  echo "command=${command# }"
  # shellcheck disable=SC2046
  for name in $(_sl_read_vars $(_sl_functions "$1")); do
    if [ -z "${!name+x}" ]; then echo "$name=<unset>"; continue; fi
    value=${!name}
    if [ -f "$value" ]; then value+=" (file cksum $(cksum < "$value" | cut -d' ' -f1))"; fi
    printf '%s=%s\n' "$name" "${value//$'\n'/\\n}"
  done
  for entry in $_sl_upstream; do
    if [ "${entry%%:*}" -gt "$n" ]; then continue; fi
    entry=${entry#*:}
    if [ -f "$entry" ]; then echo "$entry=$(cksum < "$entry" | cut -d' ' -f1)"
    else echo "$entry=<absent>"; fi
  done
}

# _sl_changes MARKER < INPUTS: the inputs that differ from MARKER's, as one line ("" if none).
_sl_changes() {
  awk '
    function short(v) { return length(v) > 60 ? substr(v, 1, 57) "..." : v }
    function key(line) { return substr(line, 1, index(line, "=") - 1) }
    function val(line) { return substr(line, index(line, "=") + 1) }
    function file(v) { return substr(v, 1, index(v, " (file cksum") - 1) }
    FNR == NR { if ($0 !~ /^#/) old[key($0)] = val($0); next }
    { k = key($0); seen[k] = 1
      if (!(k in old)) out = out sep k " (new input)"
      else if (old[k] != val($0)) {
        if (k ~ /\.done$/) out = out sep "stage marker " k " (that stage ran again)"
        else if (index(old[k], " (file cksum") && file(old[k]) == file(val($0)))
          out = out sep k " (" file(old[k]) ": content changed)"
        else out = out sep k ": \047" short(old[k]) "\047 -> \047" short(val($0)) "\047"
      } else next
      sep = "; " }
    END { for (k in old) if (!(k in seen)) { out = out sep k " (no longer an input)"; sep = "; " }
          print out }' "$1" -
}

# _sl_is_done N NAME MARKER INPUTS: whether stage N can be skipped (and says why, or why not).
_sl_is_done() {
  local n=$1 name=$2 marker=$3 inputs=$4 changes
  [ -f "$marker" ] || return 1
  if ! grep -q '^# stage' "$marker"; then
    echo "== stage $n ($name): already done, skipping (inputs unknown; delete $marker to redo)"
    if [ -z "$_sl_told_old" ]; then
      echo "   (that marker predates recorded stage inputs: a changed option does not re-run such a stage)"
      _sl_told_old=1
    fi
    return 0
  fi
  changes=$(_sl_changes "$marker" <<<"$inputs")
  if [ -z "$changes" ]; then
    echo "== stage $n ($name): already done, skipping (same inputs; delete $marker to redo)"
    return 0
  fi
  echo "== stage $n ($name): inputs changed since it was done: $changes; running it again"
  return 1
}

# run_stage N NAME "OUTPUTS" CMD [ARGS...]
run_stage() {
  local n=$1 name=$2 outputs=$3
  shift 3
  local marker="$done_dir/stage-$n.done"
  local inputs upstream=$_sl_upstream
  inputs=$(_sl_inputs "$n" "$@")
  _sl_upstream+=" $n:$marker"
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  if _sl_is_done "$n" "$name" "$marker" "$inputs"; then return 0; fi
  mkdir -p "$done_dir" "$log_dir"
  local log="$log_dir/stage-$n.log"
  echo "== stage $n ($name): started $(date '+%F %T'), log: $log"
  local t0=$SECONDS
  if ! "$@" 2>&1 | tee "$log"; then
    echo "== stage $n ($name): FAILED after $((SECONDS - t0)) s; see $log" >&2
    exit 1
  fi
  local took=$((SECONDS - t0))
  # recorded as they are now: a file the stage itself wrote (named by one of its variables, e.g.
  # an output path) has its checksum in the marker, so the next run does not see it as changed
  inputs=$(_sl_upstream=$upstream; _sl_inputs "$n" "$@")
  { echo "# stage $n ($name): done in $took s, $(date '+%F %T.%N')"; echo "$inputs"; } > "$marker"
  echo "== stage $n ($name): done in ${took} s; outputs: $outputs"
}

# skip_stage N NAME REASON: a stage that means nothing for this recipe says so.
skip_stage() {
  local n=$1 name=$2 reason=$3
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  echo "== stage $n ($name): skipped: $reason"
}

# llm_decoding_methods M1,M2,...: those of the comma-separated methods that apply to a model on a
# pretrained LLM's own tokenizer (hlg-* and the tiny-LM fusions are built on speechlm's), each once
llm_decoding_methods() {
  local kept="" m
  for m in ${1//,/ }; do
    case "$m" in
      ctc-greedy|ctc-prefix-beam|attention-beam|attention-rescoring)
        case ",$kept," in *",$m,"*) ;; *) kept+="$m," ;; esac ;;
    esac
  done
  echo "${kept%,}"
}

# subset_decode_args "SETS" "SUBSETS" CUTS_PREFIX: sets the array subset_args to `--subset
# NAME=CUTS_PREFIX_NAME.jsonl.gz ...` for those of SUBSETS that are among SETS after the first (its
# parts, e.g. one engine's test set: scored from the first set's decode, not decoded again); empty
# when none
subset_decode_args() {
  local first rest s
  read -r first rest <<< "$1"
  subset_args=()
  for s in $2; do
    case " $rest " in *" $s "*) subset_args+=("$s=${3}_$s.jsonl.gz") ;; esac
  done
  [ ${#subset_args[@]} -eq 0 ] || subset_args=(--subset "${subset_args[@]}")
}
