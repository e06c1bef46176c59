"""``speechlm <verb> ...``: thin subcommands over library functions, used by every recipe.

Bad input raises SpeechlmError anywhere below; here it becomes one ``speechlm: error:`` line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys
from pathlib import Path
from typing import List, Optional

from speechlm.base.errors import SpeechlmError, user_message
from speechlm.base.files import disk_full_message, read_text_file
from speechlm.data.import_options import KINDS

# Modules that add verbs: each has ``register(subparsers, formatter_class)``, which adds its
# parsers and sets ``func`` on them. Keeps this file small as capabilities are added.
VERB_MODULES: List[str] = ["speechlm.cli.corpus", "speechlm.cli.lm", "speechlm.cli.tts", "speechlm.cli.use",
                           "speechlm.cli.ssl"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only where there is one (no "(default: None)"), and keeps the
    line breaks of descriptions and epilogs (the method and family lists)."""

    def _get_help_string(self, action):
        if action.default in (None, False, "", argparse.SUPPRESS) or not action.help:
            return action.help
        return super()._get_help_string(action)


def add_training_options(s: argparse.ArgumentParser, config_help: str, exp_help: str,
                         tokenizer_help: str) -> None:
    """The options every training verb shares (train, train-lm, train-tts)."""
    s.add_argument("--config", help=config_help)
    s.add_argument("--set", nargs="*", metavar="SECTION.KEY=VALUE", help="config overrides")
    s.add_argument("--exp-dir", required=True, help=exp_help)
    s.add_argument("--tokenizer", required=True, help=tokenizer_help)
    s.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")


