"""Report writers whose files match icefall's, so existing tooling reads them.

File naming (icefall's ``decode.py`` convention, method first, then the run tag)::

    <out_dir>/recogs-<set>-<method>-<tag>.txt
    <out_dir>/errs-<set>-<method>-<tag>.txt
    <out_dir>/wer-summary-<set>-<tag>.txt      # one line per method, best first

With an empty tag the ``-<tag>`` part is dropped.
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from speechlm.base.errors import SpeechlmError
from speechlm.scoring.results_md import append_to_section, current_commit, section_key
from speechlm.scoring.wer import (
    CORR, DEL, EPS, HYP_SUB, INS, REF_SUB, Alignment, Result, WerStats, check_results, compute_cer,
    compute_wer,
)

Pathlike = Union[str, Path]
log = logging.getLogger(__name__)


def _write_text(path: Pathlike, text: str) -> None:
    """Write via a temporary file so an interrupted run never leaves a half report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_recogs(path: Pathlike, results: Sequence[Result]) -> None:
    """``utt:\\tref=[...]`` / ``utt:\\thyp=[...]`` lines per utterance, sorted by id."""
    lines = []
    for utt_id, ref, hyp in check_results(results):
        # icefall prints the Python list itself, e.g. ref=['A', 'B'].
        lines.append(f"{utt_id}:\tref={list(ref)}")
        lines.append(f"{utt_id}:\thyp={list(hyp)}")
    _write_text(path, "".join(line + "\n" for line in lines))


def merge_error_runs(alignment: Alignment) -> List[Tuple[str, str]]:
    """Merge each run of adjacent errors into one (ref words, hyp words) pair.

    ``[(a,a), (b,x), (c,*), (d,d)]`` becomes ``[(a,a), ("b c","x"), (d,d)]``; a side with
    no words is shown as EPS, as icefall's PER-UTT section does.
    """
    merged: List[Tuple[str, str]] = []
    run_ref: List[str] = []
    run_hyp: List[str] = []

    def flush() -> None:
        if run_ref or run_hyp:
            merged.append((" ".join(run_ref) or EPS, " ".join(run_hyp) or EPS))
            run_ref.clear()
            run_hyp.clear()

    for r, h in alignment:
        if r == h:
            flush()
            merged.append((r, h))
        else:
            run_ref.extend([r] if r != EPS else [])
            run_hyp.extend([h] if h != EPS else [])
    flush()
    return merged


def format_error_stats(stats: WerStats, cer: Optional[WerStats] = None) -> str:
    """The full text of an icefall ``errs-*.txt`` file; with ``cer`` (character error stats of the
    same results) a ``%CER`` line follows the ``%WER`` line."""
    out = [
        f"%WER = {stats.wer:.2f}",
        *([f"%CER = {cer.wer:.2f} ({cer.num_errors} / {cer.num_words} characters, spaces not "
           "counted)"] if cer is not None else []),
        f"Errors: {stats.ins} insertions, {stats.dels} deletions, {stats.subs} substitutions, "
        f"over {stats.num_words} reference words ({stats.num_corr} correct)",
        "Search below for sections starting with PER-UTT DETAILS:, SUBSTITUTIONS:, "
        "DELETIONS:, INSERTIONS:, PER-WORD STATS:",
        "",
        "PER-UTT DETAILS: corr or (ref->hyp)  ",
    ]
    for utt in stats.utts:
        shown = (r if r == h else f"({r}->{h})" for r, h in merge_error_runs(utt.alignment))
        out.append(f"{utt.utt_id}:\t" + " ".join(shown))

    # icefall sorts each section by (count, key) descending: ties go reverse-alphabetical.
    out += ["", "SUBSTITUTIONS: count ref -> hyp"]
    for (r, h), n in sorted(stats.sub_counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True):
        out.append(f"{n}   {r} -> {h}")
    out += ["", "DELETIONS: count ref"]
    for w, n in sorted(stats.del_counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True):
        out.append(f"{n}   {w}")
    out += ["", "INSERTIONS: count hyp"]
    for w, n in sorted(stats.ins_counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True):
        out.append(f"{n}   {w}")

    out += ["", "PER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp"]
    per_word = [(sum(c[1:]), w, c) for w, c in stats.word_counts.items()]
    for errs, w, c in sorted(per_word, reverse=True):
        in_ref = c[CORR] + c[REF_SUB] + c[DEL]
        in_hyp = c[CORR] + c[HYP_SUB] + c[INS]
        out.append(f"{w}   {c[CORR]} {errs} {in_ref} {in_hyp}")
    return "".join(line + "\n" for line in out)


