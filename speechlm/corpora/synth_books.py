"""``synth_books``: sentences of public-domain books read aloud by every offline speech engine
installed here (:mod:`speechlm.synth.engines`); no download.

Text: :mod:`speechlm.text.books` (Gutenberg stripping, sentences, normalisation, whole books
held out for dev and test; the rest is the LM text). Voices: every voice of every engine asked
for (``engines="auto"``: all installed ones; each engine left out is named with what to
install). Splits::

    test  = sentences of the test books, spoken by the test-only speaker models (test_models,
            default: every Piper voice and flite rms: never heard in training) and
            num_test_voices held-out espeak voices
    dev   = sentences of the dev books, by the dev-only models (default festival ked_diphone)
            and num_dev_voices other held-out espeak voices
    train = sentences of the training books, by every other voice
    unlabeled (num_unlabeled > 0) = other sentences of the training books, by the training voices,
            with no transcript in any manifest: audio for self-supervised pretraining

Within a split, utterances go to its engines in turn, and to each engine's voices in turn, so
an engine with few voices is heard as often as espeak's hundred. Layout under ``output_dir``::

    text/lm_text.txt, text/books.json       LM text; books per split, skipped files, counts
    wav/<split>/<hash>.wav                  16 kHz mono; named by a hash of voice and text, so
                                            a re-run reuses exactly the audio it would make
    manifests/synth_books_{recordings,supervisions,cuts}_<split>.jsonl.gz, voices.json
                                            (also test_<engine>: the test utterances of one engine)
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

from speechlm.base.errors import SpeechlmError
from speechlm.corpora.synth_en import write_lines
from speechlm.synth.jobs import SAMPLE_RATE, Voice, run_synthesis_jobs

logger = logging.getLogger(__name__)

PREFIX = "synth_books"
SPLITS = ("train", "dev", "test")
DEFAULT_BOOKS_DIR = "../shared/data/text_en"
DEFAULT_TEST_MODELS = "piper,flite:rms"
DEFAULT_DEV_MODELS = "festival:ked_diphone"


def _engine_names(engines: str) -> Tuple[List[str], Dict[str, str]]:
    """The engines to use, and the ones left out -> why. ``auto``: every installed engine;
    an engine named explicitly must be installed."""
    from speechlm.synth.engines import ENGINES, check_engine, engine_status

    if engines.strip() == "auto":
        status = engine_status()
        return [n for n, why in status.items() if why is None], {n: why for n, why in status.items() if why}
    names = [n.strip() for n in engines.split(",") if n.strip()]
    if not names:
        raise SpeechlmError(f"--engines is empty; give 'auto' or some of {', '.join(ENGINES)}")
    for name in names:
        check_engine(name)
    return names, {}


def _matches(voice: Voice, patterns: Sequence[str]) -> bool:
    return any(p in (voice["engine"], voice["model"]) for p in patterns)


def _patterns(text: str, option: str) -> List[str]:
    from speechlm.synth.engines import ENGINES

    patterns = [p.strip() for p in text.split(",") if p.strip()]
    for p in patterns:
        if p.split(":")[0] not in ENGINES:
            raise SpeechlmError(f"{option}: {p!r} names no engine; give ENGINE or ENGINE:MODEL with "
                                f"ENGINE one of {', '.join(ENGINES)} (e.g. piper, flite:rms)")
    return patterns


def split_voices(engines: Sequence[str], test_models: str, dev_models: str, num_dev_voices: int,
                 num_test_voices: int, seed: int) -> Tuple[Dict[str, List[Voice]], List[str]]:
    """Voices per split (module docstring) and warnings (a held-out model with no voice here)."""
    from speechlm.synth.engines import ENGINES

    test_p, dev_p = _patterns(test_models, "--test-models"), _patterns(dev_models, "--dev-models")
    voices = [v for name in engines for v in ENGINES[name].voices(seed)]
    warnings = [f"held-out model {p} has no voice here (its engine is not used or not installed)"
                for p in test_p + dev_p if not any(_matches(v, [p]) for v in voices)]
    split: Dict[str, List[Voice]] = {
        "test": [v for v in voices if _matches(v, test_p)],
        "dev": [v for v in voices if _matches(v, dev_p) and not _matches(v, test_p)],
    }
    rest = [v for v in voices if not _matches(v, test_p + dev_p)]
    espeak = [v for v in rest if v["engine"] == "espeak"]
    if espeak and num_dev_voices + num_test_voices >= len(espeak):
        raise SpeechlmError(f"cannot hold out {num_test_voices} test and {num_dev_voices} dev espeak "
                            f"voices from {len(espeak)}; leave some for training")
    held = espeak[:num_test_voices + num_dev_voices] if espeak else []
    split["test"] += held[:num_test_voices]
    split["dev"] += held[num_test_voices:]
    held_ids = {v["id"] for v in held}
    split["train"] = [v for v in rest if v["id"] not in held_ids]
    heard = {v.get("speaker") for v in split["train"]} - {None}
    for name in ("dev", "test"):
        for model in sorted({str(v["model"]) for v in split[name] if v.get("speaker") in heard}):
            warnings.append(f"{name} model {model} is the same recorded speaker as a training voice "
                            "(flite kal/kal16 = festival kal_diphone, flite slt = festival slt HTS)")
    for name in SPLITS:
        if not split[name]:
            raise SpeechlmError(f"synth_books: no voice for the {name} split (engines: {', '.join(engines)}; "
                                "--test-models/--dev-models and --num-*-voices decide the held-out voices)")
    return split, warnings


def assign_voices(n: int, voices: Sequence[Voice]) -> List[Voice]:
    """``n`` voices: the split's engines in turn, each engine's voices in turn."""
    by_engine: Dict[str, List[Voice]] = {}
    for v in voices:
        by_engine.setdefault(str(v["engine"]), []).append(v)
    groups = list(by_engine.values())
    picked = []
    for i in range(n):
        group = groups[i % len(groups)]  # engine i mod E, then its voices in turn
        picked.append(group[(i // len(groups)) % len(group)])
    return picked


def _wav_name(voice: Voice, text: str) -> str:
    key = json.dumps([voice, text], sort_keys=True).encode()
    return hashlib.sha1(key).hexdigest()[:20] + ".wav"


def _pick(sentences: Sequence[str], n: int, split: str, seed: int) -> List[str]:
    if n > len(sentences):
        raise SpeechlmError(f"synth_books: {n} {split} utterances asked for, but the {split} books have "
                            f"{len(sentences)} speakable sentences; ask for fewer (--num-{split}) or hold out "
                            "more books (--num-dev-books, --num-test-books)")
    return random.Random(f"{seed}:{split}").sample(list(sentences), n)


def _pick_unlabeled(sentences: Sequence[str], paired: Sequence[str], n: int, seed: int) -> List[str]:
    """``n`` training-book sentences that no paired utterance speaks, the first ones of a seeded
    order of all of them (the same n give the same sentences whatever ``paired`` holds of others)."""
    if n == 0:
        return []
    taken = set(paired)
    order = list(sentences)
    random.Random(f"{seed}:unlabeled").shuffle(order)
    free = [x for x in order if x not in taken]
    if n > len(free):
        raise SpeechlmError(f"synth_books: {n} unlabeled utterances asked for, but the training books have "
                            f"{len(free)} speakable sentences besides the {len(paired)} paired ones; ask for "
                            "fewer (--num-unlabeled)")
    return free[:n]


def prepare_synth_books(
    output_dir: Union[str, Path],
    books_dir: Union[str, Path] = DEFAULT_BOOKS_DIR,
    num_train: int = 300,
    num_dev: int = 40,
    num_test: int = 60,
    engines: str = "auto",
    test_models: str = DEFAULT_TEST_MODELS,
    dev_models: str = DEFAULT_DEV_MODELS,
    num_dev_voices: int = 4,
    num_test_voices: int = 6,
    num_dev_books: int = 2,
    num_test_books: int = 2,
    min_words: int = 4,
    max_words: int = 20,
    unmarked: str = "skip",
    seed: int = 0,
    num_jobs: int = 2,
    num_unlabeled: int = 0,
) -> Dict[str, object]:
    """Prepare ``synth_books`` under ``output_dir``: LM text, audio and Lhotse manifests.

    :param books_dir: a folder of ``.txt`` books (Project Gutenberg files, or plain books with
        ``unmarked="whole"``).
    :param num_train: training utterances (``num_dev``, ``num_test``: likewise).
    :param engines: ``auto`` or a comma-separated list of engines (each must be installed).
    :param test_models: speaker models heard only in test: ``ENGINE`` or ``ENGINE:MODEL``,
        comma-separated (``dev_models`` likewise, for dev).
    :param num_dev_voices: espeak voices held out for dev (``num_test_voices``: for test).
    :param num_dev_books: books held out for dev (``num_test_books``: for test).
    :param min_words: shortest sentence spoken, in words (``max_words``: longest).
    :param unmarked: a book without Gutenberg markers: ``skip`` (counted) or ``whole``.
    :param num_unlabeled: utterances of the split ``unlabeled`` (0: none): training-book sentences
        that no paired training utterance speaks, in a seeded order of their own (so the same N
        give the same sentences whatever ``num_train`` leaves free of them), by the training voices
        in the rotation after the paired ones; recordings and cuts without supervisions.
    :return: counts, hours per split, engines used and left out, and the output paths.
    """
    from lhotse import Recording, SupervisionSegment
    from lhotse.audio import AudioSource

    from speechlm.data.corpus import write_manifests
    from speechlm.text.books import prepare_book_text

    for name, value in dict(num_train=num_train, num_dev=num_dev, num_test=num_test, num_jobs=num_jobs).items():
        if not isinstance(value, int) or value < 1:
            raise SpeechlmError(f"synth_books: {name} must be a positive integer, got {value!r}")
    if not isinstance(num_unlabeled, int) or num_unlabeled < 0:
        raise SpeechlmError(f"synth_books: num_unlabeled must be 0 or a positive integer, got {num_unlabeled!r}")
    names, left_out = _engine_names(engines)
    for name, why in left_out.items():
        logger.warning("synth_books: engine %s left out: %s", name, why)
    voices, warnings = split_voices(names, test_models, dev_models, num_dev_voices, num_test_voices, seed)
    for w in warnings:
        logger.warning("synth_books: %s", w)

    out = Path(output_dir).resolve()
    text = prepare_book_text(books_dir, num_dev_books, num_test_books, min_words, max_words, seed, unmarked)
    lm_path = out / "text" / "lm_text.txt"
    write_lines(lm_path, text.lm_text)
    books_info = {"books": text.books, "skipped": text.skipped, "lm_sentences": len(text.lm_text),
                  "lm_words": text.lm_words, "speakable": {k: len(v) for k, v in text.speakable.items()},
                  "normalisation": text.counts.line()}
    write_lines(out / "text" / "books.json", [json.dumps(books_info, indent=1)])
    man_dir = out / "manifests"
    man_dir.mkdir(parents=True, exist_ok=True)
    for stale in man_dir.glob(f"{PREFIX}_*_test_*.jsonl.gz"):  # per-engine test sets of an earlier run
        stale.unlink()
    (man_dir / "voices.json").write_text(json.dumps(voices, indent=1))

    sizes = {"train": num_train, "dev": num_dev, "test": num_test}
    splits = SPLITS + (("unlabeled",) if num_unlabeled else ())
    picked = {split: _pick(text.speakable[split], sizes[split], split, seed) for split in SPLITS}
    picked["unlabeled"] = _pick_unlabeled(text.speakable["train"], picked["train"], num_unlabeled, seed)
    rotation = {split: assign_voices(len(picked[split]), voices[split]) for split in SPLITS}
    # the unlabeled utterances go on with the training voices' rotation after the paired ones
    rotation["unlabeled"] = assign_voices(num_train + num_unlabeled, voices["train"])[num_train:]
    utts: Dict[str, List[Tuple[str, str, str, Voice]]] = {}
    jobs = []
    for split in splits:
        (out / "wav" / split).mkdir(parents=True, exist_ok=True)
        utts[split] = []
        for i, (sentence, voice) in enumerate(zip(picked[split], rotation[split])):
            path = str(out / "wav" / split / _wav_name(voice, sentence))
            utts[split].append((f"{PREFIX}-{split}-{i:06d}", path, sentence, voice))
            jobs.append((path, sentence, voice))
    results = run_synthesis_jobs(jobs, num_jobs)

    summary: Dict[str, object] = {"lm_text": str(lm_path), "lm_words": text.lm_words, "engines": names,
                                  "books": {k: len(v) for k, v in text.books.items()}, "books_skipped": text.skipped,
                                  "engines_left_out": left_out, "warnings": warnings, "manifests": str(man_dir)}
    for split in splits:
        recs, sups = [], []
        for utt_id, path, sentence, voice in utts[split]:
            n = results[path][0]
            recs.append(Recording(id=utt_id, sources=[AudioSource(type="file", channels=[0], source=path)],
                                  sampling_rate=SAMPLE_RATE, num_samples=n, duration=n / SAMPLE_RATE))
            if split == "unlabeled":
                continue
            sups.append(SupervisionSegment(id=utt_id, recording_id=utt_id, start=0.0, duration=n / SAMPLE_RATE,
                                           channel=0, text=sentence, speaker=str(voice["id"]), language="English",
                                           custom={"engine": voice["engine"], "model": voice["model"]}))
        write_manifests(recs, sups, man_dir, PREFIX, split)
        if split == "test":  # one test set per engine too: WER of a held-out engine on its own
            for engine in sorted({str(v["engine"]) for v in voices[split]}):
                ids = {u[0] for u in utts[split] if u[3]["engine"] == engine}
                if not ids:
                    continue
                write_manifests([r for r in recs if r.id in ids], [x for x in sups if x.id in ids],
                                man_dir, PREFIX, f"test_{engine}")
                summary.setdefault("test_sets", []).append(f"test_{engine}")
        summary[f"num_{split}"] = len(recs)
        summary[f"hours_{split}"] = round(sum(r.duration for r in recs) / 3600, 3)
        speakers = voices["train" if split == "unlabeled" else split]
        summary[f"num_{split}_voices"] = len(speakers)
        summary[f"{split}_models"] = sorted({str(v["model"]).split("+")[0] for v in speakers})
        summary[f"num_{split}_synthesised"] = sum(results[u[1]][1] for u in utts[split])
    logger.info("synth_books prepared under %s: %s", out, summary)
    return summary


def add_arguments(p) -> None:
    """``speechlm prepare synth_books`` options (``--out-dir`` gets text/, wav/ and manifests/)."""
    from speechlm.text.books import UNMARKED_CHOICES

    p.add_argument("--books-dir", default=DEFAULT_BOOKS_DIR,
                   help="folder of .txt books, searched recursively (default: %(default)s)")
    p.add_argument("--num-train", type=int, default=300, help="training utterances (default: %(default)s)")
    p.add_argument("--num-dev", type=int, default=40, help="dev utterances (default: %(default)s)")
    p.add_argument("--num-test", type=int, default=60, help="test utterances (default: %(default)s)")
    p.add_argument("--engines", default="auto",
                   help="auto (every installed engine) or a comma-separated list of espeak, piper, flite, "
                        "festival (default: %(default)s)")
    p.add_argument("--test-models", default=DEFAULT_TEST_MODELS,
                   help="speaker models heard only in test, ENGINE or ENGINE:MODEL (default: %(default)s)")
    p.add_argument("--dev-models", default=DEFAULT_DEV_MODELS,
                   help="speaker models heard only in dev (default: %(default)s)")
    p.add_argument("--num-dev-voices", type=int, default=4, help="espeak voices held out for dev")
    p.add_argument("--num-test-voices", type=int, default=6, help="espeak voices held out for test")
    p.add_argument("--num-dev-books", type=int, default=2, help="whole books held out for dev")
    p.add_argument("--num-test-books", type=int, default=2, help="whole books held out for test")
    p.add_argument("--min-words", type=int, default=4, help="shortest sentence spoken (words)")
    p.add_argument("--max-words", type=int, default=20, help="longest sentence spoken (words)")
    p.add_argument("--unmarked", choices=UNMARKED_CHOICES, default="skip",
                   help="a book without Project Gutenberg markers: skip it (counted) or read it whole")
    p.add_argument("--seed", type=int, default=0, help="seeds the book split, sentences and voices")
    p.add_argument("--num-jobs", type=int, default=2, help="synthesis processes")
    p.add_argument("--num-unlabeled", type=int, default=0,
                   help="utterances of the split 'unlabeled': other training-book sentences by the training "
                        "voices, no transcript (audio for SSL pretraining; default: %(default)s)")


def prepare(args) -> str:
    info = prepare_synth_books(
        args.out_dir, books_dir=args.books_dir, num_train=args.num_train, num_dev=args.num_dev,
        num_test=args.num_test, engines=args.engines, test_models=args.test_models,
        dev_models=args.dev_models, num_dev_voices=args.num_dev_voices, num_test_voices=args.num_test_voices,
        num_dev_books=args.num_dev_books, num_test_books=args.num_test_books, min_words=args.min_words,
        max_words=args.max_words, unmarked=args.unmarked, seed=args.seed, num_jobs=args.num_jobs,
        num_unlabeled=args.num_unlabeled)
    splits = "; ".join(f"{s}={info[f'num_{s}']} ({info[f'hours_{s}']} h, {info[f'num_{s}_voices']} voices: "
                       f"{', '.join(info[f'{s}_models'][:6])}{' ...' if len(info[f'{s}_models']) > 6 else ''})"
                       for s in SPLITS + (("unlabeled",) if args.num_unlabeled else ()))
    books = ", ".join(f"{k}={v}" for k, v in info["books"].items())
    skipped = "".join(f"; book skipped: {name} ({why})" for name, why in info["books_skipped"][:5])
    more = len(info["books_skipped"]) - 5
    skipped += f"; {more} more books skipped (text/books.json)" if more > 0 else ""
    left = "".join(f"; engine {n} left out: {why}" for n, why in info["engines_left_out"].items())
    warn = "".join(f"; warning: {w}" for w in info["warnings"])
    return (f"synth_books: {splits}; books {books}{skipped}; LM text {info['lm_words']} words in {info['lm_text']}; "
            f"engines: {', '.join(info['engines'])}{left}{warn}")
