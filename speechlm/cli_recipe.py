"""Verbs for adding a corpus: ``speechlm import`` (a corpus in a common layout -> manifests) and
``speechlm new-recipe`` (write ``egs/<name>/`` for it). Registered through cli.EXTRA_VERB_MODULES.
"""

from __future__ import annotations

import argparse

# Kept here, not imported, so that building the parser for any verb does not load lhotse/torch;
# speechlm/data/importers.py and lhotse_corpora.py check their own names.
KINDS = ("kaldi-dir", "folder", "tsv")
LHOTSE_CORPORA = ("librispeech", "ljspeech")

IMPORT_HELP = """\
layouts:
  kaldi-dir  wav.scp (<rec-id> <audio file>), text, utt2spk, optional segments; or a folder whose
             train/ dev/ test/ subfolders are such data dirs
  folder     audio (.wav .flac .ogg .mp3) + same-named .txt/.lab transcripts; a subfolder name is
             the speaker; train/ dev/ test/ subfolders give the split
  tsv        .tsv/.csv with a header: path, text, optional speaker, id, split (paths relative to it)
  librispeech, ljspeech   the upstream layouts, read with Lhotse's recipes (--download fetches them)
Without a split of its own the corpus is split deterministically, by speaker when known."""


def _add_import_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=KINDS + tuple(LHOTSE_CORPORA))
    p.add_argument("path", help="the data dir, folder, table or corpus dir")
    p.add_argument("--on-error", default="raise", choices=["raise", "skip"],
                   help="bad utterances: stop with one message listing them all, or leave them out")
    p.add_argument("--dev-fraction", type=float, default=0.1, help="dev share when the corpus has no split")
    p.add_argument("--test-fraction", type=float, default=0.1, help="test share when the corpus has no split")
    p.add_argument("--speaker-regex", help="folder: regex with (?P<speaker>...) matched on file names")
    p.add_argument("--keep-case", action="store_true", help="do not lowercase transcripts")


def import_parser(fmt=argparse.ArgumentDefaultsHelpFormatter) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechlm import", formatter_class=fmt)
    _add_import_options(p)
    return p


def cmd_import(args) -> None:
    if args.kind in LHOTSE_CORPORA:
        from speechlm.data.lhotse_corpora import PREPARERS

        info = PREPARERS[args.kind](args.path, args.out_dir, prefix=args.prefix or args.kind,
                                          parts=args.parts, download=args.download, num_jobs=args.num_jobs)
        print(f"{args.kind}: {info}; manifests in {args.out_dir}")
        return
    from speechlm.data.importers import import_corpus

    result = import_corpus(args.kind, args.path, args.out_dir, args.prefix or "corpus", on_error=args.on_error,
                           lowercase=not args.keep_case, dev_fraction=args.dev_fraction,
                           test_fraction=args.test_fraction, speaker_regex=args.speaker_regex)
    print(f"{result.summary()}; manifests in {args.out_dir}")


def cmd_new_recipe(args) -> None:
    from speechlm.recipe import new_recipe

    out = new_recipe(args.name, args.kind, args.path, egs_dir=args.egs_dir, size=args.size,
                     on_error=args.on_error, repo_root=args.repo_root, import_args=args.import_args)
    print(f"wrote {out}/ (run.sh, conf/asr.yaml, local/, RESULTS.md). Next:\n"
          f"  cd {out} && ./run.sh            # stages 0-5; ./run.sh --help lists the options")


def register(sub, fmt) -> None:
    s = sub.add_parser("import", help="a Kaldi data dir, audio folder or TSV -> Lhotse manifests",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=IMPORT_HELP)
    _add_import_options(s)
    s.add_argument("--out-dir", required=True, help="where the manifests are written")
    s.add_argument("--prefix", help="manifest name prefix (default: 'corpus', or the corpus name)")
    s.add_argument("--parts", default="100h", help="librispeech: 100h | 960h | mini (training parts)")
    s.add_argument("--download", action="store_true", help="librispeech/ljspeech: download when absent")
    s.add_argument("--num-jobs", type=int, default=2, help="librispeech: parallel readers")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("new-recipe", help="write egs/NAME/ (run.sh, conf, local, RESULTS.md) for a corpus",
                       formatter_class=fmt)
    s.add_argument("name", help="recipe name (also the manifest prefix)")
    s.add_argument("--from", dest="kind", required=True, choices=KINDS, help="the corpus layout")
    s.add_argument("path", help="the corpus: data dir, folder or table")
    s.add_argument("--egs-dir", default="egs", help="where the recipe folder is created")
    s.add_argument("--size", default="auto", choices=("auto", "tiny", "small", "large"),
                   help="config size; auto: tiny < 10 min, small < 10 h, else large")
    s.add_argument("--on-error", default="raise", choices=["raise", "skip"],
                   help="bad utterances, now and in the recipe's stage 0")
    s.add_argument("--import-args", default="",
                   help="more `speechlm import` options for stage 0, e.g. \"--speaker-regex ^(?P<speaker>[a-z]+)_\"")
    s.add_argument("--repo-root", help="speechlm checkout whose tools/ the recipe uses (egs dirs outside it)")
    s.set_defaults(func=cmd_new_recipe)
