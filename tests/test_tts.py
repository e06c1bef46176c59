"""TTS: mel analysis + Griffin-Lim, CTC forced alignment, MCD, the model, and the CLI verbs.

The session fixture builds a real (tiny) pipeline: espeak-ng reads 24 digit sentences in one
voice, a tiny CTC ASR trained on them aligns them, a tiny TTS model trains on the result.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import DIGITS, tiny_overrides
from test_cli import assert_clean_error, speechlm

VOICE = "en-us+m3:200:50"


def _espeak(text: str) -> torch.Tensor:
    from speechlm.synth.espeak import get_synth

    audio, sr = get_synth().synthesize(text, "en-us+m3", 175, 50)
    assert sr == 16000
    return torch.from_numpy(audio)


@pytest.fixture(scope="session")
def tiny_tts(tmp_path_factory):
    from speechlm.base.config import load_config
    from speechlm.data.features import compute_fbank
    from speechlm.data.tts_data import prepare_tts_voice
    from speechlm.decode.tts_features import compute_tts_features
    from speechlm.text.tokenizer import train_sentencepiece
    from speechlm.train.ctc import CtcTrainer
    from speechlm.train.tts import TtsTrainer

    root = tmp_path_factory.mktemp("tiny_tts")
    rng = random.Random(0)
    sents = sorted({" ".join(rng.choice(DIGITS) for _ in range(3)) for _ in range(60)})
    (root / "train.txt").write_text("\n".join(sents[4:]) + "\n")
    (root / "test.txt").write_text("\n".join(sents[:4]) + "\n")
    prepare_tts_voice(root / "data", root / "train.txt", root / "test.txt", voice=VOICE,
                      num_train=24, num_test=4, num_jobs=1)
    man = root / "data" / "manifests"
    tokenizer = train_sentencepiece(DIGITS * 5, root / "lang", vocab_size=30)
    compute_fbank(man / "tts_cuts_train.jsonl.gz", root / "fbank_train.jsonl.gz",
                  root / "feats_train", num_jobs=1)
    asr_cfg = load_config(None, tiny_overrides(epochs=1) + ["train.average_last=1"])
    CtcTrainer(asr_cfg, root / "asr", root / "fbank_train.jsonl.gz", None, tokenizer).run()
    compute_tts_features(man / "tts_cuts_train.jsonl.gz", root / "asr", root / "feats.pt")
    cfg = load_config(None, ["lm.d_model=32", "lm.num_layers=1", "lm.num_heads=2",
                             "lm.dropout=0.0", "tts.decoder_layers=1", "tts.max_frames=1500",
                             "tts.griffin_lim_iters=4", "train.num_epochs=2",
                             "train.average_last=1", "optim.warmup_steps=2"])
    TtsTrainer(cfg, root / "tts", root / "feats.pt", tokenizer).run()
    return {"root": root, "tts": root / "tts", "asr": root / "asr", "feats": root / "feats.pt",
            "test_cuts": man / "tts_cuts_test.jsonl.gz", "tokenizer": tokenizer}


# ---- vocoder -------------------------------------------------------------------------------

def test_griffin_lim_round_trip_keeps_duration_and_energy():
    from speechlm.models.vocoder import GriffinLim, MelFrontend, MelSpec

    wave = _espeak("turn the kitchen lights on at seven thirty")
    spec = MelSpec()
    front, gl = MelFrontend(spec), GriffinLim(spec, iters=32)
    mel = front(wave)
    back = gl(mel)
    # duration: within one hop (the istft length is (frames - 1) * hop)
    assert abs(back.numel() - wave.numel()) <= spec.hop_length
    # energy: within 25 % (measured ~9 % low: GL leaves some inconsistency between frames)
    ratio = float((back ** 2).sum() / (wave ** 2).sum())
    assert 0.75 < ratio < 1.25, ratio
    # and the re-analysed mel is close to the original (mean |log| difference < 0.35; ~0.18)
    mel2 = front(back)
    n = min(mel.size(0), mel2.size(0))
    assert float((mel[:n] - mel2[:n]).abs().mean()) < 0.35


# ---- alignment ------------------------------------------------------------------------------

def test_ctc_forced_alignment_on_hand_built_posterior():
    from speechlm.decode.align import ctc_forced_align, token_durations

    # 10 frames, vocabulary {blank=0, 5, 6}; the posterior favours: b 5 5 b b 6 b 6 6 b
    # (tokens [5, 6, 6]: the repeat needs the blank at frame 6 between the two 6s)
    best = [0, 5, 5, 0, 0, 6, 0, 6, 6, 0]
    col = {0: 0, 5: 1, 6: 2}
    lp = torch.full((10, 3), -4.0)
    for t, k in enumerate(best):
        lp[t, col[k]] = -0.05
    log_probs = torch.full((10, 7), -30.0)
    log_probs[:, [0, 5, 6]] = lp
    path = ctc_forced_align(log_probs, [5, 6, 6])
    assert path.tolist() == [-1, 0, 0, -1, -1, 1, -1, 2, 2, -1]
    # ASR frames of 40 ms (frame 0 centred at 0 s); mel frames of 20 ms; speech in mel [1, 19)
    durs = token_durations(path, 3, 0.04, 0.0, 0.02, 20, speech_start=1, speech_end=19)
    # token 0: starts at min(1, 0.02 s -> 1) = 1; boundary 0/1: (0.10 + 0.18) / 2 = 0.14 s -> 7;
    # boundary 1/2: (0.22 + 0.26) / 2 = 0.24 s -> 12; end: max(19, 0.34 s -> 17) = 19
    assert durs == [1, 6, 5, 7, 1]
    assert sum(durs) == 20


def test_forced_alignment_refuses_too_few_frames():
    from speechlm.decode.align import ctc_forced_align
    from speechlm.base.errors import SpeechlmError

    with pytest.raises(SpeechlmError, match="cannot hold 3 tokens"):
        ctc_forced_align(torch.zeros(3, 8).log_softmax(-1), [5, 5, 6])


def test_tts_features_durations_cover_every_frame(tiny_tts):
    data = torch.load(tiny_tts["feats"], weights_only=True)
    assert len(data["utts"]) == 24
    for u in data["utts"]:
        assert len(u["durations"]) == len(u["tokens"]) + 2
        assert sum(u["durations"]) == u["mel"].size(0)
        assert min(u["durations"][1:-1]) >= 1


def test_tts_features_leave_out_a_cut_too_short_for_its_text_and_say_so(tiny_tts, tmp_path, caplog):
    from lhotse import CutSet
    from lhotse.utils import fastcopy

    from speechlm.base.errors import SpeechlmError
    from speechlm.data.features import load_cuts
    from speechlm.decode.tts_features import compute_tts_features

    cuts = list(load_cuts(tiny_tts["root"] / "data" / "manifests" / "tts_cuts_train.jsonl.gz"))[:3]
    long_text = " ".join(DIGITS * 12)  # far more tokens than ~1 s of audio has 40 ms frames
    bad = fastcopy(cuts[1], supervisions=[fastcopy(cuts[1].supervisions[0], text=long_text)])
    CutSet.from_cuts([cuts[0], bad, cuts[2]]).to_file(tmp_path / "cuts.jsonl.gz")
    with caplog.at_level("WARNING", logger="speechlm"):
        n = compute_tts_features(tmp_path / "cuts.jsonl.gz", tiny_tts["asr"], tmp_path / "feats.pt")
    assert n == 2
    assert [u["id"] for u in torch.load(tmp_path / "feats.pt", weights_only=True)["utts"]] == \
        sorted([cuts[0].id, cuts[2].id])
    assert "1 of 3 cuts left out" in caplog.text and bad.id in caplog.text

    CutSet.from_cuts([bad]).to_file(tmp_path / "bad.jsonl.gz")
    with pytest.raises(SpeechlmError, match="none of the 1 cuts could be aligned"):
        compute_tts_features(tmp_path / "bad.jsonl.gz", tiny_tts["asr"], tmp_path / "none.pt")
    assert not (tmp_path / "none.pt").exists()


# ---- metrics --------------------------------------------------------------------------------

def test_mcd_zero_for_identical_and_positive_for_different():
    from speechlm.models.vocoder import MelFrontend
    from speechlm.scoring.tts_eval import dtw_path, mcd_dtw

    front = MelFrontend()
    a = front(_espeak("set an alarm for six"))
    b = front(_espeak("what is nine times four"))
    assert mcd_dtw(a, a) == pytest.approx(0.0, abs=1e-6)
    assert mcd_dtw(a, b) > 1.0
    # the same mel stretched in time is close (DTW pairs the repeated frames)
    stretched = a.repeat_interleave(2, dim=0)
    assert mcd_dtw(a, stretched) < 0.05 * mcd_dtw(a, b)
    cost = np.array([[0, 5, 5], [5, 0, 5], [5, 0, 5], [5, 5, 0]], dtype=float)
    assert dtw_path(cost) == [(0, 0), (1, 1), (2, 1), (3, 2)]


# ---- model ----------------------------------------------------------------------------------

def test_model_overfits_one_utterance(tiny_tts):
    from speechlm.base.config import LMConfig, TTSConfig
    from speechlm.data.tts_data import TtsBatches
    from speechlm.models.tts import TtsModel
    from speechlm.text.tokenizer import Tokenizer

    utts = torch.load(tiny_tts["feats"], weights_only=True)["utts"][:1]
    torch.manual_seed(0)
    model = TtsModel(LMConfig(d_model=64, num_layers=1, num_heads=2, dropout=0.0),
                     TTSConfig(decoder_layers=1), Tokenizer(tiny_tts["tokenizer"]).vocab_size)
    model.set_mel_stats(utts[0]["mel"].float().mean(0), utts[0]["mel"].float().std(0))
    batch = TtsBatches(utts)[[0]]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss, _ = model(batch["tokens"], batch["token_lens"], batch["durations"], batch["mels"],
                        batch["mel_lens"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] / 8, (losses[0], losses[-1])  # measured: ~26x


def test_lm_init_must_be_a_text_lm(tiny_tts, tmp_path):
    from speechlm.base.config import load_config
    from speechlm.base.errors import SpeechlmError
    from speechlm.train.tts import TtsTrainer

    cfg = load_config(None, [f"tts.lm_init={tiny_tts['asr'] / 'final.pt'}"])
    with pytest.raises(SpeechlmError, match="tts.lm_init .* is not a text-LM checkpoint"):
        TtsTrainer(cfg, tmp_path / "e", tiny_tts["feats"], tiny_tts["tokenizer"])


# ---- CLI ------------------------------------------------------------------------------------

def test_synthesize_cli_writes_a_wav(tiny_tts, tmp_path):
    out = tmp_path / "out.wav"
    proc = speechlm("synthesize", "--model-dir", tiny_tts["tts"], "One  two three", "-o", out)
    assert proc.returncode == 0, proc.stderr
    audio, sr = sf.read(out)
    assert sr == 16000
    assert audio.ndim == 1 and audio.size > 0.1 * sr
    assert np.sqrt(np.mean(audio ** 2)) > 1e-3  # not silent


def test_synthesizer_api(tiny_tts, tmp_path):
    from speechlm import Synthesizer
    from speechlm.base.errors import SpeechlmError

    wave, sr = Synthesizer.from_dir(tiny_tts["tts"]).synthesize("one two three")
    assert sr == 16000 and wave.dtype == np.float32 and wave.ndim == 1 and wave.size > 0.1 * sr
    assert np.sqrt(np.mean(wave ** 2)) > 1e-3 and np.abs(wave).max() <= 1.0
    out = tmp_path / "cli.wav"  # the verb and the API say the same
    assert speechlm("synthesize", "--model-dir", tiny_tts["tts"], "one two three", "-o", out).returncode == 0
    assert np.abs(sf.read(out, dtype="float32")[0] - wave).max() < 1e-3
    with pytest.raises(SpeechlmError, match="holds a .ctc. model"):
        Synthesizer.from_dir(tiny_tts["asr"])


def test_synthesize_batch_mode(tiny_tts, tmp_path):
    sents = tmp_path / "sents.txt"
    sents.write_text("one two\n\nnine eight seven\n")
    proc = speechlm("synthesize", "--model-dir", tiny_tts["tts"], "--text-file", sents,
                    "--out-dir", tmp_path / "wavs")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "wavs").iterdir()) == ["sents-0001.wav",
                                                                     "sents-0003.wav"]


@pytest.mark.parametrize("text, needle", [
    ("   ", "empty text"),
    ("one zwö #", "cannot encode"),
])
def test_synthesize_bad_text_is_a_clean_error(tiny_tts, tmp_path, text, needle):
    out = tmp_path / "x.wav"
    proc = speechlm("synthesize", "--model-dir", tiny_tts["tts"], text, "-o", out)
    assert_clean_error(proc, needle)
    assert not out.exists()


def test_synthesize_missing_model_dir(tmp_path):
    proc = speechlm("synthesize", "--model-dir", tmp_path / "nope", "one", "-o", tmp_path / "x.wav")
    assert_clean_error(proc, "--model-dir", "does not exist", "train-tts")


def test_eval_tts_reports_mcd_and_round_trip_wer(tiny_tts, tmp_path):
    from speechlm.scoring.tts_eval import evaluate_tts

    results = tmp_path / "RESULTS.md"
    summary = evaluate_tts(tiny_tts["tts"], tiny_tts["test_cuts"], tiny_tts["asr"],
                           tmp_path / "eval", num_plots=2, results_md=results, command="x")
    assert summary["num_utts"] == 4 and summary["mcd_db"] > 0
    assert set(summary["wer_synthesised"]) == {"ctc-greedy"} == set(summary["wer_reference"])
    assert (tmp_path / "eval" / "mels.png").stat().st_size > 1000
    assert (tmp_path / "eval" / "asr-synthesised" / "wer-summary-synthesised.txt").is_file()
    assert json.loads((tmp_path / "eval" / "tts-summary.json").read_text()) == summary
    assert "MCD-DTW" in results.read_text()


# ---- LLM word features (tts.llm_layers) -------------------------------------------------------

def _tiny_llm_gguf(path: Path, seed: int) -> Path:
    """A random 2-block llama with a tiny byte-level BPE, written as GGUF (test_llama's writer)."""
    from test_llama import ARCH, train_bpe, write_gguf
    from speechlm.models.llama import LlamaConfig, LlamaLM

    tok = train_bpe()
    torch.manual_seed(seed)
    lm = LlamaLM(LlamaConfig(vocab_size=tok.get_vocab_size(), d_model=ARCH["hidden_size"],
                             num_layers=ARCH["num_hidden_layers"], num_heads=ARCH["num_attention_heads"],
                             num_kv_heads=ARCH["num_key_value_heads"], ffn_dim=ARCH["intermediate_size"],
                             rope_base=ARCH["rope_theta"]))
    with torch.no_grad():  # far from init, so each layer changes the features
        for p in lm.parameters():
            p.copy_(1 + 0.2 * torch.randn_like(p) if p.ndim == 1 else 0.3 * torch.randn_like(p))
    state = {f"model.{k}": v for k, v in lm.state_dict().items()}
    return write_gguf(path, state, ARCH, tok, tied=True)


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    root = tmp_path_factory.mktemp("tts_llm")
    return {"gguf": _tiny_llm_gguf(root / "a.gguf", 0), "other": _tiny_llm_gguf(root / "b.gguf", 1),
            "cache": root / "cache"}


def test_token_and_character_word_indexes():
    from speechlm.base.errors import SpeechlmError
    from speechlm.models.tts_llm import char_words, token_words

    assert token_words(["▁one", "▁t", "wo", "▁", "three"], "one two three") == [0, 1, 1, 2, 2]
    assert char_words("ab cd e") == [0, 0, 1, 1, 1, 2, 2]
    with pytest.raises(SpeechlmError, match="make 2 words but it has 3"):
        token_words(["▁one", "▁two", "three"], "one two three")


def test_llm_word_features_pool_words_in_context(tiny_llm):
    from speechlm.base.errors import SpeechlmError
    from speechlm.models.tts_llm import LLMWordFeatures

    wf = LLMWordFeatures(str(tiny_llm["gguf"]), str(tiny_llm["cache"]), 2)
    a, b, c = wf.words(["one two three", "nine two", "one two three seven eight"])
    assert a.shape == (3, 64) and b.shape == (2, 64) and c.shape == (5, 64)
    assert torch.allclose(a, c[:3], atol=1e-5)  # causal: later words and padding change nothing before
    assert not torch.allclose(a[1], b[1], atol=1e-3)  # "two" after "one" is not "two" after "nine"
    alone = wf.words(["nine two"])[0]
    assert torch.allclose(alone, b, atol=1e-5)  # batching with longer sentences changes nothing
    one_block = LLMWordFeatures(str(tiny_llm["gguf"]), str(tiny_llm["cache"]), 1)
    assert not torch.allclose(one_block.words(["one two three"])[0], a, atol=1e-3)
    assert one_block.digest() != wf.digest()
    feats = wf.token_features(["one two"], [["▁one", "▁t", "wo"]])[0]
    assert feats.shape == (5, 64)
    assert feats[0].abs().sum() == 0 and feats[-1].abs().sum() == 0  # <tts>, <sos/eos>
    assert torch.equal(feats[2], feats[3]) and not torch.equal(feats[1], feats[2])
    with pytest.raises(SpeechlmError, match="tts.llm_layers = 3: the LLM .* has 2 blocks"):
        LLMWordFeatures(str(tiny_llm["gguf"]), str(tiny_llm["cache"]), 3)


def test_tts_with_llm_word_features_trains_synthesises_and_checks_its_llm(tiny_tts, tiny_llm, tmp_path):
    import shutil

    from speechlm import Synthesizer
    from speechlm.base.config import load_config
    from speechlm.base.errors import SpeechlmError
    from speechlm.train.tts import TtsTrainer

    cfg = load_config(None, ["lm.d_model=32", "lm.num_layers=1", "lm.num_heads=2", "lm.dropout=0.0",
                             "tts.decoder_layers=1", "tts.max_frames=1500", "tts.griffin_lim_iters=4",
                             "train.num_epochs=2", "train.average_last=1", "optim.warmup_steps=2",
                             "tts.llm_layers=1", f"llm.source={tiny_llm['gguf']}",
                             f"llm.cache_dir={tiny_llm['cache']}"])
    exp = tmp_path / "tts-llm"
    TtsTrainer(cfg, exp, tiny_tts["feats"], tiny_tts["tokenizer"]).run()
    state = torch.load(exp / "final.pt", weights_only=True)
    assert any(k.startswith("llm_proj.") for k in state["model"])
    assert not any(".self_attn." in k and not k.startswith("lm.") for k in state["model"])  # no LLM inside
    syn = Synthesizer.from_dir(exp)
    wave, sr = syn.synthesize("one two three")
    assert wave.size > 0.1 * sr and np.sqrt(np.mean(wave ** 2)) > 1e-3
    ids = [syn.tokenizer.encode("one two three")]
    feats = syn.model.word_features.token_features(["one two three"], [[syn.tokenizer.id_to_piece(i) for i in ids[0]]])
    with_llm = syn.model.infer(ids, llm_feats=feats)[0]
    without = syn.model.infer(ids, llm_feats=[torch.zeros_like(feats[0])])[0]
    assert with_llm.shape != without.shape or (with_llm - without).abs().max() > 1e-4  # the features are used
    with pytest.raises(SpeechlmError, match="give llm_feats"):
        syn.model.infer(ids)
    other = tmp_path / "other"  # the same model dir, pointed at another LLM: refused, never a wrong voice
    shutil.copytree(exp, other)
    conf = other / "config.yaml"
    conf.write_text(conf.read_text().replace(str(tiny_llm["gguf"]), str(tiny_llm["other"])))
    with pytest.raises(SpeechlmError, match="trained on other pretrained weights.*tts.llm_layers = 1"):
        Synthesizer.from_dir(other)


# ---- recipe stages (tools/tts_stages.sh) ------------------------------------------------------

STAGE_WRAPPER = """set -euo pipefail
cd "$1"
stage=4 stop_stage=5 nj=1 resume="" recipe_args=""
tts_conf=conf/tts.yaml tts_voice=en-us+m3:200:50 tts_num_train=20 tts_num_test=3
tts_args="lm.d_model=32 lm.num_layers=1 lm.num_heads=2 tts.decoder_layers=1 train.num_epochs=1 \
train.average_last=1 tts.griffin_lim_iters=4 tts.valid_utterances=0"
corpus=tiny data=data exp=exp lm_text=data/train.txt
. {repo}/tools/stage_lib.sh
. {repo}/tools/tts_stages.sh
tts_stages
"""


def test_tts_stages_run_and_skip_when_done(tiny_tts, tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    from conftest import REPO

    (tmp_path / "data" / "manifests").mkdir(parents=True)
    (tmp_path / "data" / "lang_bpe").mkdir()
    (tmp_path / "exp").mkdir()
    shutil.copy(tiny_tts["test_cuts"], tmp_path / "data" / "manifests" / "tiny_cuts_test.jsonl.gz")
    shutil.copy(tiny_tts["root"] / "train.txt", tmp_path / "data" / "train.txt")
    shutil.copy(tiny_tts["tokenizer"], tmp_path / "data" / "lang_bpe" / "bpe.model")
    os.symlink(tiny_tts["asr"], tmp_path / "exp" / "asr")
    shutil.copytree(REPO / "egs" / "synth_en" / "conf", tmp_path / "conf")  # the shipped config
    script = tmp_path / "stages.sh"
    script.write_text(STAGE_WRAPPER.format(repo=REPO))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")

    def run():
        return subprocess.run(["bash", str(script), str(tmp_path)], env=env, capture_output=True,
                              text=True, timeout=300)

    first = run()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "text encoder starts from random init" in first.stdout  # no exp/lm/final.pt here
    assert (tmp_path / "exp" / "tts" / "final.pt").is_file()
    summary = (tmp_path / "exp" / "tts" / "eval-test" / "tts-summary.txt").read_text()
    assert summary.startswith("MCD-DTW") and "round-trip WER (ctc-greedy)" in summary
    assert "MCD-DTW" in (tmp_path / "RESULTS.md").read_text()
    for marker in ("tts-data/stage-4.done", "tts/stage-4.done", "tts/stage-5.done"):
        assert (tmp_path / ".done" / marker).is_file()
    second = run()
    assert second.returncode == 0 and second.stdout.count("already done, skipping") == 3
