"""Verbs for corpora: ``speechlm prepare NAME`` (a registered corpus -> manifests), ``speechlm
import`` (a corpus in a common layout -> manifests) and ``speechlm new-recipe`` (write
``egs/<name>/`` for it). Registered through cli.VERB_MODULES.
"""

from __future__ import annotations

import argparse

from speechlm.base.registry import CORPORA, resolve
from speechlm.data.import_options import IMPORT_HELP, KINDS, add_import_options

def cmd_prepare(args) -> None:
    entry = CORPORA.get(args.corpus)
    print(f"{resolve(entry.prepare)(args)}; manifests in {args.out_dir}")


def cmd_import(args) -> None:
    from speechlm.data.importers import import_corpus

    result = import_corpus(args.kind, args.path, args.out_dir, args.prefix, on_error=args.on_error,
                           lowercase=not args.keep_case, language=args.language,
                           dev_fraction=args.dev_fraction,
                           test_fraction=args.test_fraction, speaker_regex=args.speaker_regex,
                           columns=args.columns, unlabeled=args.unlabeled)
    print(f"{result.summary()}; manifests in {args.out_dir}")


def cmd_new_recipe(args) -> None:
    from speechlm.recipe import new_recipe

    out = new_recipe(args.name, args.kind, args.path, egs_dir=args.egs_dir, size=args.size,
                     on_error=args.on_error, repo_root=args.repo_root, import_args=args.import_args)
    print(f"wrote {out}/ (run.sh, conf/asr.yaml, local/, RESULTS.md). Next:\n"
          f"  cd {out} && ./run.sh            # stages 0-5; ./run.sh --help lists the options")


def register(sub, fmt) -> None:
    s = sub.add_parser("prepare", help="a known corpus -> Lhotse manifests (speechlm prepare NAME --help)",
                       formatter_class=fmt)
    corpora = s.add_subparsers(dest="corpus", required=True, metavar="CORPUS")
    for entry in CORPORA:
        c = corpora.add_parser(entry.name, help=entry.help, formatter_class=fmt)
        c.add_argument("--out-dir", required=True, help="where the manifests are written")
        resolve(entry.add_arguments)(c)
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("import", help="a Kaldi data dir, audio folder or TSV -> Lhotse manifests",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=IMPORT_HELP)
    add_import_options(s)
    s.add_argument("--out-dir", required=True, help="where the manifests are written")
    s.add_argument("--prefix", default="corpus", help="manifest name prefix")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("new-recipe", help="write egs/NAME/ (run.sh, conf, local, RESULTS.md) for a corpus",
                       formatter_class=fmt)
    s.add_argument("name", help="recipe name (also the manifest prefix)")
    s.add_argument("--from", dest="kind", required=True, choices=KINDS, help="the corpus layout")
    s.add_argument("path", help="the corpus: data dir, folder or table")
    s.add_argument("--egs-dir", default="egs", help="where the recipe folder is created")
    s.add_argument("--size", default="auto", choices=("auto", "tiny", "small", "large"),
                   help="config size; auto: tiny < 10 min, small < 10 h, else large, then a size "
                        "down while the config's warm-up would take over 20%% of its steps on this corpus")
    s.add_argument("--on-error", default="raise", choices=["raise", "skip"],
                   help="bad utterances, now and in the recipe's stage 0")
    s.add_argument("--import-args", default="",
                   help="more `speechlm import` options for stage 0, e.g. \"--speaker-regex ^(?P<speaker>[a-z]+)_\"")
    s.add_argument("--repo-root", help="speechlm checkout whose tools/ the recipe uses (egs dirs outside it)")
    s.set_defaults(func=cmd_new_recipe)