def write_error_stats(path: Pathlike, test_set_name: str, results: Sequence[Result]) -> float:
    """Write an icefall ``errs-*.txt`` report; return the WER in percent, rounded to 2 places."""
    stats = compute_wer(results)
    _write_text(path, format_error_stats(stats))
    log.info("[%s] %s", test_set_name, stats.summary())
    return round(stats.wer, 2)


def _fmt_value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_wer_summary(
    path: Pathlike, rows: Sequence[Tuple[str, float, Optional[Mapping[str, object]]]]
) -> None:
    """``settings\\tWER[\\t<extra>...]`` then one line per method, lowest WER first.

    Extra columns (e.g. ``RTF``) are the union of the rows' extra keys, in first-seen order;
    a row lacking one shows ``-``.
    """
    if not rows:
        raise SpeechlmError(f"scoring: no decoding methods to summarise in {path}")
    columns: List[str] = []
    for _, _, extra in rows:
        columns += [k for k in (extra or {}) if k not in columns]
    lines = ["\t".join(["settings", "WER", *columns])]
    for method, wer, extra in sorted(rows, key=lambda r: (r[1], r[0])):
        extra = extra or {}
        lines.append("\t".join([method, f"{wer:.2f}", *(_fmt_value(extra.get(c)) for c in columns)]))
    _write_text(path, "".join(line + "\n" for line in lines))


def read_wer_summary(path: Pathlike) -> List[Tuple[str, float, Dict[str, str]]]:
    """``(method, WER %, {extra column: value})`` per line of a ``wer-summary-*.txt``."""
    path = Path(path)
    lines = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    if not lines or lines[0][:2] != ["settings", "WER"]:
        raise SpeechlmError(f"{path} is not a wer-summary file (first line should be "
                            "'settings<TAB>WER...'); it is written by speechlm decode")
    columns = lines[0][2:]
    rows = []
    for parts in lines[1:]:
        try:
            wer = float(parts[1])
        except (IndexError, ValueError):
            raise SpeechlmError(f"{path}: bad line {chr(9).join(parts)!r}") from None
        rows.append((parts[0], wer, dict(zip(columns, parts[2:]))))
    return rows


RESULTS_COLUMNS = (
    "date", "commit", "test set", "method", "WER %", "CER %", "errors (ins/del/sub) / words", "RTF",
    "model / notes", "command",
)
RESULTS_HEADER = "| " + " | ".join(RESULTS_COLUMNS) + " |"
RESULTS_RULE = "|" + "---|" * len(RESULTS_COLUMNS)
_REQUIRED_KEYS = ("test_set", "method", "wer", "ins", "dels", "subs", "num_words", "command")
_OPTIONAL_KEYS = ("date", "commit", "cer", "rtf", "notes")


def results_row(
    test_set: str, method: str, stats: WerStats, command: str, rtf: Optional[float] = None, notes: str = "",
    cer: Optional[WerStats] = None,
) -> Dict[str, object]:
    """The row dict :func:`append_results_row` takes, filled from a :class:`WerStats` (and the
    character error stats ``cer`` of the same results, when given)."""
    return dict(
        test_set=test_set, method=method, wer=round(stats.wer, 2), ins=stats.ins, dels=stats.dels,
        subs=stats.subs, num_words=stats.num_words, rtf=rtf, notes=notes, command=command,
        cer=None if cer is None else round(cer.wer, 2),
    )


def _cell(text: str) -> str:
    # A raw '|' or newline would split or end the table row.
    return " ".join(str(text).split()).replace("|", "\\|")


def _format_row(row: Mapping[str, object]) -> str:
    missing = [k for k in _REQUIRED_KEYS if row.get(k) in (None, "")]
    unknown = [k for k in row if k not in _REQUIRED_KEYS + _OPTIONAL_KEYS]
    if missing or unknown:
        raise SpeechlmError(
            f"scoring: RESULTS.md row needs keys {list(_REQUIRED_KEYS)} (optional "
            f"{list(_OPTIONAL_KEYS)}); missing {missing}, unknown {unknown}"
        )
    for k in ("ins", "dels", "subs", "num_words"):
        if not isinstance(row[k], int):
            raise SpeechlmError(f"scoring: RESULTS.md row key {k!r} must be an integer, got {row[k]!r}")
    command = _cell(row["command"])
    # A command that itself contains a backtick needs a double-backtick code span.
    code = f"`` {command} ``" if "`" in command else f"`{command}`"
    cells = [
        _cell(row.get("date") or datetime.date.today().isoformat()),
        _cell(row.get("commit") or current_commit()),
        _cell(row["test_set"]),
        _cell(row["method"]),
        f"{float(row['wer']):.2f}",
        "-" if row.get("cer") is None else f"{float(row['cer']):.2f}",
        f"{row['ins'] + row['dels'] + row['subs']} "
        f"({row['ins']}/{row['dels']}/{row['subs']}) / {row['num_words']}",
        _cell(_fmt_value(row.get("rtf"))),
        _cell(row.get("notes") or "-"),
        code,
    ]
    return "| " + " | ".join(cells) + " |"


