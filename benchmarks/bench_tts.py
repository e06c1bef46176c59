"""TTS synthesis real-time factor: text -> mel (model) -> waveform (Griffin-Lim), 40 sentences.

Uses the synth_en TTS architecture (egs/synth_en/conf/tts.yaml, LM part as conf/lm.yaml) with
random weights and every token held for 6 mel frames (the mean aligned token duration of the
one-voice synth_en TTS data): the cost depends on the frame count, not on the weights. With
``--model-dir`` a trained model is timed instead, with its own predicted durations.
"""

import argparse
import logging
import random
import time

import torch

from common import REPO, emit
from speechlm.base.config import load_config
from speechlm.data.tts_data import pad_inputs, tts_input
from speechlm.models.tts import Synthesizer, TtsModel, mel_spec
from speechlm.models.vocoder import GriffinLim
from speechlm.corpora.synth_en_grammar import generate_distinct_sentences

FRAMES_PER_TOKEN = 6
VOCAB = 64


def random_model():
    cfg = load_config(REPO / "egs/synth_en/conf/tts.yaml")
    lm = load_config(REPO / "egs/synth_en/conf/lm.yaml").lm
    cfg.lm.d_model, cfg.lm.num_layers, cfg.lm.num_heads = lm.d_model, lm.num_layers, lm.num_heads
    return TtsModel(cfg.lm, cfg.tts, VOCAB).eval(), cfg


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", help="a trained TTS exp dir (default: random weights)")
    args = ap.parse_args()
    logging.disable(logging.INFO)
    texts = generate_distinct_sentences(40, seed=123)
    if args.model_dir:
        synth = Synthesizer(args.model_dir)
        synth(texts[:2])  # warm-up
        t0 = time.perf_counter()
        waves = synth(texts)
        seconds, kind = time.perf_counter() - t0, "trained"
        hop, iters = synth.spec.hop_length, synth.cfg.tts.griffin_lim_iters
    else:
        model, cfg = random_model()
        vocoder = GriffinLim(mel_spec(cfg.tts), iters=cfg.tts.griffin_lim_iters)
        rng = random.Random(0)
        # ~1 token per 1.6 characters, as the 64-piece tokenizer gives on this text
        inputs = [tts_input([rng.randrange(5, VOCAB) for _ in range(max(1, len(t) * 5 // 8))])
                  for t in texts]
        inputs.sort(key=len)  # batches of similar length, as Synthesizer.vocode makes them

        def run(batch):
            mels = []
            for start in range(0, len(batch), 16):
                tok, lens = pad_inputs(batch[start:start + 16], "cpu")
                durs = torch.full_like(tok, FRAMES_PER_TOKEN)
                mel, flen = model.decode(model.encode(tok, lens), durs, lens)
                wave = vocoder(mel * model.mel_std + model.mel_mean)
                mels.extend(wave[i, : (int(flen[i]) - 1) * vocoder.spec.hop_length]
                            for i in range(len(flen)))
            return mels

        run(inputs[:2])  # warm-up
        t0 = time.perf_counter()
        waves = run(inputs)
        seconds, kind = time.perf_counter() - t0, "random-weights"
        hop, iters = cfg.tts.hop_length, cfg.tts.griffin_lim_iters
    audio = sum(w.numel() for w in waves) / 16000
    emit({"benchmark": "tts_synthesis_rtf", "rtf": round(seconds / audio, 5),
          "audio_seconds": round(audio, 1), "wall_seconds": round(seconds, 3),
          "sentences": len(texts), "model": kind, "hop_length": hop, "griffin_lim_iters": iters})


if __name__ == "__main__":
    main()