def _floats(text: str) -> List[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def cmd_compute_fbank(args) -> None:
    from speechlm.data.features import compute_fbank

    compute_fbank(args.cuts, args.out, args.storage, num_jobs=args.num_jobs,
                  speed_perturb=_floats(args.speed_perturb),
                  allow_command_audio=args.allow_command_audio or None)


def _read_texts(text_files, cut_files) -> List[str]:
    from speechlm.data.features import load_cuts

    texts: List[str] = []
    for path in text_files or []:
        p = Path(path)
        if not p.is_file():
            raise SpeechlmError(f"text file {p} not found")
        texts.extend(read_text_file(p, "--text").splitlines())
    for path in cut_files or []:
        texts.extend(s.text for c in load_cuts(path) for s in c.supervisions)
    return texts


def cmd_train_tokenizer(args) -> None:
    from speechlm.text.tokenizer import train_sentencepiece

    if not (args.text or args.cuts):
        raise SpeechlmError("train-tokenizer: give --text FILE and/or --cuts MANIFEST")
    train_sentencepiece(_read_texts(args.text, args.cuts), args.out_dir, vocab_size=args.vocab_size,
                        model_type=args.model_type, languages=args.languages)


def cmd_prepare_lang(args) -> None:
    from speechlm.decode.graphs import prepare_lang_and_graphs

    if not (args.text or args.cuts):
        raise SpeechlmError("prepare-lang: give --text FILE and/or --cuts MANIFEST for the n-gram LM")
    if args.max_text_lines is not None and args.max_text_lines < 1:
        raise SpeechlmError(f"--max-text-lines {args.max_text_lines}: give a positive number of lines")
    texts = _read_texts(args.text, None)
    if args.max_text_lines and len(texts) > args.max_text_lines:
        import random

        keep = sorted(random.Random(0).sample(range(len(texts)), args.max_text_lines))
        logging.getLogger(__name__).info("prepare-lang: %d of the %d --text lines (a seeded sample, "
                                         "--max-text-lines) and every transcript of --cuts",
                                         len(keep), len(texts))
        texts = [texts[i] for i in keep]
    texts += _read_texts(None, args.cuts)
    prepare_lang_and_graphs(args.out_dir, args.tokenizer, texts,
                            ngram_order=args.ngram_order, oov_policy=args.oov_policy)


def family_trainer(cfg, verb: str):
    """The trainer class of ``cfg.model.kind``'s family, which ``verb`` must be the one to train."""
    from speechlm.base.registry import MODEL_FAMILIES, resolve

    family = MODEL_FAMILIES.get(cfg.model.kind, "model.kind")
    if family.train_verb != verb:
        raise SpeechlmError(f"model.kind = {family.name!r} ({family.help}) is trained with "
                            f"`speechlm {family.train_verb}`, not `speechlm {verb}`")
    return resolve(family.trainer)


def cmd_train(args) -> None:
    from speechlm.base.config import load_config

    cfg = load_config(args.config, args.set or [])
    trainer = family_trainer(cfg, "train")(cfg, args.exp_dir, args.train_cuts, args.dev_cuts,
                                           args.tokenizer)
    trainer.run(resume=args.resume)


def cmd_decode(args) -> None:
    from speechlm.base.logs import setup_logging
    from speechlm.scoring.evaluate import decode_and_score

    if (args.cuts is None) == (args.data is None):
        raise SpeechlmError("decode: give either --cuts (a test cut manifest with features) or "
                            "--data PATH --data-kind KIND (a corpus; features computed on the fly)")
    if args.data and not args.data_kind:
        raise SpeechlmError(f"--data {args.data}: say its layout with --data-kind "
                            "(kaldi-dir, folder or tsv; see `speechlm import --help`)")
    setup_logging(Path(args.exp_dir) / "log" / f"decode-{args.set_name}.log", True)
    cuts = args.cuts
    if args.data:
        from speechlm.data.eval_set import prepare_eval_set

        cache = args.data_cache or Path(args.exp_dir) / f"decode-{args.set_name}" / "data"
        cuts = prepare_eval_set(args.data_kind, args.data, cache, on_error=args.data_on_error)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    subsets = {}
    for item in args.subset:
        name, eq, path = item.partition("=")
        if not eq or not path or name in subsets:
            raise SpeechlmError(f"--subset {item}: expected NAME=CUTS (a name of its own and the cut "
                                "manifest of some of the decoded cuts), e.g. test_espeak=data/fbank/x.jsonl.gz")
        subsets[name] = path
    command = args.command or " ".join(shlex.quote(a) for a in ["speechlm"] + sys.argv[1:])
    common = dict(lang_dir=args.lang_dir, device=args.device, overrides=args.set or [],
                  lm_checkpoint=args.lm_checkpoint, avg=args.avg)
    out_dir = args.out_dir or Path(args.exp_dir) / f"decode-{args.set_name}"
    chosen = notes = None
    if args.tune or args.tune_cuts:
        from speechlm.scoring.evaluate import tune_on_dev, tune_table

        if not (args.tune and args.tune_cuts):
            raise SpeechlmError("decode: --tune KEY=V1,V2,... and --tune-cuts DEV_CUTS go together "
                                "(the values are tried on the dev cuts, the best decodes the test set)")
        if Path(args.tune_cuts).resolve() == Path(cuts).resolve():
            raise SpeechlmError(f"decode: --tune-cuts {args.tune_cuts} is the test set itself; tune "
                                "on a dev set, or the test WER is no longer a test")
        chosen, notes = tune_on_dev(args.exp_dir, args.tune_cuts, args.tune, methods, out_dir,
                                    dev_name=args.tune_set_name, tag=args.tag, **common)
        methods = methods or list(chosen)
        print(f"chosen on {args.tune_set_name} "
              f"(table: {tune_table(out_dir, args.tune_set_name, args.tag)}):")
        for m, point in chosen.items():
            print(f"  {m}: {' '.join(point)}")
    res = decode_and_score(args.exp_dir, cuts, args.set_name, methods, out_dir=out_dir,
                           results_md=args.results_md, command=command, tag=args.tag,
                           method_overrides=chosen, method_notes=notes, subsets=subsets, **common)
    for m, r in res.items():
        print(f"{args.set_name}\t{m}\tWER {r['wer']:.2f}%\tCER {r['cer']:.2f}%\tRTF {r['rtf']:.4f}")


def _methods_help() -> str:
    from speechlm.base.registry import DECODING_METHODS

    lines = []
    for m in DECODING_METHODS:
        needs = "" if m.needs == ("ctc",) else f" [needs {'+'.join(m.needs)}]"
        res = f" [uses {', '.join(m.resources)}]" if m.resources else ""
        lines.append(f"  {m.name:20} {m.help}{needs}{res}")
    return "decoding methods (--methods):\n" + "\n".join(lines)


def _families_help() -> str:
    from speechlm.base.registry import MODEL_FAMILIES

    return "model families (model.kind):\n" + "\n".join(
        f"  {f.name:10} {f.help} (trained by `speechlm {f.train_verb}`)" for f in MODEL_FAMILIES)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechlm", description=__doc__.split("\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    fmt = HelpFormatter

    s = sub.add_parser("compute-fbank", help="80-dim log-mel fbank (16 kHz), stored with Lhotse",
                       formatter_class=fmt)
    s.add_argument("--cuts", required=True, help="input cut manifest")
    s.add_argument("--out", required=True, help="output cut manifest (with features)")
    s.add_argument("--storage", required=True, help="feature storage directory")
    s.add_argument("--num-jobs", type=int, default=2)
    s.add_argument("--speed-perturb", default="", help="comma-separated factors, e.g. 0.9,1.1")
    s.add_argument("--allow-command-audio", action="store_true",
                   help="let recordings whose audio source is a shell command (\"type\": \"command\") "
                        "run it; refused by default, as a manifest is data "
                        "(SPEECHLM_ALLOW_COMMAND_AUDIO=1 allows it for every verb)")
    s.set_defaults(func=cmd_compute_fbank)

    s = sub.add_parser("train-tokenizer", help="sentencepiece model with speechlm's special ids",
                       formatter_class=fmt)
    s.add_argument("--text", nargs="*", help="plain-text files, one sentence per line")
    s.add_argument("--cuts", nargs="*", help="cut manifests whose transcripts are used")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--vocab-size", type=int, default=256)
    s.add_argument("--model-type", default="unigram", choices=["unigram", "bpe", "char", "word"])
    s.add_argument("--languages", action="store_true",
                   help="multilingual: reserve the language tokens <es> <fr> <it> <ru> (ids 5-8, "
                        "fixed in speechlm.text.symbols); training targets then start with the "
                        "supervision's language token")
    s.set_defaults(func=cmd_train_tokenizer)

    s = sub.add_parser("prepare-lang", help="lang dir, n-gram LM and HLG graph for WFST decoding",
                       formatter_class=fmt)
    s.add_argument("--tokenizer", required=True, help="sentencepiece model (its pieces are the tokens)")
    s.add_argument("--text", nargs="*", help="LM training text files, one sentence per line")
    s.add_argument("--cuts", nargs="*", help="cut manifests whose transcripts are LM text")
    s.add_argument("--out-dir", required=True, help="the lang dir (tokens.txt, words.txt, HLG.fst ...)")
    s.add_argument("--ngram-order", type=int, default=3)
    s.add_argument("--max-text-lines", type=int, default=None, metavar="N",
                   help="build the n-gram LM and lexicon from a seeded sample of N lines of --text "
                        "(every --cuts transcript still counts): an unpruned 3-gram of millions "
                        "of words makes an HLG too big to build or search on a laptop")
    s.add_argument("--oov-policy", default="error", choices=["error", "unk"],
                   help="words outside words.txt at scoring time: error, or map to <unk>")
    s.set_defaults(func=cmd_prepare_lang)

    s = sub.add_parser("train", help="train an ASR model of any family on cut manifests (torchrun for DDP)",
                       formatter_class=HelpFormatter, epilog=_families_help())
    add_training_options(s, "YAML config (defaults when omitted)", "checkpoints, resolved config, logs",
                         "sentencepiece model from train-tokenizer")
    s.add_argument("--train-cuts", required=True, help="training cut manifest with features")
    s.add_argument("--dev-cuts", help="dev cut manifest with features (dev loss per epoch)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("decode", help="decode + score a test set with several methods",
                       formatter_class=HelpFormatter, epilog=_methods_help())
    s.add_argument("--exp-dir", required=True, help="training output (config, tokenizer, final.pt)")
    s.add_argument("--cuts", help="test cut manifest with features (or --data)")
    s.add_argument("--data", metavar="PATH",
                   help="a corpus to score on instead of --cuts: imported (all of it is the test "
                        "set unless it gives its own split) and fbank computed into --data-cache")
    s.add_argument("--data-kind", choices=KINDS, help="layout of --data (as `speechlm import`)")
    s.add_argument("--data-cache", help="where --data's manifests and features go; reused while "
                                        "the corpus is unchanged (default EXP_DIR/decode-SET/data)")
    s.add_argument("--data-on-error", default="raise", choices=["raise", "skip"],
                   help="bad utterances in --data: stop listing them, or leave them out")
    s.add_argument("--set-name", default="test", help="name used in report file names")
    s.add_argument("--subset", nargs="*", default=[], metavar="NAME=CUTS",
                   help="also score these subsets of the set (cut manifests of some of its cuts, "
                        "e.g. one voice's) from this decode, each in decode-NAME/ beside the set's "
                        "reports, as if decoded on their own")
    s.add_argument("--methods", default="",
                   help="comma-separated decoding methods (listed below); default: decode.methods "
                        "of the exp dir's config")
    s.add_argument("--set", nargs="*", metavar="decode.KEY=VALUE",
                   help="decoding overrides, e.g. decode.beam_size=8 decode.lm_weight=0.5")
    s.add_argument("--tune", nargs="*", metavar="decode.KEY=V1,V2,...",
                   help="try these values on --tune-cuts (several keys: every combination) and "
                        "decode the test set with each method's best, e.g. "
                        "decode.blank_penalty=0,1,2,3; the table goes to OUT_DIR/tune-DEV[-TAG].tsv and "
                        "RESULTS.md rows say what was chosen")
    s.add_argument("--tune-cuts", metavar="DEV_CUTS", help="dev cut manifest with features for --tune "
                                                           "(never the test set)")
    s.add_argument("--tune-set-name", default="dev", help="name of --tune-cuts in report names")
    s.add_argument("--lm-checkpoint", help="text LM for lm-shallow-fusion (e.g. exp/lm/final.pt)")
    s.add_argument("--avg", type=int, default=0, metavar="K",
                   help="decode the average of the last K epoch checkpoints (epoch-*.pt) instead "
                        "of final.pt (which averages train.average_last); reports get tag avgK")
    s.add_argument("--lang-dir", help="lang dir with HLG.fst (for hlg-1best, hlg-nbest-lm)")
    s.add_argument("--out-dir", help="report dir; default EXP_DIR/decode-SET")
    s.add_argument("--tag", default="", help="extra tag in report file names")
    s.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N")
    s.add_argument("--results-md", help="add one row per method to this RESULTS.md, in the "
                                        "section of --exp-dir")
    s.add_argument("--command", help="command recorded in RESULTS.md; default: this one")
    s.set_defaults(func=cmd_decode)

    for module in VERB_MODULES:
        importlib.import_module(module).register(sub, fmt)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    from speechlm.base.registry import load_plugins

    try:
        load_plugins()  # modules named in $SPEECHLM_PLUGINS register families, methods, corpora
    except SpeechlmError as e:
        print(f"speechlm: error: {e}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    try:
        args.func(args)
    except SpeechlmError as e:
        print(f"speechlm: error: {user_message(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        outputs = [getattr(args, n, None) for n in ("out", "out_dir", "exp_dir", "output", "storage")]
        message = disk_full_message(e, next((Path(o) for o in outputs if o), None))
        if message is None:
            raise
        print(f"speechlm: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("speechlm: interrupted", file=sys.stderr)
        return 130
    return 0


