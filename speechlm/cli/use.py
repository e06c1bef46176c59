"""Verbs that use a trained model, registered through ``cli.VERB_MODULES``:

- ``speechlm transcribe``: audio files, folders or lists -> one line per file (text, JSON with
  word times, or CTM), any decoding method the model supports, torch or ONNX backend.
- ``speechlm export``: a CTC-capable model dir -> ONNX or TorchScript (CMVN, encoder and CTC head
  in the graph).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from speechlm.base.errors import SpeechlmError

FORMATS = ("text", "json", "ctm")


def cmd_transcribe(args) -> None:
    from speechlm.api import Recognizer
    from speechlm.data.audio_io import expand_inputs
    from speechlm.data.vad import VadConfig

    files = expand_inputs(args.paths)
    vad = VadConfig(max_segment=args.max_segment, min_pause=args.min_pause, pad=args.pad)
    overrides = list(args.set or [])
    if args.streaming:
        overrides.append(f"decode.streaming_chunk={args.chunk_size}")
    rec = Recognizer.from_dir(args.model_dir, method=args.method, backend=args.backend,
                              device=args.device, lang_dir=args.lang_dir,
                              lm_checkpoint=args.lm_checkpoint, avg=args.avg,
                              overrides=overrides, vad=vad)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    t0, audio = time.perf_counter(), 0.0
    try:
        for path, t in zip(files, rec.transcribe_many(files, timestamps=args.format != "text",
                                                      one_speaker=args.one_speaker)):
            audio += t.duration
            if args.format == "text":
                print(f"{path}\t{t.text}", file=out)
            elif args.format == "json":
                print(json.dumps(t.to_dict(), ensure_ascii=False), file=out)
            else:
                for line in t.ctm_lines(Path(path).stem.replace(" ", "_")):
                    print(line, file=out)
            out.flush()
    finally:
        if args.output:
            out.close()
    seconds = time.perf_counter() - t0
    print(f"transcribed {len(files)} file(s), {audio:.1f} s of audio in {seconds:.1f} s "
          f"(RTF {seconds / max(audio, 1e-9):.4f}; {args.method}, {args.backend})", file=sys.stderr)


def cmd_export(args) -> None:
    if args.format == "dir":
        from speechlm.api import bundle_model_dir

        if not args.out:
            raise SpeechlmError("export --format dir needs --out DIR (a new folder)")
        copied = bundle_model_dir(args.model_dir, args.out, args.lang_dir, args.lm_checkpoint)
        print(f"wrote {args.out}: {', '.join(copied)}; it decodes with every method it holds the "
              "files for, wherever it is copied")
        return
    if args.format == "torchscript":
        from speechlm.export.torchscript import export_torchscript

        out = export_torchscript(args.model_dir, args.out, avg=args.avg)
        use = "torch.jit.load(path)(x, x_lens) -> (log_probs, log_probs_len)"
    else:
        from speechlm.export.onnx import export_onnx

        out = export_onnx(args.model_dir, args.out, avg=args.avg, opset=args.opset)
        use = f"speechlm transcribe --model-dir {args.model_dir} --backend onnx FILE..."
    size = out.stat().st_size / 2**20
    print(f"wrote {out} ({size:.1f} MB) and {out.parent / 'tokens.txt'}; use it with `{use}`")


def register(sub, fmt) -> None:
    from speechlm.cli import _methods_help
    from speechlm.data.vad import VadConfig
    from speechlm.export import BACKENDS

    s = sub.add_parser("transcribe", formatter_class=fmt, epilog=_methods_help(),
                       help="audio files -> text with a trained ASR model dir (text, JSON or CTM)")
    s.add_argument("paths", nargs="+", metavar="PATH",
                   help="audio files (WAV/FLAC/OGG/MP3, any rate and channels), folders of them, "
                        "or text files listing them")
    s.add_argument("--model-dir", required=True, help="exp dir written by training")
    s.add_argument("--method", default="ctc-greedy",
                   help="decoding method (listed below; --backend onnx: the CTC-only ones)")
    s.add_argument("--backend", default="torch", choices=BACKENDS,
                   help="onnx: the model dir's model.onnx from `speechlm export`")
    s.add_argument("--format", default="text", choices=FORMATS,
                   help="text: '<file>\\t<words>'; json: one object a file with word times; "
                        "ctm: one line a word")
    s.add_argument("-o", "--output", help="write here instead of stdout")
    s.add_argument("--lang-dir", help="lang dir with HLG.fst for hlg-* (default: found from the model dir)")
    s.add_argument("--lm-checkpoint", help="text LM for the fusion methods (default: found from "
                                           "the model dir or its config)")
    s.add_argument("--set", nargs="*", metavar="decode.KEY=VALUE", help="decoding overrides")
    s.add_argument("--avg", type=int, default=0, metavar="K",
                   help="use the average of the last K epoch checkpoints instead of final.pt")
    s.add_argument("--max-segment", type=float, default=VadConfig.max_segment,
                   help="seconds; longer recordings are split on pauses into pieces no longer")
    s.add_argument("--min-pause", type=float, default=VadConfig.min_pause, help="seconds of silence that may split")
    s.add_argument("--pad", type=float, default=VadConfig.pad,
                   help="seconds of the pause kept around each piece; a model trained on tightly "
                        "trimmed clips (FSDD) wants little, e.g. 0.02")
    s.add_argument("--streaming", action="store_true",
                   help="run the encoder chunk by chunk, as live audio would arrive (a model trained "
                        "with encoder.chunk_conv or encoder.causal; CTC methods)")
    s.add_argument("--chunk-size", type=int, default=16, metavar="N",
                   help="--streaming: encoder frames a chunk (40 ms each; 16 = 640 ms)")
    s.add_argument("--one-speaker", action="store_true",
                   help="the recordings are all one speaker's: a model trained with "
                        "data.speaker_cmvn normalises them with their pooled statistics instead of "
                        "each recording's own (short recordings need it); no effect on other models")
    s.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    s.set_defaults(func=cmd_transcribe)

    s = sub.add_parser("export", formatter_class=fmt,
                       help="a CTC-capable model dir -> ONNX or TorchScript (CMVN + encoder + CTC head)")
    s.add_argument("--model-dir", required=True, help="exp dir written by training")
    s.add_argument("--format", default="onnx", choices=["onnx", "torchscript", "dir"],
                   help="dir: a self-contained copy of the model dir (with lang/ and lm.pt for "
                        "hlg-* and LM fusion) for speechlm transcribe anywhere")
    s.add_argument("--out", help="output file; default MODEL_DIR/model.onnx (where transcribe "
                                 "--backend onnx looks) or MODEL_DIR/model.torchscript.pt; "
                                 "--format dir: the new folder")
    s.add_argument("--lang-dir", help="--format dir: lang dir to include (default: found from the model dir)")
    s.add_argument("--lm-checkpoint", help="--format dir: text LM to include (default: found "
                                           "from the model dir or its config)")
    s.add_argument("--avg", type=int, default=0, metavar="K",
                   help="export the average of the last K epoch checkpoints instead of final.pt")
    s.add_argument("--opset", type=int, default=17, help="ONNX opset")
    s.set_defaults(func=cmd_export)
