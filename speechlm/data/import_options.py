"""The options of ``speechlm import`` (the layouts :mod:`speechlm.data.importers` reads), declared
without importing lhotse, so that building any verb's parser stays fast; ``new-recipe`` parses
its ``--import-args`` with the same parser."""

from __future__ import annotations

import argparse

KINDS = ("kaldi-dir", "folder", "tsv")

IMPORT_HELP = """\
layouts:
  kaldi-dir  wav.scp (<rec-id> <audio file>), text, utt2spk, optional segments; or a folder whose
             train/ dev/ test/ subfolders are such data dirs
  folder     audio (.wav .flac .ogg .mp3) + same-named .txt/.lab transcripts; a subfolder name is
             the speaker; train/ dev/ test/ subfolders give the split
  tsv        .tsv/.csv with a header: path, text, optional speaker, id, split (paths relative to it);
             without a header: --columns path,text[,speaker,...] ('-' ignores a column)
Known corpora in their upstream layouts (librispeech, fsdd, ...): speechlm prepare NAME.
Without a split of its own the corpus is split deterministically, by speaker when known.
Transcripts are normalised (see --keep-case); the summary counts what each rule changed.
Audio without transcripts (self-supervised pretraining): --unlabeled.
A test set only (to score a trained model): a split with test alone (split=test rows, a test/
folder), --test-fraction 1.0, or one audio file (folder PATH may be the file itself)."""


def add_import_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=KINDS)
    p.add_argument("path", help="the data dir, folder, table or corpus dir")
    p.add_argument("--on-error", default="raise", choices=["raise", "skip"],
                   help="bad utterances: stop with one message listing them all, or leave them out")
    p.add_argument("--dev-fraction", type=float, default=0.1, help="dev share when the corpus has no split")
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="test share when the corpus has no split; 1.0: all of it is a test set")
    p.add_argument("--speaker-regex", help="folder: regex with (?P<speaker>...) matched on file names")
    p.add_argument("--language", default="en", choices=["en", "es", "fr", "it", "ru"],
                   help="the transcripts' language: digits are spelled out in it")
    p.add_argument("--keep-case", action="store_true",
                   help="keep transcripts as written (whitespace collapsed only) instead of normalising "
                   "them: lower case, punctuation removed, digits to words, and transcripts with a "
                   "bracketed note such as '(5 seconds of silence)' or an ambiguous number ('28.8') "
                   "left out and counted (rules: speechlm/text/normalize.py)")
    p.add_argument("--unlabeled", action="store_true",
                   help="audio only, for self-supervised pretraining: transcripts are not needed "
                        "nor read; all audio (less a test split the corpus gives) goes to split "
                        "'unlabeled', cuts without text")
    p.add_argument("--columns", help="tsv without a header row: its columns in order, e.g. "
                   "path,text,speaker (roles: path text speaker id split; '-' ignores a column)")


def import_parser(fmt=argparse.ArgumentDefaultsHelpFormatter) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechlm import", formatter_class=fmt)
    add_import_options(p)
    return p
