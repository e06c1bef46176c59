#!/usr/bin/env bash
# Stage runner shared by every recipe. Sourced by run.sh after parse_options.sh; needs
# $stage and $stop_stage. Each stage: skipped outside [stage, stop_stage]; skipped when its
# .done marker exists (written last, only after the command succeeded); otherwise run with its
# output tee'd to exp/log/stage-N.log, timed, and reported.

done_dir=${done_dir:-.done}
log_dir=${log_dir:-exp/log}

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

# run_stage N NAME "OUTPUTS" CMD [ARGS...]
run_stage() {
  local n=$1 name=$2 outputs=$3
  shift 3
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  local marker="$done_dir/stage-$n.done"
  if [ -f "$marker" ]; then
    echo "== stage $n ($name): already done, skipping (delete $marker to redo)"
    return 0
  fi
  mkdir -p "$done_dir" "$log_dir"
  local log="$log_dir/stage-$n.log"
  echo "== stage $n ($name): started $(date '+%F %T'), log: $log"
  local t0=$SECONDS
  if ! "$@" 2>&1 | tee "$log"; then
    echo "== stage $n ($name): FAILED after $((SECONDS - t0)) s; see $log" >&2
    exit 1
  fi
  local took=$((SECONDS - t0))
  echo "$took" > "$marker"
  echo "== stage $n ($name): done in ${took} s; outputs: $outputs"
}

# skip_stage N NAME REASON: a stage that means nothing for this recipe says so.
skip_stage() {
  local n=$1 name=$2 reason=$3
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  echo "== stage $n ($name): skipped: $reason"
}
