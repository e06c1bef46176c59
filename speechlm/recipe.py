"""``speechlm new-recipe``: write ``egs/<name>/`` for a corpus from the one recipe template.

The template lives in ``speechlm/recipe_template/`` (package data): ``run.sh``, ``RESULTS.md``,
``local/README.md`` and one config per corpus size in ``conf/``. ``@KEY@`` placeholders are
filled here; nothing in the output is copied from another recipe. The corpus is imported once
(in memory) first, so a bad corpus fails now, with the same messages stage 0 would give, and the
recipe gets a config and vocabulary sized for the corpus and the splits it will have.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import re
import shlex
import shutil
import textwrap
from pathlib import Path
from typing import Dict, Optional, Tuple

from speechlm.data.import_options import import_parser
from speechlm.data.importers import KINDS, ImportResult, import_corpus
from speechlm.base.config import load_config
from speechlm.base.errors import SpeechlmError
from speechlm.train.trainer import WARMUP_MAX_SHARE
from speechlm.scoring.report import RESULTS_HEADER, RESULTS_RULE

logger = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "recipe_template"
SIZES = ("tiny", "small", "large")
# size -> (upper bound in hours, sentencepiece vocabulary size)
SIZE_LIMITS = {"tiny": (10 / 60, 64), "small": (10.0, 256), "large": (float("inf"), 500)}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def size_for_hours(hours: float) -> str:
    """``tiny`` below 10 minutes, ``small`` below 10 hours, else ``large``."""
    return next(size for size in SIZES if hours < SIZE_LIMITS[size][0])


def steps_per_epoch_estimate(train_seconds: float, train_utterances: int, size: str) -> int:
    """About how many batches an epoch of the ``size`` config has: batches fill up to
    ``data.max_duration`` seconds within each of ``data.num_buckets`` length buckets (about half a
    batch left over in each), and never more than one per utterance."""
    data = load_config(TEMPLATE_DIR / "conf" / f"{size}.yaml").data
    full = math.ceil(train_seconds / data.max_duration) + data.num_buckets // 2
    return max(1, min(train_utterances, full))


def size_for_corpus(hours: float, train_seconds: float, train_utterances: int) -> Tuple[str, str]:
    """The config size for a corpus, and why: by its hours (:func:`size_for_hours`), then a size
    down while that config's warm-up would take more than ``WARMUP_MAX_SHARE`` of its steps on this
    many training utterances (a schedule the run could not complete)."""
    size = size_for_hours(hours)
    why = ""
    while True:
        cfg = load_config(TEMPLATE_DIR / "conf" / f"{size}.yaml")
        steps = steps_per_epoch_estimate(train_seconds, train_utterances, size) * cfg.train.num_epochs
        if cfg.optim.warmup_steps <= WARMUP_MAX_SHARE * steps or size == SIZES[0]:
            return size, why
        smaller = SIZES[SIZES.index(size) - 1]
        why += (f"; '{size}' would warm up for {cfg.optim.warmup_steps} of its ~{steps} steps on "
                f"{train_utterances} training utterances, so '{smaller}'")
        size = smaller


def fitted_warmup(size: str, train_seconds: float, train_utterances: int) -> Optional[int]:
    """The warm-up for the ``size`` config when its own is more than ``WARMUP_MAX_SHARE`` of the
    run's estimated steps (a corpus too small even for the smallest config): a tenth of them."""
    cfg = load_config(TEMPLATE_DIR / "conf" / f"{size}.yaml")
    steps = steps_per_epoch_estimate(train_seconds, train_utterances, size) * cfg.train.num_epochs
    if cfg.optim.warmup_steps <= WARMUP_MAX_SHARE * steps:
        return None
    return max(1, steps // 10)


def find_tools_dir(egs_dir: Path, repo_root: Optional[Path] = None) -> str:
    """How a recipe in ``egs_dir/<name>/`` reaches speechlm's ``tools/``, shell-quoted.

    Inside a checkout (``egs_dir/../tools``) the usual relative ``../../tools``; elsewhere the
    absolute tools dir of ``repo_root`` or of the checkout this package is installed from.
    """
    if (egs_dir / ".." / "tools" / "stage_lib.sh").is_file() and repo_root is None:
        return "../../tools"
    root = Path(repo_root) if repo_root else Path(__file__).resolve().parents[1]
    tools = root.absolute() / "tools"
    if not (tools / "stage_lib.sh").is_file():
        raise SpeechlmError(
            f"{tools}: speechlm's shell tools (stage_lib.sh ...) are not there; pass the "
            "speechlm checkout with --repo-root."
        )
    return shlex.quote(str(tools))


def render(text: str, values: Dict[str, str], what: str) -> str:
    """Fill ``@KEY@`` placeholders; a placeholder left unfilled is a bug, not output."""
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    left = sorted(set(re.findall(r"@[A-Z][A-Z0-9_]*@", text)))
    if left:
        raise SpeechlmError(f"recipe template {what}: no value for {left}")
    return text


def option_line(name: str, value: str, comment: str) -> str:
    """One ``name=value   # comment`` line of a run.sh options block."""
    return f"{name}={value}".ljust(23) + f" # {comment}"


def render_recipe(out_dir: Path, values: Dict[str, str], conf_name: str,
                  warmup: Optional[int] = None) -> None:
    """Write run.sh, RESULTS.md, local/README.md and conf/asr.yaml (from ``conf/<conf_name>``,
    with ``optim.warmup_steps`` set to ``warmup`` when given)."""
    values = dict(values, RESULTS_TABLE=f"{RESULTS_HEADER}\n{RESULTS_RULE}",
                  DESCRIPTION_COMMENT=textwrap.fill(f"{values['NAME']}: {values['DESCRIPTION']}", 98,
                                                    initial_indent="# ", subsequent_indent="# "))
    values["DESCRIPTION"] = textwrap.fill(values["DESCRIPTION"], 100)
    tmp = out_dir.with_name(f".tmp{os.getpid()}.{out_dir.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "conf").mkdir(parents=True)
    (tmp / "local").mkdir()
    try:
        for rel in ("run.sh", "RESULTS.md", "local/README.md"):
            text = render((TEMPLATE_DIR / rel).read_text(encoding="utf-8"), values, rel)
            (tmp / rel).write_text(text, encoding="utf-8")
        conf = (TEMPLATE_DIR / "conf" / f"{conf_name}.yaml").read_text(encoding="utf-8")
        if warmup is not None:
            conf, n = re.subn(r"(?m)^(\s+warmup_steps:) *(\d+)$",
                              rf"\1 {warmup}  # new-recipe: a tenth of the steps this corpus gives "
                              rf"(the '{conf_name}' config's \2 would take most of the run)", conf)
            assert n == 1, f"conf/{conf_name}.yaml has no optim.warmup_steps line"
        (tmp / "conf" / "asr.yaml").write_text(conf, encoding="utf-8")
        (tmp / "run.sh").chmod(0o755)
        os.replace(tmp, out_dir)  # the recipe appears whole or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _describe(result: ImportResult, size: str, why: str = "") -> str:
    spk = f"{len(result.speakers)} speakers" if result.speakers else "speakers unknown"
    return (f"ASR (Conformer-CTC) on a corpus imported from a {result.kind}: {result.num_utterances} "
            f"utterances, {result.hours:.2f} h, {spk}; split {result.split_how} "
            f"({', '.join(result.splits)}); '{size}' config{why}. Generated by `speechlm new-recipe` "
            f"on {datetime.date.today().isoformat()}.")


def corpus_dir_value(corpus: Path, recipe_dir: Path, checkout: Path) -> Tuple[str, str]:
    """How run.sh names the corpus, and why: relative to the recipe folder when the corpus lies
    inside the folder that holds the checkout (inside it or beside it, e.g. ``../shared/data``),
    so the recipe keeps working when that folder moves or is mounted elsewhere; else absolute
    (a relative path climbing out to another tree would break as soon as either moved)."""
    corpus, recipe_dir = corpus.resolve(), recipe_dir.resolve()
    around = checkout.resolve().parent
    if around != Path(around.anchor) and corpus.is_relative_to(around):
        return (os.path.relpath(corpus, recipe_dir),
                "relative to this folder: the corpus lies inside or beside the checkout, and moves with it")
    return str(corpus), "absolute: the corpus lies outside the folder that holds the checkout"


def new_recipe(
    name: str,
    kind: str,
    corpus_path: os.PathLike | str,
    egs_dir: os.PathLike | str = "egs",
    size: str = "auto",
    on_error: str = "raise",
    repo_root: Optional[os.PathLike | str] = None,
    import_args: str = "",
) -> Path:
    """Import the corpus (checks it), then write ``egs_dir/name/`` from the template.

    :param name: recipe and manifest prefix, e.g. ``mycorpus`` (letters, digits, ``_``).
    :param kind: ``kaldi-dir``, ``folder`` or ``tsv`` (see :mod:`speechlm.data.importers`).
    :param corpus_path: the corpus; written into run.sh relative to the recipe when it lies in
        the folder that holds the checkout, else absolute (:func:`corpus_dir_value`).
    :param size: ``auto`` (from the corpus's hours and training utterances:
        :func:`size_for_corpus`) or one of :data:`SIZES`.
    :param on_error: ``raise`` or ``skip`` for bad utterances, now and in the recipe's stage 0.
    :param repo_root: the speechlm checkout whose ``tools/`` run.sh sources, for an ``egs_dir``
        outside it (default: the checkout this package runs from).
    :param import_args: extra ``speechlm import`` options baked into run.sh, e.g.
        ``--speaker-regex ^[0-9]_(?P<speaker>[a-z]+)_`` (no spaces inside one value).
    :return: the recipe directory.
    """
    if not _NAME.match(name):
        raise SpeechlmError(f"recipe name {name!r}: use letters, digits and '_' (starting with a letter)")
    if kind not in KINDS:
        raise SpeechlmError(f"--from must be one of {KINDS}, got {kind!r}")
    if size not in SIZES + ("auto",):
        raise SpeechlmError(f"--size must be auto or one of {SIZES}, got {size!r}")
    egs_dir = Path(egs_dir)
    out_dir = egs_dir / name
    if out_dir.exists():
        raise SpeechlmError(f"{out_dir} already exists; pick another name or delete it first")
    corpus_path = Path(corpus_path).absolute()
    extra = _import_kwargs(import_args)
    result = import_corpus(kind, corpus_path, None, name, on_error=on_error, **extra)
    if "train" not in result.splits:
        raise SpeechlmError(
            f"{corpus_path}: the corpus is a test set only (split {result.split_how}), nothing to "
            "train a recipe on; to score a trained model on it: speechlm decode --exp-dir EXP "
            f"--data {corpus_path} --data-kind {kind}")
    train_sups = result.manifests["train"][1]
    train_seconds, train_utts = sum(s.duration for s in train_sups), len(train_sups)
    why = ""
    if size == "auto":
        size, why = size_for_corpus(result.hours, train_seconds, train_utts)
    warmup = fitted_warmup(size, train_seconds, train_utts)
    tools = find_tools_dir(egs_dir, Path(repo_root) if repo_root else None)
    checkout = egs_dir.absolute().parent if tools == "../../tools" else out_dir.absolute().parent
    corpus_value, corpus_how = corpus_dir_value(corpus_path, out_dir.absolute(), checkout)
    options = [
        option_line("corpus_dir", shlex.quote(corpus_value),
                    f"the corpus ({kind}; see `speechlm import --help`); {corpus_how}"),
        option_line("on_error", on_error, "bad utterances: raise (stop, listing them) | skip (leave out)"),
        option_line("import_args", shlex.quote(import_args) if import_args else '""',
                    "more `speechlm import` options, e.g. \"--dev-fraction 0.05\""),
        option_line("vocab_size", str(SIZE_LIMITS[size][1]), "sentencepiece vocabulary size (incl. 5 special ids)"),
        option_line("methods", "ctc-greedy,hlg-1best", "decoding methods, comma-separated (hlg-*: stage 2 "
                    "builds the HLG graph from the training text)"),
    ]
    values = {
        "NAME": name,
        "DESCRIPTION": _describe(result, size, why),
        "TOOLS": tools,
        "OPTIONS": "\n".join(options),
        "SETUP": f'splits="{" ".join(result.splits)}"\n'
                 'read -ra import_argv <<< "$import_args"   # split on spaces, never globbed',
        "STAGE0": f'speechlm import {kind} "$corpus_dir" --out-dir "$data/manifests" --prefix "$corpus" '
                  '--on-error "$on_error" "${import_argv[@]}"',
    }
    egs_dir.mkdir(parents=True, exist_ok=True)
    render_recipe(out_dir, values, size, warmup)
    logger.info(f"new recipe {out_dir}: {result.summary()}; config '{size}'")
    return out_dir


def _import_kwargs(import_args: str) -> dict:
    """The few ``speechlm import`` options new-recipe must honour while checking the corpus."""
    args = import_parser().parse_args(["folder", "."] + shlex.split(import_args))
    return dict(speaker_regex=args.speaker_regex, dev_fraction=args.dev_fraction,
                test_fraction=args.test_fraction, lowercase=not args.keep_case, language=args.language,
                columns=args.columns)
