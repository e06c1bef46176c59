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

from speechlm.errors import SpeechlmError

CORPORA = ("synth_en", "fsdd", "yesno")

# Modules that add verbs: each has ``register(subparsers, formatter_class)``, which adds its
# parsers and sets ``func`` on them. Keeps this file small as capabilities are added.
EXTRA_VERB_MODULES: List[str] = ["speechlm.cli_lm", "speechlm.cli_recipe", "speechlm.cli_tts"]


def _floats(text: str) -> List[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def cmd_prepare(args) -> None:
    if args.corpus == "synth_en":
        from speechlm.data.synth_en import prepare_synth_en

        info = prepare_synth_en(args.out_dir, num_text=args.num_text, num_train=args.num_train,
                                num_dev=args.num_dev, num_test=args.num_test, seed=args.seed,
                                num_jobs=args.num_jobs)
        counts = ", ".join(f"{k[4:]}={v}" for k, v in info.items() if k.startswith("num_"))
        print(f"synth_en: {counts}; manifests in {Path(args.out_dir) / 'manifests'}")
        return
    corpus_dir = args.corpus_dir
    if args.corpus == "fsdd":
        from speechlm.data.fsdd import download_fsdd, prepare_fsdd

        if corpus_dir is None:
            corpus_dir = download_fsdd(Path(args.out_dir).parent / "download")
        prepare_fsdd(corpus_dir, args.out_dir, split=args.split, heldout_speaker=args.heldout_speaker,
                     on_error=args.on_error)
    elif args.corpus == "yesno":
        from speechlm.data.yesno import download_yesno, prepare_yesno

        if corpus_dir is None:
            corpus_dir = download_yesno(Path(args.out_dir).parent / "download")
        prepare_yesno(corpus_dir, args.out_dir, on_error=args.on_error)


def cmd_compute_fbank(args) -> None:
    from speechlm.data.features import compute_fbank

    compute_fbank(args.cuts, args.out, args.storage, num_jobs=args.num_jobs,
                  speed_perturb=_floats(args.speed_perturb))


def _read_texts(args) -> List[str]:
    from speechlm.data.features import load_cuts

    texts: List[str] = []
    for path in args.text or []:
        p = Path(path)
        if not p.is_file():
            raise SpeechlmError(f"text file {p} not found")
        texts.extend(p.read_text(encoding="utf-8").splitlines())
    for path in args.cuts or []:
        texts.extend(s.text for c in load_cuts(path) for s in c.supervisions)
    return texts


def cmd_train_tokenizer(args) -> None:
    from speechlm.text.tokenizer import train_sentencepiece

    if not (args.text or args.cuts):
        raise SpeechlmError("train-tokenizer: give --text FILE and/or --cuts MANIFEST")
    train_sentencepiece(_read_texts(args), args.out_dir, vocab_size=args.vocab_size,
                        model_type=args.model_type)


def cmd_prepare_lang(args) -> None:
    from speechlm.decode.graphs import prepare_lang_and_graphs

    if not (args.text or args.cuts):
        raise SpeechlmError("prepare-lang: give --text FILE and/or --cuts MANIFEST for the n-gram LM")
    prepare_lang_and_graphs(args.out_dir, args.tokenizer, _read_texts(args),
                            ngram_order=args.ngram_order, oov_policy=args.oov_policy)


def cmd_train(args) -> None:
    from speechlm.config import load_config
    from speechlm.train.trainer import AsrTrainer

    cfg = load_config(args.config, args.set or [])
    if cfg.model.kind == "speechlm":  # Conformer -> adapter -> text LM (speechlm/train/tasks.py)
        from speechlm.train.tasks import SpeechLMTrainer as AsrTrainer
    elif cfg.model.kind != "ctc":
        raise SpeechlmError(f"model.kind = {cfg.model.kind!r}: `train` takes ctc or speechlm "
                            "(text LMs: speechlm train-lm)")
    trainer = AsrTrainer(cfg, args.exp_dir, args.train_cuts, args.dev_cuts, args.tokenizer)
    trainer.run(resume=args.resume)


def cmd_decode(args) -> None:
    from speechlm.decode.recognize import recognize
    from speechlm.train.trainer import setup_logging

    setup_logging(Path(args.exp_dir) / "log" / f"decode-{args.set_name}.log", True)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    command = args.command or " ".join(shlex.quote(a) for a in ["speechlm"] + sys.argv[1:])
    res = recognize(args.exp_dir, args.cuts, args.set_name, methods, out_dir=args.out_dir,
                    lang_dir=args.lang_dir, device=args.device, results_md=args.results_md,
                    command=command, tag=args.tag, overrides=args.set or [],
                    lm_checkpoint=args.lm_checkpoint, avg=args.avg)
    for m, r in res.items():
        print(f"{args.set_name}\t{m}\tWER {r['wer']:.2f}%\tRTF {r['rtf']:.4f}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechlm", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    s = sub.add_parser("prepare", help="corpus -> Lhotse manifests", formatter_class=fmt)
    s.add_argument("corpus", choices=CORPORA)
    s.add_argument("--out-dir", required=True, help="where the manifests are written")
    s.add_argument("--corpus-dir", help="local copy of the corpus (downloaded when omitted)")
    s.add_argument("--split", default="official", choices=["official", "speaker"], help="fsdd: split kind")
    s.add_argument("--heldout-speaker", help="fsdd --split speaker: the test speaker")
    s.add_argument("--on-error", default="raise", choices=["raise", "skip"],
                   help="bad audio: stop with an error, or skip it with a counted warning")
    s.add_argument("--num-text", type=int, default=100_000, help="synth_en: LM text sentences")
    s.add_argument("--num-train", type=int, default=3000, help="synth_en: paired train utterances")
    s.add_argument("--num-dev", type=int, default=200, help="synth_en: dev utterances")
    s.add_argument("--num-test", type=int, default=300, help="synth_en: test utterances")
    s.add_argument("--seed", type=int, default=0, help="synth_en: seed")
    s.add_argument("--num-jobs", type=int, default=2, help="parallel processes")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("compute-fbank", help="80-dim log-mel fbank (16 kHz), stored with Lhotse",
                       formatter_class=fmt)
    s.add_argument("--cuts", required=True, help="input cut manifest")
    s.add_argument("--out", required=True, help="output cut manifest (with features)")
    s.add_argument("--storage", required=True, help="feature storage directory")
    s.add_argument("--num-jobs", type=int, default=2)
    s.add_argument("--speed-perturb", default="", help="comma-separated factors, e.g. 0.9,1.1")
    s.set_defaults(func=cmd_compute_fbank)

    s = sub.add_parser("train-tokenizer", help="sentencepiece model with speechlm's special ids",
                       formatter_class=fmt)
    s.add_argument("--text", nargs="*", help="plain-text files, one sentence per line")
    s.add_argument("--cuts", nargs="*", help="cut manifests whose transcripts are used")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--vocab-size", type=int, default=256)
    s.add_argument("--model-type", default="unigram", choices=["unigram", "bpe", "char", "word"])
    s.set_defaults(func=cmd_train_tokenizer)

    s = sub.add_parser("prepare-lang", help="lang dir, n-gram LM and HLG graph for WFST decoding",
                       formatter_class=fmt)
    s.add_argument("--tokenizer", required=True, help="sentencepiece model (its pieces are the tokens)")
    s.add_argument("--text", nargs="*", help="LM training text files, one sentence per line")
    s.add_argument("--cuts", nargs="*", help="cut manifests whose transcripts are LM text")
    s.add_argument("--out-dir", required=True, help="the lang dir (tokens.txt, words.txt, HLG.fst ...)")
    s.add_argument("--ngram-order", type=int, default=3)
    s.add_argument("--oov-policy", default="error", choices=["error", "unk"],
                   help="words outside words.txt at scoring time: error, or map to <unk>")
    s.set_defaults(func=cmd_prepare_lang)

    s = sub.add_parser("train", help="train a CTC ASR model (torchrun for DDP)", formatter_class=fmt)
    s.add_argument("--config", help="YAML config (defaults when omitted)")
    s.add_argument("--set", nargs="*", metavar="SECTION.KEY=VALUE", help="config overrides")
    s.add_argument("--exp-dir", required=True, help="checkpoints, resolved config, logs")
    s.add_argument("--train-cuts", required=True)
    s.add_argument("--dev-cuts")
    s.add_argument("--tokenizer", required=True, help="sentencepiece model from train-tokenizer")
    s.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("decode", help="decode + score a test set with several methods",
                       formatter_class=fmt)
    s.add_argument("--exp-dir", required=True, help="training output (config, tokenizer, final.pt)")
    s.add_argument("--cuts", required=True, help="test cut manifest with features")
    s.add_argument("--set-name", default="test", help="name used in report file names")
    s.add_argument("--methods", default="",
                   help="comma-separated: ctc-greedy,ctc-prefix-beam,attention-beam,"
                        "attention-rescoring,lm-shallow-fusion,attention-lm-fusion,hlg-1best,hlg-nbest-lm "
                        "(default: decode.methods of the exp dir's config)")
    s.add_argument("--set", nargs="*", metavar="decode.KEY=VALUE",
                   help="decoding overrides, e.g. decode.beam_size=8 decode.lm_weight=0.5")
    s.add_argument("--lm-checkpoint", help="text LM for lm-shallow-fusion (e.g. exp/lm/final.pt)")
    s.add_argument("--avg", type=int, default=0, metavar="K",
                   help="decode the average of the last K epoch checkpoints (epoch-*.pt) instead "
                        "of final.pt (which averages train.average_last); reports get tag avgK")
    s.add_argument("--lang-dir", help="lang dir with HLG.fst (for hlg-1best, hlg-nbest-lm)")
    s.add_argument("--out-dir", help="report dir (default: EXP_DIR/decode-SET)")
    s.add_argument("--tag", default="", help="extra tag in report file names")
    s.add_argument("--device", default="auto")
    s.add_argument("--results-md", help="append one row per method to this RESULTS.md")
    s.add_argument("--command", help="command recorded in RESULTS.md (default: this one)")
    s.set_defaults(func=cmd_decode)

    for module in EXTRA_VERB_MODULES:
        importlib.import_module(module).register(sub, fmt)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    try:
        args.func(args)
    except SpeechlmError as e:
        print(f"speechlm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("speechlm: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
