"""Markdown tables for the recipes' pretraining ablations (``speechlm ablation-table``).

ASR (``egs/synth_en/local/run_ablation.sh``): one run per ``<condition>-<init>`` directory
(e.g. ``low-random``, ``low-pretrained``, ``full-pretrained-frozen``), each decoded with every
method into ``decode-<set>/wer-summary-<set>.txt``. The table has one row per method and one
column per run; below it, per condition, the best method of each init and the relative WER
reduction of every other init against random init. Several dirs (one per seed, e.g.
``exp/ablation_s42 exp/ablation_s1``): means over the seeds with their range.

TTS (``egs/synth_en/local/run_tts_ablation.sh``): one run per init directory with
``eval-test/tts-summary.json`` (from ``speechlm eval-tts``) and ``log/train.log``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from speechlm.base.errors import SpeechlmError
from speechlm.base.registry import DECODING_METHODS
from speechlm.scoring.report import read_wer_summary

CONDITION_ORDER = ("low", "full")  # others follow, sorted
BASELINE_INIT = "random"
SSL = "+ssl"  # <init>+ssl: that init on the BEST-RQ encoder; its baseline is random+ssl


def _baseline(init: str, inits) -> str | None:
    """The run ``init`` is compared with: random init on the same encoder (random+ssl for an
    SSL-encoder arm when there is one), else random (so random+ssl against random: the SSL
    encoder's own gain); None when neither ran."""
    if init.endswith(SSL) and init != BASELINE_INIT + SSL and BASELINE_INIT + SSL in inits:
        return BASELINE_INIT + SSL
    return BASELINE_INIT if BASELINE_INIT in inits else None


def _run_key(name: str) -> Tuple[str, str]:
    cond, sep, init = name.partition("-")
    if not sep or not init:
        raise SpeechlmError(f"ablation run dir {name!r}: expected <condition>-<init>, "
                            "e.g. low-random or full-pretrained")
    return cond, init


def _order(values: Sequence[str], first: Sequence[str]) -> List[str]:
    head = [v for v in first if v in values]
    return head + sorted(v for v in set(values) if v not in head)


def _asr_runs(out_dir: Path, set_name: str) -> Dict[Tuple[str, str], Dict[str, Tuple[float, str]]]:
    """``(condition, init) -> {method: (WER %, RTF)}`` of one ablation output dir."""
    summaries = sorted(out_dir.glob(f"*-*/decode-{set_name}/wer-summary-{set_name}.txt"))
    if not summaries:
        raise SpeechlmError(f"no {out_dir}/<condition>-<init>/decode-{set_name}/"
                            f"wer-summary-{set_name}.txt: train and decode the runs first")
    runs: Dict[Tuple[str, str], Dict[str, Tuple[float, str]]] = {}
    for path in summaries:
        key = _run_key(path.parent.parent.name)
        runs[key] = {m: (wer, extra.get("RTF", "-")) for m, wer, extra in read_wer_summary(path)}
    return runs


def _columns(keys) -> List[Tuple[str, str]]:
    conds = _order([c for c, _ in keys], CONDITION_ORDER)
    return [(c, i) for c in conds for i in _order([i for cc, i in keys if cc == c], [BASELINE_INIT, BASELINE_INIT + SSL])]


def _relative(base: float, wer: float) -> float:
    return 100.0 * (base - wer) / base if base else 0.0


def _spread(values: Sequence[float]) -> str:
    """``mean (min-max)`` of figures over seeds."""
    return f"{sum(values) / len(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _best_method(run: Dict[str, Tuple[float, str]]) -> Tuple[float, str]:
    """(WER, method) of a run's best decoding method."""
    return min((wer, m) for m, (wer, _) in run.items())


def asr_ablation_table(out_dirs, set_name: str = "test") -> str:
    """Method x run table of WER % (RTF), then best-per-init and relative reductions. Several
    ``out_dirs`` (one per seed, same arms): cells and best methods become means over the seeds
    (:func:`_seed_table`)."""
    dirs = [Path(out_dirs)] if isinstance(out_dirs, (str, Path)) else [Path(d) for d in out_dirs]
    if len(dirs) > 1:
        return _seed_table(dirs, set_name)
    runs = _asr_runs(dirs[0], set_name)
    cols = _columns(runs)
    conds = _order([c for c, _ in cols], CONDITION_ORDER)
    methods = _order([m for key in cols for m in runs[key]], DECODING_METHODS.names())
    lines = ["| method | " + " | ".join(f"{c} / {i}" for c, i in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for m in methods:
        cells = [f"{runs[k][m][0]:.2f} ({runs[k][m][1]})" if m in runs[k] else "-" for k in cols]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", f"{set_name} WER % (decoding real-time factor in brackets)."]
    for c in conds:
        best = {i: _best_method(runs[(cc, i)]) for cc, i in cols if cc == c}
        for i, (wer, m) in best.items():
            base = _baseline(i, best)
            if base is None or base == i:
                continue
            base_wer, base_m = best[base]
            lines.append(f"- {c}: best {base}-init {base_wer:.2f}% ({base_m}) -> best {i} "
                         f"{wer:.2f}% ({m}): {_relative(base_wer, wer):.1f}% relative WER reduction")
    return "\n".join(lines) + "\n"


def _seed_table(dirs: Sequence[Path], set_name: str) -> str:
    """One ablation repeated with several seeds (one output dir each): per method and run the mean
    WER over the seeds that have it (min-max); per condition and init the best method of each
    seed, their mean, and the relative reduction of that mean against random init and against
    the best other init. An arm some seeds lack is counted over the seeds that have it (said)."""
    per_dir = [_asr_runs(d, set_name) for d in dirs]
    cols = _columns({k for runs in per_dir for k in runs})
    n_of = {k: sum(k in runs for runs in per_dir) for k in cols}
    methods = _order([m for runs in per_dir for k in runs for m in runs[k]], DECODING_METHODS.names())
    lines = ["| method | " + " | ".join(f"{c} / {i}" + (f" ({n_of[(c, i)]} of {len(dirs)} seeds)"
                                                          if n_of[(c, i)] < len(dirs) else "") for c, i in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for m in methods:
        cells = []
        for k in cols:
            values = [runs[k][m][0] for runs in per_dir if k in runs and m in runs[k]]
            cells.append(_spread(values) if values else "-")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", f"{set_name} WER %, mean over {len(dirs)} seeds ({', '.join(d.name for d in dirs)}; "
              "min-max in brackets).", ""]
    for c in _order([c for c, _ in cols], CONDITION_ORDER):
        best = {}
        for cc, i in cols:
            if cc != c:
                continue
            picks = [(d.name, *_best_method(runs[(c, i)]))
                     for d, runs in zip(dirs, per_dir) if (c, i) in runs]
            best[i] = sum(w for _, w, _ in picks) / len(picks)
            each = ", ".join(f"{name} {w:.2f} ({m})" for name, w, m in picks)
            lines.append(f"- {c} / {i}: best method per seed {each}; mean {_spread([w for _, w, _ in picks])}")
        for i, mean in best.items():
            base = _baseline(i, best)
            if base == i:
                continue
            notes = [f"{_relative(best[base], mean):.1f}% against {base}"] if base else []
            others = {o: w for o, w in best.items() if o != i}
            if len(others) > (base in others):
                o, w = min(others.items(), key=lambda kv: kv[1])
                notes.append(f"{_relative(w, mean):.1f}% against the best other init ({o}, {w:.2f})")
            if notes:
                lines.append(f"- {c} / {i}: relative WER reduction of the mean best, " + "; ".join(notes))
    return "\n".join(lines) + "\n"


def tts_ablation_table(out_dir: str | Path, inits: Sequence[str]) -> str:
    """One row per init: final dev loss, MCD-DTW, round-trip WER per ASR method, training time."""
    out_dir = Path(out_dir)
    rows = []
    for init in inits:
        run = out_dir / init
        summary_path = run / "eval-test" / "tts-summary.json"
        if not summary_path.is_file():
            raise SpeechlmError(f"{summary_path} missing: train and evaluate {run} first "
                                "(speechlm train-tts, speechlm eval-tts)")
        summary = json.loads(summary_path.read_text())
        log = run / "log" / "train.log"
        dev = re.findall(r"dev loss ([0-9.]+)", log.read_text()) if log.is_file() else []
        secs = run / "train_seconds.txt"
        rows.append((init, summary, dev[-1] if dev else "-",
                     secs.read_text().strip() if secs.is_file() else "-"))
    methods = list(rows[0][1]["wer_synthesised"])
    lines = ["| text encoder init | final dev loss | MCD-DTW dB | "
             + " | ".join(f"round-trip WER {m} % (reference)" for m in methods) + " | train s |",
             "|" + "---|" * (4 + len(methods))]
    for init, s, dev, secs in rows:
        wers = " | ".join(f"{s['wer_synthesised'][m]:.2f} ({s['wer_reference'][m]:.2f})"
                          for m in methods)
        lines.append(f"| {init} | {dev} | {s['mcd_db']:.2f} | {wers} | {secs} |")
    lines += ["", f"{rows[0][1]['num_utts']} test sentences."]
    groups: dict = {}  # <init>-s<seed> runs are seeds of <init>
    for init, s, _, _ in rows:
        groups.setdefault(re.sub(r"-s\d+$", "", init), []).append(s)
    if any(len(g) > 1 for g in groups.values()):
        lines += ["", "Mean over seeds (min-max):", ""]
        for init, ss in groups.items():
            wers = "; ".join(f"round-trip {m} {_spread([s['wer_synthesised'][m] for s in ss])}%"
                             for m in methods)
            lines.append(f"- {init}, {len(ss)} seed{'s' if len(ss) > 1 else ''}: MCD-DTW "
                         f"{_spread([s['mcd_db'] for s in ss])} dB; {wers}")
    return "\n".join(lines) + "\n"


__all__ = ["asr_ablation_table", "tts_ablation_table"]
