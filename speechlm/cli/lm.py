"""Verbs of the speech-language pretraining work, registered through ``cli.VERB_MODULES``:

- ``speechlm train-lm``: text-LM pretraining (recipe stage 3), validation perplexity to
  ``EXP_DIR/perplexity.txt``.
- ``speechlm subset-cuts``: the first (or a random) N or fraction of a cut manifest, e.g. a low-resource
  training subset.
- ``speechlm ablation-table``: the markdown table of a recipe's pretraining ablation (ASR or TTS).
- ``speechlm results-md``: add text to a named section of a recipe's RESULTS.md.

Speech-LM ASR training is ``speechlm train`` with ``model.kind: speechlm`` in the config.
"""

from __future__ import annotations

import sys


def cmd_train_lm(args) -> None:
    from speechlm.base.config import load_config
    from speechlm.cli import family_trainer

    cfg = load_config(args.config, args.set or [])
    cfg.model.kind = "lm"
    family_trainer(cfg, "train-lm")(cfg, args.exp_dir, args.text, args.tokenizer).run(resume=args.resume)


def cmd_subset_cuts(args) -> None:
    from speechlm.data.features import load_cuts
    from speechlm.base.errors import SpeechlmError

    cuts = load_cuts(args.cuts)
    n = args.first if args.first else round(len(cuts) * args.fraction)
    if n <= 0 or n > len(cuts):
        raise SpeechlmError(f"subset-cuts: asked for {n} of {len(cuts)} cuts in {args.cuts}")
    if args.seed is not None:  # a random subset, reproducible from the seed
        import random

        cuts = cuts.shuffle(rng=random.Random(args.seed))
    cuts.subset(first=n).to_file(args.out)
    how = f"random (seed {args.seed})" if args.seed is not None else "first"
    print(f"{args.out}: {how} {n} of {len(cuts)} cuts of {args.cuts}")


def cmd_ablation_table(args) -> None:
    from speechlm.base.errors import SpeechlmError
    from speechlm.scoring.ablation import asr_ablation_table, tts_ablation_table

    if args.kind == "asr":
        table = asr_ablation_table(args.dir, args.set_name)
    else:
        if len(args.dir) > 1:
            raise SpeechlmError("ablation-table --kind tts: give one --dir (its seeds are <init>-s<seed> "
                                "run dirs listed in --inits)")
        table = tts_ablation_table(args.dir[0], args.inits.split())
    if args.command:
        table += f"\ncommand: `{args.command}`\n"
    print(table, end="")


def cmd_results_md(args) -> None:
    from speechlm.scoring.results_md import append_to_section, current_commit

    text = sys.stdin.read() if args.text == "-" else args.text
    text = text.replace("@COMMIT@", current_commit())
    append_to_section(args.file, args.section, text.rstrip("\n").split("\n"), title=args.title)


def register(sub, fmt) -> None:
    from speechlm.cli import add_training_options

    s = sub.add_parser("train-lm", help="pretrain the decoder-only text LM (stage 3)",
                       formatter_class=fmt)
    add_training_options(s, "YAML config; its lm/optim/train sections are used",
                         "checkpoints, resolved config, perplexity.txt",
                         "sentencepiece model from train-tokenizer")
    s.add_argument("--text", required=True, help="LM text, one sentence a line")
    s.set_defaults(func=cmd_train_lm)

    s = sub.add_parser("subset-cuts", help="first N (or a fraction) of a cut manifest",
                       formatter_class=fmt)
    s.add_argument("--cuts", required=True)
    s.add_argument("--out", required=True)
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--first", type=int, help="number of cuts")
    g.add_argument("--fraction", type=float, help="fraction of the cuts")
    s.add_argument("--seed", type=int, help="take a random subset (shuffled with this seed)")
    s.set_defaults(func=cmd_subset_cuts)

    s = sub.add_parser("ablation-table", formatter_class=fmt,
                       help="markdown table of a pretraining ablation's runs (to stdout)")
    s.add_argument("--kind", choices=["asr", "tts"], default="asr",
                   help="asr: DIR/<condition>-<init>/decode-SET/wer-summary-SET.txt; "
                        "tts: DIR/<init>/eval-test/tts-summary.json")
    s.add_argument("--dir", required=True, nargs="+",
                   help="the ablation's output dir, e.g. exp/ablation; asr: several dirs (one per "
                        "seed, same arms) give means over the seeds with their range")
    s.add_argument("--set-name", default="test", help="asr: which decoded set to tabulate")
    s.add_argument("--inits", default="random pretrained", help="tts: the run dirs, in row order")
    s.add_argument("--command", default="", help="command line to print under the table")
    s.set_defaults(func=cmd_ablation_table)

    s = sub.add_parser("results-md", formatter_class=fmt,
                       help="add text to a section of a recipe's RESULTS.md (created if absent)")
    s.add_argument("--file", default="RESULTS.md", help="the RESULTS.md")
    s.add_argument("--section", required=True, help="section key: the run's exp dir, e.g. exp/lm")
    s.add_argument("--title", default="", help="title of a new section (## KEY: TITLE)")
    s.add_argument("--text", default="-", help="the text to add (@COMMIT@ becomes the checkout's "
                                               "commit); - reads it from stdin")
    s.set_defaults(func=cmd_results_md)
