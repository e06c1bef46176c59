"""TTS verbs, registered through ``cli.VERB_MODULES``:

- ``speechlm prepare-tts-data``: one espeak-ng voice reads training sentences and the test
  sentences (references); Lhotse manifests.
- ``speechlm tts-features``: log-mel frames + token durations (CTC forced alignment by an ASR model).
- ``speechlm train-tts``: fine-tune the TTS model (text encoder from the stage-3 LM).
- ``speechlm synthesize``: text -> WAV with a trained model dir (one sentence or a text file).
- ``speechlm eval-tts``: MCD-DTW and round-trip ASR WER beside the references' WER; mel figures.
"""

from __future__ import annotations

from pathlib import Path

from speechlm.base.errors import SpeechlmError
from speechlm.base.files import read_text_file


def cmd_prepare_tts_data(args) -> None:
    from speechlm.data.tts_data import prepare_tts_voice

    counts = prepare_tts_voice(args.out_dir, args.train_text, args.test_text, voice=args.voice,
                               num_train=args.num_train, num_test=args.num_test, seed=args.seed,
                               num_jobs=args.num_jobs)
    print(f"TTS data ({args.voice}): train={counts['num_train']}, test={counts['num_test']}; "
          f"manifests in {Path(args.out_dir) / 'manifests'}")


def cmd_tts_features(args) -> None:
    from speechlm.base.config import load_config
    from speechlm.decode.tts_features import compute_tts_features

    cfg = load_config(args.config, args.set or [])
    n = compute_tts_features(args.cuts, args.asr_dir, args.out, hop_length=cfg.tts.hop_length,
                             n_fft=cfg.tts.n_fft)
    print(f"{args.out}: mel frames and CTC-aligned durations of {n} utterances "
          f"(aligner: {args.asr_dir})")


def cmd_train_tts(args) -> None:
    from speechlm.base.config import load_config
    from speechlm.cli import family_trainer

    cfg = load_config(args.config, args.set or [])
    cfg.model.kind = "tts"
    family_trainer(cfg, "train-tts")(cfg, args.exp_dir, args.features, args.tokenizer).run(resume=args.resume)


def cmd_synthesize(args) -> None:
    from speechlm.models.tts import Synthesizer
    from speechlm.models.vocoder import write_wav

    if (args.text is None) == (args.text_file is None):
        raise SpeechlmError("synthesize: give either TEXT (with -o out.wav) or --text-file "
                            "(with --out-dir)")
    if args.text is not None:
        if not args.output:
            raise SpeechlmError("synthesize: TEXT needs -o/--output out.wav")
        texts, items, outs = [args.text], ["the command-line text"], [Path(args.output)]
        if outs[0].is_dir():
            raise SpeechlmError(f"-o/--output {outs[0]} is a folder: give the WAV file to write, "
                                f"e.g. -o {outs[0] / 'out.wav'} (or --text-file with --out-dir)")
    else:
        path = Path(args.text_file)
        if not path.is_file():
            raise SpeechlmError(f"--text-file {path} not found")
        if not args.out_dir:
            raise SpeechlmError("synthesize: --text-file needs --out-dir")
        if Path(args.out_dir).exists() and not Path(args.out_dir).is_dir():
            raise SpeechlmError(f"--out-dir {args.out_dir} is a file: give a folder for the WAVs")
        lines = read_text_file(path, "--text-file").splitlines()
        numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
        if not numbered:
            raise SpeechlmError(f"--text-file {path} has no non-empty lines")
        texts = [line for _, line in numbered]
        items = [f"{path} line {n}" for n, _ in numbered]
        outs = [Path(args.out_dir) / f"{path.stem}-{n:04d}.wav" for n, _ in numbered]
    synth = Synthesizer(args.model_dir)
    waves = synth(texts, items)  # every text is checked before any audio is written
    for out, wave in zip(outs, waves):
        write_wav(out, wave, synth.sample_rate)
    where = outs[0] if len(outs) == 1 else f"{len(outs)} files in {args.out_dir}"
    seconds = sum(w.numel() for w in waves) / synth.sample_rate
    print(f"synthesised {seconds:.1f} s of audio -> {where}")


