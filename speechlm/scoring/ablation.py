"""Markdown tables for the recipes' pretraining ablations (``speechlm ablation-table``).

ASR (``egs/synth_en/local/run_ablation.sh``): one run per ``<condition>-<init>`` directory
(e.g. ``low-random``, ``low-pretrained``, ``full-pretrained-frozen``), each decoded with every
method into ``decode-<set>/wer-summary-<set>.txt``. The table has one row per method and one
column per run; below it, per condition, the best method of each init and the relative WER
reduction of every other init against random init.

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


def _run_key(name: str) -> Tuple[str, str]:
    cond, sep, init = name.partition("-")
    if not sep or not init:
        raise SpeechlmError(f"ablation run dir {name!r}: expected <condition>-<init>, "
                            "e.g. low-random or full-pretrained")
    return cond, init


def _order(values: Sequence[str], first: Sequence[str]) -> List[str]:
    head = [v for v in first if v in values]
    return head + sorted(v for v in set(values) if v not in head)


def asr_ablation_table(out_dir: str | Path, set_name: str = "test") -> str:
    """Method x run table of WER % (RTF), then best-per-init and relative reductions."""
    out_dir = Path(out_dir)
    summaries = sorted(out_dir.glob(f"*-*/decode-{set_name}/wer-summary-{set_name}.txt"))
    if not summaries:
        raise SpeechlmError(f"no {out_dir}/<condition>-<init>/decode-{set_name}/"
                            f"wer-summary-{set_name}.txt: train and decode the runs first")
    runs: Dict[Tuple[str, str], Dict[str, Tuple[float, str]]] = {}
    for path in summaries:
        key = _run_key(path.parent.parent.name)
        runs[key] = {m: (wer, extra.get("RTF", "-")) for m, wer, extra in read_wer_summary(path)}
    conds = _order([c for c, _ in runs], CONDITION_ORDER)
    cols = [(c, i) for c in conds for i in _order([i for cc, i in runs if cc == c], [BASELINE_INIT])]
    methods = _order([m for key in cols for m in runs[key]], DECODING_METHODS.names())
    lines = ["| method | " + " | ".join(f"{c} / {i}" for c, i in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for m in methods:
        cells = [f"{runs[k][m][0]:.2f} ({runs[k][m][1]})" if m in runs[k] else "-" for k in cols]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", f"{set_name} WER % (decoding real-time factor in brackets)."]
    for c in conds:
        best = {i: min((wer, m) for m, (wer, _) in runs[(cc, i)].items())
                for cc, i in cols if cc == c}
        if BASELINE_INIT not in best:
            continue
        base_wer, base_m = best[BASELINE_INIT]
        for i, (wer, m) in best.items():
            if i == BASELINE_INIT:
                continue
            rel = 100.0 * (base_wer - wer) / base_wer if base_wer else 0.0
            lines.append(f"- {c}: best {BASELINE_INIT}-init {base_wer:.2f}% ({base_m}) -> best {i} "
                         f"{wer:.2f}% ({m}): {rel:.1f}% relative WER reduction")
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
        def spread(values):
            return f"{sum(values) / len(values):.2f} ({min(values):.2f}-{max(values):.2f})"

        for init, ss in groups.items():
            wers = "; ".join(f"round-trip {m} {spread([s['wer_synthesised'][m] for s in ss])}%"
                             for m in methods)
            lines.append(f"- {init}, {len(ss)} seed{'s' if len(ss) > 1 else ''}: MCD-DTW "
                         f"{spread([s['mcd_db'] for s in ss])} dB; {wers}")
    return "\n".join(lines) + "\n"


__all__ = ["asr_ablation_table", "tts_ablation_table"]
