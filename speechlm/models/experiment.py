"""Loading trained models, for every model family the same way.

- :func:`load_experiment`: an exp dir written by training (``config.yaml``, ``tokenizer.model``,
  ``final.pt`` or ``epoch-N.pt``) -> the model, its resolved config, tokenizer and family.
- :func:`checked_checkpoint` / :func:`init_part`: initialise part of a model (an LM decoder, a
  TTS text encoder, ...) from another run's checkpoint, refusing one of the wrong kind,
  vocabulary or architecture with a message that names the option that gave the path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from speechlm.base.checkpoint import averaged_state, load_checkpoint
from speechlm.base.config import ExperimentConfig, config_from_dict, load_config
from speechlm.base.errors import SpeechlmError
from speechlm.base.registry import MODEL_FAMILIES, ModelFamily, resolve
from speechlm.text.tokenizer import Tokenizer

log = logging.getLogger("speechlm.models")


@dataclass
class Experiment:
    """A trained model with everything needed to use it."""

    model: nn.Module
    cfg: ExperimentConfig
    tokenizer: Tokenizer
    family: ModelFamily
    exp_dir: Path
    checkpoint: str  # what the weights are: final.pt, epoch-N.pt, or "average of ..."


def build_model(cfg: ExperimentConfig, vocab_size: int) -> nn.Module:
    """A fresh model of the family ``cfg.model.kind`` names."""
    family = MODEL_FAMILIES.get(cfg.model.kind, "model.kind")
    return resolve(family.build)(cfg, vocab_size)


def load_weights(model: nn.Module, weights: Dict[str, torch.Tensor], where: str,
                 state: Optional[Dict] = None) -> None:
    """``model.load_state_dict`` whose mismatch is one clear message, not a tensor dump.

    A checkpoint may leave out weights that the model's builder loads itself and training never
    changes (a frozen pretrained LLM: ``state["from_source_keys"]``); the model's
    ``source_digest()`` must then equal ``state["source_digest"]``, so those weights are the ones
    it was trained with."""
    from_source = (state or {}).get("from_source_keys") or ()
    expected = (state or {}).get("source_digest")
    digest = getattr(model, "source_digest", lambda: None)()
    if state is not None and (from_source or expected or digest) and digest != expected:
        raise SpeechlmError(f"{where} was trained on other pretrained weights than the ones its "
                            f"config's source gives now ({state.get('source_description', '?')}); "
                            "give the same LLM (llm.source) it was trained with")
    if from_source:
        own = model.state_dict()
        weights = {**{k: own[k] for k in from_source if k in own}, **weights}
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).split("\n\t", 2)[1] if "\n\t" in str(e) else str(e)
        raise SpeechlmError(f"{where} does not fit this model ({first.strip()[:300]}): it was "
                            "trained with another architecture or model kind") from None


def load_experiment(exp_dir: str | Path, device: str | torch.device = "cpu", avg: int = 0,
                    checkpoint: str = "final.pt", overrides: Sequence[str] = (),
                    needs: str = "", option: str = "--exp-dir") -> Experiment:
    """Load the model that training wrote to ``exp_dir``; any family.

    :param avg: > 0: the weights are the average of the last ``avg`` epoch checkpoints
        (icefall's ``--avg``) instead of ``checkpoint``.
    :param overrides: ``decode.key=value`` changes to the resolved config (decoding options
        only: the model is what training wrote).
    :param needs: a capability the model must provide (``ctc`` to decode speech, ``tts`` to
        synthesise, ``text_lm``); another family is refused naming what it is.
    :param option: the command-line option that named ``exp_dir`` (for messages).
    """
    exp_dir = Path(exp_dir)
    trainers = sorted({f"`speechlm {f.train_verb}`" for f in MODEL_FAMILIES if not needs or needs in f.provides})
    if not exp_dir.is_dir():
        raise SpeechlmError(f"{option} {exp_dir} does not exist: train a model first "
                            f"({' or '.join(trainers)}, recipe stage 4) or give its exp dir")
    if not (exp_dir / "config.yaml").is_file():
        raise SpeechlmError(f"{option} {exp_dir} is not a trained experiment dir (no config.yaml): "
                            f"train first ({' or '.join(trainers)}, recipe stage 4) or give the right dir")
    bad = [o for o in overrides if not o.startswith("decode.")]
    if bad:
        raise SpeechlmError(f"decoding overrides {bad}: only decode.* keys can change at decoding "
                            "time (the model is what training wrote)")
    cfg = load_config(exp_dir / "config.yaml", overrides)
    family = MODEL_FAMILIES.get(cfg.model.kind, f"{exp_dir / 'config.yaml'}: model.kind")
    if needs and needs not in family.provides:
        usable = [f.name for f in MODEL_FAMILIES if needs in f.provides]
        raise SpeechlmError(f"{option} {exp_dir} holds a {family.name!r} model ({family.help}); "
                            f"this needs one of: {', '.join(usable)}")
    tokenizer = (resolve(family.tokenizer)(exp_dir, cfg) if family.tokenizer
                 else Tokenizer(exp_dir / "tokenizer.model"))
    if avg:
        state = averaged_state(exp_dir, avg)
        what = f"average of {', '.join(state['averaged'])}"
        log.info("model: %s", what)
    else:
        state = load_checkpoint(exp_dir / checkpoint, map_location="cpu")
        what = checkpoint
    if state.get("vocab_size") != tokenizer.vocab_size:
        raise SpeechlmError(
            f"{exp_dir / what if not avg else exp_dir} has vocabulary size {state.get('vocab_size')} "
            f"but {exp_dir / 'tokenizer.model'} has {tokenizer.vocab_size}; they are not from one run"
        )
    model = resolve(family.build)(cfg, tokenizer.vocab_size)
    load_weights(model, state["model"], f"{exp_dir} ({what})", state)
    return Experiment(model.to(device).eval(), cfg, tokenizer, family, exp_dir, what)


def checked_checkpoint(path: str | Path, key: str, kinds: Sequence[str],
                       vocab_size: Optional[int] = None, section: str = "",
                       arch: Optional[Any] = None, arch_keys: Sequence[str] = (),
                       random_init: bool = True, user: str = "tokenizer") -> Dict:
    """Load the checkpoint that option ``key`` names, refusing one that cannot serve.

    Checked: the file exists; it is of one of the model families ``kinds``; its vocabulary is
    ``vocab_size`` (if given; ``user`` is what must share it); its config ``section`` agrees
    with ``arch`` (a config dataclass) on ``arch_keys``. ``random_init``: the option may be left
    empty for random initialisation, and the messages say so. Returns the checkpoint dict.
    """
    producers = [MODEL_FAMILIES.get(k) for k in kinds if k in MODEL_FAMILIES]
    how = " or ".join(f"`speechlm {f.train_verb}` with model.kind {f.name}" for f in producers)
    stage = ("run the recipe's stage 3 (text-LM pretraining) first" if "lm" in kinds
             else f"train it first ({how})")
    or_random = f", or set {key}='' for random init" if random_init else ""
    if not Path(path).is_file():
        raise SpeechlmError(f"{key} = {path} not found: {stage}{or_random}")
    state = load_checkpoint(path)
    saved = state.get("config", {})
    kind = saved.get("model", {}).get("kind")
    if kind not in kinds:
        want = "a text-LM" if tuple(kinds) == ("lm",) else f"a {' or '.join(kinds)}"
        raise SpeechlmError(f"{key} = {path} is not {want} checkpoint (model.kind {kind!r}; one is "
                            f"made by {how}){or_random}")
    if vocab_size is not None and state.get("vocab_size") != vocab_size:
        raise SpeechlmError(
            f"{key} = {path} has vocabulary size {state.get('vocab_size')} but the {user} has "
            f"{vocab_size}: it must be trained on the same sentencepiece model "
            f"(re-run it after stage 2){or_random}")
    if arch is not None:
        there = saved.get(section, {})
        diff = [k for k in arch_keys if there.get(k) != getattr(arch, k)]
        if diff:
            label = "LM" if section == "lm" else section
            what = ", ".join(f"{k}: {there.get(k)!r} there, {getattr(arch, k)!r} here" for k in diff)
            fix = " ".join(f"{section}.{k}={there.get(k)}" for k in diff if k in there)
            raise SpeechlmError(f"{key} = {path} has a different {label} architecture ({what}); "
                                f"the config's {section} section must match the checkpoint it "
                                f"starts from" + (f" (--set {fix})" if fix else ""))
    return state


def init_part(module: nn.Module, state: Dict, key: str, prefix: str = "") -> None:
    """Load the weights under ``prefix`` of a :func:`checked_checkpoint` result into ``module``."""
    weights = {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}
    if not weights:
        raise SpeechlmError(f"{key}: the checkpoint has no weights under {prefix!r}")
    load_weights(module, weights, key)


def model_from_checkpoint(path: str | Path, key: str, kinds: Sequence[str], vocab_size: int,
                          device: str | torch.device = "cpu", user: str = "tokenizer") -> nn.Module:
    """A whole model rebuilt from a single checkpoint file (its saved config gives the
    architecture), e.g. the text LM of shallow fusion."""
    state = checked_checkpoint(path, key, kinds, vocab_size, random_init=False, user=user)
    cfg = config_from_dict(state["config"], f"{key} = {path}")
    model = build_model(cfg, vocab_size)
    load_weights(model, state["model"], f"{key} = {path}")
    return model.to(device).eval()
