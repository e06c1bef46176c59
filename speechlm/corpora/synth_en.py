"""The embedded default corpus ``synth_en``: spoken requests synthesised locally with espeak-ng.

No download: sentences come from :mod:`speechlm.corpora.synth_en_grammar`, audio from
:mod:`speechlm.synth.espeak`. Layout under ``output_dir``::

    text/lm_text.txt                       text-only split for LM pretraining
    wav/<split>/<utt_id>.wav               16 kHz mono 16-bit paired audio
    manifests/synth_en_{recordings,supervisions,cuts}_<split>.jsonl.gz
    manifests/voices.json                  the voices of each split

A voice is an espeak English accent plus a voice variant (``en-gb-scotland+f2``) with its own
speaking rate and pitch. Dev and test voices and sentences are both held out from training, and
dev/test sentences never occur in the LM text.

``num_unlabeled`` adds the split ``unlabeled`` (audio for self-supervised pretraining): the training
voices speaking the sentences that follow the paired training ones (numbered on from them:
``synth_en-unlabeled-<position>``), written as recordings and cuts without supervisions (the
supervisions manifest is empty), so no transcript reaches a model that reads it.
"""

import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Sequence, Union

from speechlm.base.errors import SpeechlmError
from speechlm.corpora.synth_en_grammar import generate_distinct_sentences
from speechlm.synth.jobs import SAMPLE_RATE, Voice, run_synthesis_jobs

SPLITS = ("train", "dev", "test")
# Bump when the text/voice recipe changes, so stale WAVs are never reused with new texts.
_LAYOUT_VERSION = 1


def make_voices(seed: int = 0) -> List[Voice]:
    """The espeak-ng voices of synth_en: :func:`speechlm.synth.espeak.make_english_voices`."""
    from speechlm.synth.espeak import make_english_voices

    return make_english_voices(seed)


def split_voices(voices: Sequence[Voice], num_dev_voices: int, num_test_voices: int) -> Dict[str, List[Voice]]:
    """Hold out the first voices for test, the next for dev; the rest are for training."""
    if num_dev_voices < 1 or num_test_voices < 1 or num_dev_voices + num_test_voices >= len(voices):
        raise SpeechlmError(
            f"Cannot hold out {num_dev_voices} dev and {num_test_voices} test voices from the "
            f"{len(voices)} espeak voices available; choose at least 1 of each and leave some for training."
        )
    nt, nd = num_test_voices, num_dev_voices
    return {"test": list(voices[:nt]), "dev": list(voices[nt:nt + nd]), "train": list(voices[nt + nd:])}


# ---- main entry point ----

def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise SpeechlmError(f"prepare_synth_en: {name} must be a positive integer, got {value!r}.")


def _check_layout(wav_root: Path, key: Dict[str, int]) -> None:
    """Refuse to reuse WAVs made with other settings: their texts would no longer match."""
    stamp = wav_root / "synth_config.json"
    if stamp.is_file():
        old = json.loads(stamp.read_text())
        if old != key:
            raise SpeechlmError(
                f"{wav_root} holds audio synthesised with other settings ({old}, now {key}). "
                f"Remove {wav_root} or choose another output directory."
            )
    else:
        wav_root.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(key))


