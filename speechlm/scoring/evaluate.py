"""Decode a test set with a trained model and score it: icefall-style reports, RESULTS.md rows."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from speechlm.base.device import resolve_device
from speechlm.base.errors import SpeechlmError
from speechlm.decode.methods import text_lm_source
from speechlm.decode.recognize import decode_cuts
from speechlm.decode.resources import find_resources, record_resources
from speechlm.models.experiment import load_experiment
from speechlm.scoring.report import score_methods

log = logging.getLogger("speechlm.decode")


def decode_and_score(
    exp_dir: str | Path,
    cuts_path: str | Path,
    set_name: str,
    methods: Sequence[str],
    out_dir: Optional[str | Path] = None,
    lang_dir: Optional[str | Path] = None,
    device: str = "auto",
    results_md: Optional[str | Path] = None,
    command: Optional[str] = None,
    tag: str = "",
    overrides: Sequence[str] = (),
    lm_checkpoint: Optional[str | Path] = None,
    avg: int = 0,
    method_overrides: Optional[Mapping[str, Sequence[str]]] = None,
    method_notes: Optional[Mapping[str, str]] = None,
    subsets: Optional[Mapping[str, str | Path]] = None,
) -> Dict[str, Dict[str, float]]:
    """Decode ``cuts_path`` with every method; write icefall-style reports; return WER, CER and RTF.

    ``methods`` empty: the config's ``decode.methods``. ``overrides`` (``decode.key=value``)
    change the decoding hyperparameters of the resolved config; ``lm_checkpoint`` is the text LM
    for the fusion methods (default: the config's). ``avg`` > 0 decodes the average of the last
    ``avg`` epoch checkpoints instead of final.pt; the report names then carry ``avg<avg>``.
    With ``results_md``, one row per method goes into that file's section for ``exp_dir``.
    A lang dir or text LM not given is looked up from the exp dir, and the ones used are
    recorded there (:mod:`speechlm.decode.resources`). ``method_overrides`` adds overrides for
    some methods (e.g. the ones :func:`tune_on_dev` chose; each distinct set is one pass over the
    cuts) and ``method_notes`` a note to their RESULTS.md rows. ``subsets`` (name -> cut manifest
    of some of ``cuts_path``'s cuts, e.g. one synthesis engine's) are scored from this decode, each
    in ``decode-<name>/`` beside ``out_dir`` with its own reports and rows, as if decoded alone.
    """
    exp_dir = Path(exp_dir)
    if avg:
        tag = f"{tag}-avg{avg}" if tag else f"avg{avg}"
    out_dir = Path(out_dir) if out_dir else exp_dir / f"decode-{set_name}"
    method_overrides = dict(method_overrides or {})
    subset_ids = subset_cuts(subsets or {}, set_name, cuts_path)
    groups: Dict[Tuple[str, ...], List[str]] = {}  # extra overrides -> the methods decoded with them
    results, rtf, notes = {}, {}, {}
    for method in methods or [None]:
        groups.setdefault(tuple(method_overrides.get(method, ())), []).append(method)
    for extra, group in groups.items():
        exp = load_experiment(exp_dir, resolve_device(device, "--device"), avg=avg,
                              overrides=[*overrides, *extra], needs="ctc")
        group = [m for m in group if m is not None] or list(exp.cfg.decode.methods)
        lang_dir, lm_checkpoint = find_resources(exp_dir, group, lang_dir, lm_checkpoint)
        decoded = decode_cuts(exp, cuts_path, group, lang_dir, lm_checkpoint,
                              desc=f"decode {set_name}" + (f" ({' '.join(extra)})" if extra else ""))
        record_resources(exp_dir, group, lang_dir, text_lm_source(lm_checkpoint, exp.cfg)[0])
        results.update(decoded.results)
        rtf.update(decoded.rtf)
        note = _notes(exp, exp_dir, avg)
        for m in decoded.rtf:
            notes[m] = note + (f", {method_notes[m]}" if method_notes and m in method_notes else "")
    scores = score_methods(
        out_dir, set_name, tag, results, extras={m: {"RTF": round(rtf[m], 4)} for m in rtf},
        results_md=results_md, command=command, section=exp_dir, notes=notes,
    )
    for m in rtf:
        log.info("%s %s: WER %.2f%%, CER %.2f%%, RTF %.4f", set_name, m, scores[m]["wer"],
                 scores[m]["cer"], rtf[m])
    for name, pairs in subset_ids.items():
        sub_scores = score_methods(
            out_dir.parent / f"decode-{name}", name, tag, subset_results(results, pairs),
            extras={m: {"RTF": round(rtf[m], 4)} for m in rtf}, results_md=results_md, command=command,
            section=exp_dir, notes={m: f"{notes[m]}, scored from the decode of {set_name}" for m in rtf},
        )
        for m in rtf:
            log.info("%s %s (of %s): WER %.2f%%, CER %.2f%%", name, m, set_name, sub_scores[m]["wer"],
                     sub_scores[m]["cer"])
    return {m: {**scores[m], "rtf": rtf[m]} for m in rtf}


def _same_cut_key(cut) -> tuple:
    """What makes two cuts the same audio whatever their ids (manifests written apart number their
    cuts apart): recording, channel, start and duration; a cut of several tracks by its id."""
    rec = getattr(cut, "recording_id", None)
    if rec is None:
        return ("id", cut.id)
    return (rec, str(cut.channel), round(cut.start, 3), round(cut.duration, 3))


def subset_cuts(subsets: Mapping[str, str | Path], set_name: str,
                whole: str | Path) -> Dict[str, List[Tuple[str, str]]]:
    """``name -> [(cut id in the subset, cut id in the decoded set)]`` of each ``--subset
    name=path``, checked before decoding so that a bad one stops the command before the work: a name
    of its own, and every cut one of ``whole``'s (the same audio, the same transcript)."""
    from speechlm.data.features import load_cuts

    if not subsets:
        return {}
    decoded = {_same_cut_key(c): c for c in load_cuts(whole)}
    out = {}
    for name, path in subsets.items():
        if not name or name == set_name or "/" in name:
            raise SpeechlmError(f"--subset {name}={path}: the subset needs a name of its own (not empty, "
                                f"not the decoded set's {set_name!r}, no '/'), e.g. test_espeak=CUTS")
        pairs = []
        for cut in load_cuts(path):
            match = decoded.get(_same_cut_key(cut))
            if match is None:
                raise SpeechlmError(f"--subset {name}={path}: cut {cut.id} is not in the decoded set "
                                    f"{whole}; a subset is scored from the decode of the whole set, so "
                                    "all its cuts must be there (decode it on its own with --cuts instead)")
            if [s.text for s in cut.supervisions] != [s.text for s in match.supervisions]:
                raise SpeechlmError(f"--subset {name}={path}: cut {cut.id} has another transcript there "
                                    f"than in {whole} ({match.id}): not the same utterance")
            pairs.append((cut.id, match.id))
        if not pairs:
            raise SpeechlmError(f"--subset {name}={path}: the manifest has no cuts")
        out[name] = pairs
    return out


def subset_results(results: Mapping[str, Sequence[Tuple[str, List[str], List[str]]]],
                   pairs: Sequence[Tuple[str, str]]) -> Dict[str, list]:
    """Each method's results for the subset ``pairs`` (:func:`subset_cuts`), in its order and
    under its cut ids."""
    out = {}
    for method, rows in results.items():
        by_id = {r[0]: r for r in rows}
        out[method] = [(own, *by_id[decoded][1:]) for own, decoded in pairs]
    return out


def _notes(exp, exp_dir: Path, avg: int) -> str:
    """The RESULTS.md notes of a decode: the model and the decoding options that change it."""
    d, enc = exp.cfg.decode, exp.cfg.encoder
    return (f"exp: {exp_dir}" + (f", average of the last {avg} epochs" if avg else "")
            + (f", streaming in chunks of {d.streaming_chunk} frames ({d.streaming_chunk * 40} ms)"
               if d.streaming_chunk else "")
            + (f" + {enc.lookahead * 40} ms look-ahead" if d.streaming_chunk and enc.lookahead else "")
            + (f", blank penalty {d.blank_penalty:g}" if d.blank_penalty else ""))


def parse_grid(items: Sequence[str]) -> List[Tuple[str, List[str]]]:
    """``decode.KEY=V1,V2,...`` items (``--tune``) as ``[(key, [values])]``; each key once."""
    grid: List[Tuple[str, List[str]]] = []
    for item in items:
        key, eq, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not eq or not key.startswith("decode.") or not vals:
            raise SpeechlmError(f"--tune {item!r}: give decode.KEY=V1,V2,... (e.g. "
                                "decode.blank_penalty=0,1,2,3 or decode.lm_weight=0.3,0.5)")
        if key in (k for k, _ in grid):
            raise SpeechlmError(f"--tune: {key} is given twice; list all its values in one item")
        grid.append((key.strip(), vals))
    return grid


def tune_table(out_dir: str | Path, dev_name: str = "dev", tag: str = "") -> Path:
    """Where :func:`tune_on_dev` writes its table: ``out_dir/tune-DEV[-TAG].tsv``."""
    return Path(out_dir) / (f"tune-{dev_name}" + (f"-{tag}" if tag else "") + ".tsv")


def tune_on_dev(
    exp_dir: str | Path,
    dev_cuts: str | Path,
    grid: Sequence[str],
    methods: Sequence[str],
    out_dir: str | Path,
    dev_name: str = "dev",
    tag: str = "",
    **decode_args,
) -> Tuple[Dict[str, List[str]], Dict[str, str]]:
    """Decode ``dev_cuts`` at every point of ``grid`` (``--tune`` items, see :func:`parse_grid`;
    several keys make a full grid) and choose, per method, the point with the lowest dev WER
    (then the lowest CER, then the first listed). Each point's reports go to
    ``out_dir/tune-DEV[-TAG]/POINT``; the table of every point and method to
    :func:`tune_table` (chosen rows marked). A key in ``overrides`` too is refused.
    Returns ``method -> overrides chosen`` and ``method -> a note saying so`` for the RESULTS.md
    row of the test set (:func:`decode_and_score`'s ``method_overrides``, ``method_notes``)."""
    keys = parse_grid(grid)
    fixed = {o.partition("=")[0] for o in decode_args.get("overrides", ())}
    for key, _ in keys:
        if key in fixed:
            raise SpeechlmError(f"decode: {key} is in both --set and --tune; give it in one of them")
    points = [[f"{k}={v}" for (k, _), v in zip(keys, vals)]
              for vals in itertools.product(*(vs for _, vs in keys))]
    table_path = tune_table(out_dir, dev_name, tag)
    table: List[Tuple[int, str, Dict[str, float]]] = []
    for i, point in enumerate(points):
        name = "_".join(p.split(".", 1)[1] for p in point).replace("/", "-")
        log.info("tuning on %s: point %d/%d: %s", dev_name, i + 1, len(points), " ".join(point))
        res = decode_and_score(exp_dir, dev_cuts, dev_name, methods,
                               out_dir=table_path.with_suffix("") / name,
                               **{**decode_args, "overrides": [*decode_args.get("overrides", ()),
                                                               *point]})
        table += [(i, m, r) for m, r in res.items()]
    best = {m: min((row for row in table if row[1] == m),
                   key=lambda row: (row[2]["wer"], row[2]["cer"], row[0]))
            for m in dict.fromkeys(m for _, m, _ in table)}
    lines = ["\t".join([*(k for k, _ in keys), "method", "WER", "CER", "chosen"])]
    for i, m, r in table:
        lines.append("\t".join([*(p.split("=", 1)[1] for p in points[i]), m, f"{r['wer']:.2f}",
                                f"{r['cer']:.2f}", "*" if best[m][0] == i else ""]))
    table_path.write_text("\n".join(lines) + "\n")
    chosen = {m: points[i] for m, (i, _, _) in best.items()}
    values = "; ".join(f"{k.split('.', 1)[1]} from {', '.join(vs)}" for k, vs in keys)
    notes = {m: f"{' '.join(p.split('.', 1)[1] for p in points[i])} chosen on {dev_name} "
                f"({values}; {dev_name} WER {r['wer']:.2f}%)" for m, (i, _, r) in best.items()}
    return chosen, notes