def cmd_eval_tts(args) -> None:
    from speechlm.scoring.tts_eval import evaluate_tts

    summary = evaluate_tts(args.model_dir, args.ref_cuts, args.asr_dir, args.out_dir,
                           lang_dir=args.lang_dir, num_plots=args.num_plots,
                           results_md=args.results_md, command=args.command or "",
                           max_utts=args.max_utts)
    print((Path(args.out_dir) / "tts-summary.txt").read_text(), end="")
    if summary["figure"]:
        print(f"figure: {summary['figure']}")


def register(sub, fmt) -> None:
    from speechlm.cli import add_training_options

    s = sub.add_parser("prepare-tts-data", formatter_class=fmt,
                       help="one espeak-ng voice reads training and test sentences (TTS data)")
    s.add_argument("--out-dir", required=True, help="wav/ and manifests/ go here")
    s.add_argument("--train-text", required=True,
                   help="training sentences: a text file (one a line, e.g. the LM text) or cuts")
    s.add_argument("--test-text", required=True,
                   help="evaluation sentences: the recipe's test cuts (or a text file)")
    s.add_argument("--voice", default="en-us+m8:175:43", help="espeak VOICE[:RATE[:PITCH]]")
    s.add_argument("--num-train", type=int, default=1200)
    s.add_argument("--num-test", type=int, default=100)
    s.add_argument("--seed", type=int, default=0, help="which training sentences are drawn")
    s.add_argument("--num-jobs", type=int, default=2)
    s.set_defaults(func=cmd_prepare_tts_data)

    s = sub.add_parser("tts-features", formatter_class=fmt,
                       help="TTS mel frames + durations from a CTC forced alignment")
    s.add_argument("--cuts", required=True, help="cut manifest with audio (prepare-tts-data)")
    s.add_argument("--asr-dir", required=True, help="trained CTC ASR exp dir (the aligner)")
    s.add_argument("--out", required=True, help="output .pt file")
    s.add_argument("--config", help="YAML config; tts.hop_length / tts.n_fft are used")
    s.add_argument("--set", nargs="*", metavar="SECTION.KEY=VALUE", help="config overrides")
    s.set_defaults(func=cmd_tts_features)

    s = sub.add_parser("train-tts", formatter_class=fmt,
                       help="fine-tune TTS (text encoder from the stage-3 LM when tts.lm_init)")
    add_training_options(s, "YAML config; its tts/lm/optim/train sections are used",
                         "checkpoints, resolved config, logs", "sentencepiece model (the LM's and ASR's)")
    s.add_argument("--features", required=True, help="training features from tts-features")
    s.set_defaults(func=cmd_train_tts)

    s = sub.add_parser("synthesize", formatter_class=fmt,
                       help="text -> WAV with a trained TTS model dir (Griffin-Lim vocoder)")
    s.add_argument("text", nargs="?", help="the sentence to speak")
    s.add_argument("--model-dir", required=True, help="exp dir written by train-tts")
    s.add_argument("-o", "--output", help="output WAV for TEXT")
    s.add_argument("--text-file", help="batch mode: one sentence a line")
    s.add_argument("--out-dir", help="batch mode: WAVs named <text-file stem>-<line>.wav")
    s.set_defaults(func=cmd_synthesize)

    s = sub.add_parser("eval-tts", formatter_class=fmt,
                       help="MCD-DTW and round-trip ASR WER of synthesised test sentences")
    s.add_argument("--model-dir", required=True, help="exp dir written by train-tts")
    s.add_argument("--ref-cuts", required=True, help="reference audio + texts (prepare-tts-data test)")
    s.add_argument("--asr-dir", required=True, help="ASR exp dir that decodes both sides")
    s.add_argument("--out-dir", required=True, help="wav/, asr-*/ reports, mels.png, tts-summary.*")
    s.add_argument("--lang-dir", help="lang dir; hlg-1best is added when it has HLG.fst")
    s.add_argument("--num-plots", type=int, default=3, help="utterances in mels.png")
    s.add_argument("--max-utts", type=int, default=0, help="evaluate the first N only (0: all)")
    s.add_argument("--results-md", help="append a summary row to this RESULTS.md")
    s.add_argument("--command", help="the command to record in RESULTS.md")
    s.set_defaults(func=cmd_eval_tts)