def write_lines(path: Path, lines: Sequence[str]) -> None:
    """``lines``, one a line, written under a temporary name and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def prepare_synth_en(
    output_dir: Union[str, Path],
    num_text: int = 100_000,
    num_train: int = 3000,
    num_dev: int = 200,
    num_test: int = 300,
    seed: int = 0,
    num_jobs: int = 2,
    num_dev_voices: int = 8,
    num_test_voices: int = 10,
    num_unlabeled: int = 0,
) -> Dict[str, object]:
    """Generate the ``synth_en`` corpus: LM text, paired audio and Lhotse manifests.

    :param output_dir: where ``text/``, ``wav/`` and ``manifests/`` are written.
    :param num_text: sentences in the text-only LM split (``text/lm_text.txt``); it contains the
        training transcripts and never a dev/test sentence.
    :param num_train: paired training utterances (train voices; sentences drawn from the LM text).
    :param num_dev: dev utterances (held-out voices and held-out sentences).
    :param num_test: test utterances (other held-out voices, other held-out sentences).
    :param seed: seeds sentences, voice parameters and the voice split.
    :param num_jobs: synthesis processes.
    :param num_dev_voices: voices held out for dev; ``num_test_voices`` likewise for test.
    :param num_unlabeled: utterances of the split ``unlabeled`` (0: none): training voices, the
        sentences after the paired training ones, no transcript in the manifests.
    :return: a dict with per-split utterance and voice counts, counts of newly synthesised WAVs,
        and the paths of the LM text, the manifests and ``voices.json``.

    Existing valid WAVs are reused, so a re-run only synthesises what is missing.
    """
    from lhotse import Recording, SupervisionSegment
    from lhotse.audio import AudioSource

    from speechlm.data.corpus import manifest_paths, write_manifests

    _check_sizes(num_text=num_text, num_train=num_train, num_dev=num_dev, num_test=num_test,
                 num_jobs=num_jobs)
    if not isinstance(num_unlabeled, int) or num_unlabeled < 0:
        raise SpeechlmError(f"prepare_synth_en: num_unlabeled must be 0 or a positive integer, got {num_unlabeled!r}.")
    out = Path(output_dir).resolve()
    wav_root, man_dir = out / "wav", out / "manifests"
    _check_layout(wav_root, {"version": _LAYOUT_VERSION, "seed": seed, "num_dev": num_dev,
                             "num_test": num_test, "num_dev_voices": num_dev_voices,
                             "num_test_voices": num_test_voices})

    # Held-out sentences first, so their positions do not depend on num_text / num_train.
    # The LM text does not depend on num_unlabeled: the unlabeled sentences may run past its end.
    num_lm = max(num_text, num_train)
    pool = generate_distinct_sentences(num_test + num_dev + max(num_lm, num_train + num_unlabeled), seed=seed)
    texts = {"test": pool[:num_test], "dev": pool[num_test:num_test + num_dev]}
    lm_text = pool[num_test + num_dev:num_test + num_dev + num_lm]
    texts["train"] = lm_text[:num_train]
    texts["unlabeled"] = pool[num_test + num_dev + num_train:num_test + num_dev + num_train + num_unlabeled]
    splits = SPLITS + (("unlabeled",) if num_unlabeled else ())
    lm_path = out / "text" / "lm_text.txt"
    write_lines(lm_path, lm_text)

    voices = split_voices(make_voices(seed), num_dev_voices, num_test_voices)
    man_dir.mkdir(parents=True, exist_ok=True)
    voices_path = man_dir / "voices.json"
    voices_path.write_text(json.dumps(voices, indent=1))

    # unlabeled utterances continue the paired ones: the training voices' rotation and the
    # numbering go on from num_train, so a WAV's name always means the same sentence and voice
    voices_of = {**voices, "unlabeled": voices["train"]}
    utts = {}  # split -> list of (utt_id, path, text, voice)
    jobs = []
    for split in splits:
        (wav_root / split).mkdir(parents=True, exist_ok=True)
        utts[split] = []
        speakers = voices_of[split]
        for i, text in enumerate(texts[split], start=num_train if split == "unlabeled" else 0):
            voice = speakers[i % len(speakers)]
            utt_id = f"synth_en-{split}-{i:06d}"
            path = str(wav_root / split / f"{utt_id}.wav")
            utts[split].append((utt_id, path, text, voice))
            jobs.append((path, text, voice))
    results = run_synthesis_jobs(jobs, num_jobs)

    summary: Dict[str, object] = {"lm_text": str(lm_path), "num_lm_text": len(lm_text),
                                  "voices": str(voices_path), "manifests": {}}
    for split in splits:
        recs, sups = [], []
        for utt_id, path, text, voice in utts[split]:
            n = results[path][0]
            recs.append(Recording(id=utt_id, sources=[AudioSource(type="file", channels=[0], source=path)],
                                  sampling_rate=SAMPLE_RATE, num_samples=n, duration=n / SAMPLE_RATE))
            if split == "unlabeled":
                continue
            sups.append(SupervisionSegment(id=utt_id, recording_id=utt_id, start=0.0,
                                           duration=n / SAMPLE_RATE, channel=0, text=text,
                                           speaker=str(voice["id"]), language="English"))
        write_manifests(recs, sups, man_dir, "synth_en", split)
        paths = manifest_paths(man_dir, "synth_en", split)
        summary["manifests"][split] = {k: str(v) for k, v in paths.items()}
        summary[f"num_{split}"] = len(recs)
        summary[f"num_{split}_voices"] = len(voices_of[split])
        summary[f"num_{split}_synthesised"] = sum(results[u[1]][1] for u in utts[split])
    logging.info("synth_en prepared under %s: %s", out, summary)
    return summary


def add_arguments(p) -> None:
    """``speechlm prepare synth_en`` options (``--out-dir`` gets text/, wav/ and manifests/)."""
    p.add_argument("--num-text", type=int, default=100_000, help="LM text sentences")
    p.add_argument("--num-train", type=int, default=3000, help="paired train utterances")
    p.add_argument("--num-dev", type=int, default=200, help="dev utterances")
    p.add_argument("--num-test", type=int, default=300, help="test utterances")
    p.add_argument("--seed", type=int, default=0, help="seeds sentences, voices and the voice split")
    p.add_argument("--num-jobs", type=int, default=2, help="synthesis processes")
    p.add_argument("--num-unlabeled", type=int, default=0,
                   help="utterances of the split 'unlabeled': training voices, sentences after the paired "
                        "training ones, no transcript (audio for self-supervised pretraining)")


def prepare(args) -> str:
    info = prepare_synth_en(args.out_dir, num_text=args.num_text, num_train=args.num_train,
                            num_dev=args.num_dev, num_test=args.num_test, seed=args.seed,
                            num_jobs=args.num_jobs, num_unlabeled=args.num_unlabeled)
    counts = ", ".join(f"{k[4:]}={v}" for k, v in info.items() if k.startswith("num_"))
    return f"synth_en: {counts}; manifests in {Path(args.out_dir) / 'manifests'}"

