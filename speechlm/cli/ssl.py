"""``speechlm train-ssl``: self-supervised pretraining of the speech encoder on audio alone
(recipe stage 3), registered through ``cli.VERB_MODULES``. The family is ``model.kind`` when it
names one trained by this verb, else ``ssl-bestrq``; fine-tune from its ``final.pt`` with
``encoder.init`` in ``speechlm train``.
"""

from __future__ import annotations


def encoder_overrides(path) -> list:
    """``encoder.KEY=VALUE`` for the architecture keys (and ``utterance_cmn``) of config ``path``'s
    encoder section (the ASR config that will fine-tune from this pretraining), and its
    ``data.speaker_cmvn``, so the two cannot drift apart."""
    if not path:
        return []
    from speechlm.base.config import load_config
    from speechlm.models.encoder import ENCODER_ARCH_KEYS

    cfg = load_config(path)
    # the architecture, and the input normalisation the encoder will be fine-tuned with
    return ([f"encoder.{k}={getattr(cfg.encoder, k)}" for k in ENCODER_ARCH_KEYS + ("utterance_cmn",)]
            + [f"data.speaker_cmvn={cfg.data.speaker_cmvn}"])


def cmd_train_ssl(args) -> None:
    from speechlm.base.config import load_config
    from speechlm.base.registry import MODEL_FAMILIES
    from speechlm.cli import family_trainer

    cfg = load_config(args.config, encoder_overrides(args.encoder_config) + (args.set or []))
    if MODEL_FAMILIES.get(cfg.model.kind, "model.kind").train_verb != "train-ssl":
        cfg.model.kind = "ssl-bestrq"  # e.g. the ASR config, for its encoder section
    trainer = family_trainer(cfg, "train-ssl")(cfg, args.exp_dir, args.train_cuts, args.dev_cuts)
    trainer.run(resume=args.resume)


def register(sub, fmt) -> None:
    s = sub.add_parser("train-ssl", formatter_class=fmt,
                       help="self-supervised pretraining of the speech encoder on unlabeled audio "
                            "(stage 3; BEST-RQ)")
    s.add_argument("--config", help="YAML config; its encoder/ssl/data/optim/train sections are used "
                                    "(the encoder section must be the ASR config's to fine-tune from it)")
    s.add_argument("--encoder-config", metavar="ASR_CONFIG",
                   help="take the encoder architecture from this config (the ASR config that will "
                        "fine-tune from the result); --set encoder.* still overrides it")
    s.add_argument("--set", nargs="*", metavar="SECTION.KEY=VALUE", help="config overrides")
    s.add_argument("--exp-dir", required=True,
                   help="checkpoints, resolved config, masked_accuracy.txt, cost.json")
    s.add_argument("--train-cuts", nargs="+", required=True,
                   help="cut manifest(s) with features; transcripts, if any, are never read")
    s.add_argument("--dev-cuts", help="validation cuts (default: ssl.valid_cuts held out of the "
                                      "training cuts); never a test set you report on")
    s.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    s.set_defaults(func=cmd_train_ssl)
