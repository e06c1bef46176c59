"""A new model family and a new decoding method plug in by registration alone.

This module adds a toy family (its own config section, model and trainer) and a toy decoding
method without editing any library file, then trains and decodes it through the CLI's own
``speechlm train`` / ``speechlm decode`` verbs on tiny real data.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from conftest import tiny_overrides
from speechlm.base.config import SECTIONS, register_section
from speechlm.base.errors import SpeechlmError
from speechlm.base.registry import (
    DECODING_METHODS,
    MODEL_FAMILIES,
    DecodingMethod,
    ModelFamily,
    Registry,
    methods_for,
)
from speechlm.cli import main
from speechlm.data.features import compute_cmvn
from speechlm.models.asr import Encoded
from speechlm.train.ctc import CtcTrainer


@dataclass
class ToyConfig:
    hidden: int = 24
    stride: int = 4


class ToyModel(nn.Module):
    """Frames stacked by ``stride`` -> MLP -> CTC log-probs: the smallest CTC recogniser."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        self.stride = cfg.toy.stride
        self.register_buffer("feat_mean", torch.zeros(80))
        self.register_buffer("feat_std", torch.ones(80))
        self.net = nn.Sequential(nn.Linear(80 * self.stride, cfg.toy.hidden), nn.ReLU(),
                                 nn.Linear(cfg.toy.hidden, vocab_size))

    def forward(self, feats, lengths):
        b, t, d = feats.shape
        t = t // self.stride * self.stride
        x = ((feats[:, :t] - self.feat_mean) / self.feat_std).reshape(b, t // self.stride, d * self.stride)
        return self.net(x).log_softmax(-1), lengths // self.stride

    def encode_for_decoding(self, feats, lengths) -> Encoded:
        return Encoded(*self(feats, lengths))

    def ctc_loss(self, log_probs, lengths, targets):
        return nn.functional.ctc_loss(
            log_probs.transpose(0, 1), torch.tensor([i for t in targets for i in t]), lengths,
            torch.tensor([len(t) for t in targets]), reduction="sum", zero_infinity=True)


class ToyTrainer(CtcTrainer):
    kind = "toy"

    def build_model(self):
        model = ToyModel(self.cfg, self.tokenizer.vocab_size)
        mean, std = compute_cmvn(self.train_cuts)
        model.feat_mean.copy_(mean)
        model.feat_std.copy_(std.clamp_min(1e-5))
        return model


def first_word_method(ctx):
    """toy-first-word: the first word of the greedy CTC hypothesis (a real, if silly, method)."""
    greedy = DECODING_METHODS.get("ctc-greedy")
    from speechlm.base.registry import resolve

    fn = resolve(greedy.build)(ctx)
    return lambda e: [words[:1] for words in fn(e)]


@pytest.fixture
def toy_registered():
    register_section("toy", ToyConfig)
    MODEL_FAMILIES.register(ModelFamily("toy", "frame-stacking MLP with a CTC head (test)",
                                        build=ToyModel, trainer=ToyTrainer, provides=("ctc", "toy")))
    DECODING_METHODS.register(DecodingMethod("toy-first-word", "first word of ctc-greedy (test)",
                                             first_word_method, needs=("ctc", "toy")))
    yield
    MODEL_FAMILIES.unregister("toy")
    DECODING_METHODS.unregister("toy-first-word")
    SECTIONS.pop("toy")


def test_toy_family_trains_and_decodes_through_the_cli(toy_registered, tiny_asr, tmp_path, capsys):
    exp = tmp_path / "toy"
    sets = [o for o in tiny_overrides(epochs=3) if not o.startswith("encoder.")]
    assert main(["train", "--exp-dir", str(exp), "--train-cuts", str(tiny_asr["train"]),
                 "--tokenizer", str(tiny_asr["tokenizer"]),
                 "--set", "model.kind=toy", "toy.hidden=16", *sets]) == 0
    assert (exp / "final.pt").is_file() and "hidden: 16" in (exp / "config.yaml").read_text()
    assert main(["decode", "--exp-dir", str(exp), "--cuts", str(tiny_asr["test"]),
                 "--methods", "ctc-greedy,toy-first-word"]) == 0
    out = capsys.readouterr().out
    assert "test\tctc-greedy\tWER" in out and "test\ttoy-first-word\tWER" in out
    greedy = (exp / "decode-test" / "recogs-test-ctc-greedy.txt").read_text().splitlines()
    first = (exp / "decode-test" / "recogs-test-toy-first-word.txt").read_text().splitlines()
    hyp = lambda lines: [eval(line.split("hyp=", 1)[1]) for line in lines if "\thyp=" in line]  # noqa: E731
    assert [h[:1] for h in hyp(greedy)] == hyp(first)
    # the registries feed the help texts and the method check
    with pytest.raises(SystemExit):
        main(["decode", "--help"])
    assert "toy-first-word" in capsys.readouterr().out
    assert methods_for(MODEL_FAMILIES.get("ctc")) == [m for m in methods_for(MODEL_FAMILIES.get("toy"))
                                                     if m != "toy-first-word" and "attention" not in m]


def test_method_the_family_cannot_run_is_refused(toy_registered, tiny_asr, tmp_path, capsys):
    exp = tmp_path / "ctc"
    assert main(["train", "--exp-dir", str(exp), "--train-cuts", str(tiny_asr["train"]),
                 "--tokenizer", str(tiny_asr["tokenizer"]), "--set",
                 *tiny_overrides(epochs=1), "train.average_last=1"]) == 0
    capsys.readouterr()
    assert main(["decode", "--exp-dir", str(exp), "--cuts", str(tiny_asr["test"]),
                 "--methods", "toy-first-word"]) == 2
    err = capsys.readouterr().err
    assert "toy-first-word needs a model that provides ctc, toy" in err and "'ctc' model" in err


def test_registry_errors_are_clear():
    reg = Registry("widget")
    reg.register(ModelFamily("a", "", build=None, trainer=None))
    with pytest.raises(SpeechlmError, match="widget 'a' is already registered"):
        reg.register(ModelFamily("a", "", build=None, trainer=None))
    with pytest.raises(SpeechlmError, match=r"unknown widget 'b' \(--x\); known: a"):
        reg.get("b", "--x")
    from speechlm.base.config import load_config
    from speechlm.cli import family_trainer

    with pytest.raises(SpeechlmError, match="is trained with `speechlm train-lm`"):
        family_trainer(load_config(None, ["model.kind=lm"]), "train")


def test_plugins_named_in_the_environment_register_at_cli_start(tmp_path, monkeypatch, capsys):
    """SPEECHLM_PLUGINS: a user's own module registers a corpus; `speechlm prepare` offers it."""
    (tmp_path / "my_corpus_plugin.py").write_text(
        "from speechlm.base.registry import CORPORA, Corpus\n"
        "def add_arguments(p):\n    p.add_argument('--greeting', default='hi')\n"
        "def prepare(args):\n    return f'my_corpus said {args.greeting}'\n"
        "CORPORA.register(Corpus('my_corpus', 'a plugin corpus', add_arguments, prepare), replace=True)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SPEECHLM_PLUGINS", "my_corpus_plugin")
    try:
        assert main(["prepare", "my_corpus", "--out-dir", str(tmp_path), "--greeting", "hello"]) == 0
        assert "my_corpus said hello" in capsys.readouterr().out
        monkeypatch.setenv("SPEECHLM_PLUGINS", "no_such_plugin_module")
        assert main(["prepare", "--help"]) == 2
        assert "SPEECHLM_PLUGINS: cannot import plugin module 'no_such_plugin_module'" in capsys.readouterr().err
    finally:
        from speechlm.base.registry import CORPORA

        CORPORA.unregister("my_corpus")