def append_results_row(results_md: Pathlike, row: Mapping[str, object], section: str = "") -> None:
    """Append one row to the results table of ``section`` (e.g. ``exp/asr``) of a recipe's
    RESULTS.md (see :mod:`speechlm.scoring.results_md`); everything else is kept byte for byte."""
    append_to_section(results_md, section or "results", [_format_row(row)],
                      table=(RESULTS_HEADER, RESULTS_RULE))


def method_tag(method: str, tag: str) -> str:
    """File tag for one decoding method: ``<method>-<tag>``, or ``<method>`` if tag is empty."""
    return f"{method}-{tag}" if tag else method


def score_and_write(*args, **kwargs) -> Dict[str, float]:
    """:func:`score_methods` (same arguments), returning ``method -> WER %`` only."""
    return {m: r["wer"] for m, r in score_methods(*args, **kwargs).items()}


def score_methods(
    out_dir: Pathlike,
    set_name: str,
    tag: str,
    method_results: Mapping[str, Sequence[Result]],
    extras: Optional[Mapping[str, Mapping[str, object]]] = None,
    results_md: Optional[Pathlike] = None,
    command: Optional[str] = None,
    notes: str | Mapping[str, str] = "",
    section: Optional[Pathlike] = None,
) -> Dict[str, Dict[str, float]]:
    """Write recogs/errs for every method and one wer-summary; return
    ``method -> {"wer": %, "cer": %}``.

    The character error rate (CER, :func:`~speechlm.scoring.wer.compute_cer`: spaces not
    counted) of every method goes with its WER: a ``%CER`` line in its errs file, a ``CER``
    column in the wer-summary (after WER) and in RESULTS.md.
    With ``results_md`` (and the ``command`` that produced the results) one row per method
    is appended there too, in the section of ``section`` (the exp dir; see
    :func:`speechlm.scoring.results_md.section_key`); an ``RTF`` (or ``rtf``) entry in ``extras[method]`` fills its RTF.
    ``notes`` is one note for every row or a note per method.
    """
    if not method_results:
        raise SpeechlmError(f"scoring: no decoding results for test set {set_name!r}")
    if results_md is not None and not command:
        raise SpeechlmError("scoring: appending to RESULTS.md needs the exact command that was run")
    extras = extras or {}
    out_dir = Path(out_dir)
    wers: Dict[str, float] = {}
    rows = []
    for method, results in method_results.items():
        ftag = method_tag(method, tag)
        stats, cer = compute_wer(results), compute_cer(results)
        write_recogs(out_dir / f"recogs-{set_name}-{ftag}.txt", results)
        _write_text(out_dir / f"errs-{set_name}-{ftag}.txt", format_error_stats(stats, cer))
        log.info("[%s] [%s] %s %s", set_name, method, stats.summary(), cer.summary("CER"))
        wers[method] = round(stats.wer, 2)
        extra = {"CER": f"{cer.wer:.2f}", **extras.get(method, {})}
        rows.append((method, stats, cer, extra))
    summary_name = f"wer-summary-{set_name}-{tag}.txt" if tag else f"wer-summary-{set_name}.txt"
    write_wer_summary(out_dir / summary_name, [(m, wers[m], e) for m, _, _, e in rows])
    if results_md is not None:
        key = section_key(section or out_dir, results_md)
        for method, stats, cer, extra in sorted(rows, key=lambda r: (wers[r[0]], r[0])):
            rtf = extra.get("RTF", extra.get("rtf"))
            note = notes if isinstance(notes, str) else notes.get(method, "")
            append_results_row(results_md, results_row(set_name, method, stats, command, rtf, note, cer),
                               section=key)
    return {m: {"wer": wers[m], "cer": round(cer.wer, 2)} for m, _, cer, _ in rows}
