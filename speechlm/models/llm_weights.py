"""A pretrained llama-family LLM and its tokenizer, from a GGUF file or a Hugging Face model.

:func:`load_llm` takes ``llm.source`` (see :mod:`speechlm.base.llm_files`) and returns a
:class:`~speechlm.models.llama.LlamaLM` with the weights and the
:class:`~speechlm.text.llm_tokenizer.LLMTokenizer`.

- **GGUF** (``gguf`` package): tensors are dequantised to float32 (``gguf.quants.dequantize``:
  Q8_0, Q4_1, F16 ...), renamed, and the Q/K rows put back in Hugging Face's rotary layout
  (llama.cpp's converter interleaves them: :func:`unpermute_rows`). Dequantising SmolLM2-135M takes
  about a minute on 2 cores, so the float weights and the tokenizer are cached once
  (``<cache>/<name>.<key>.safetensors``; :func:`speechlm.base.llm_files.cache_dir`), keyed by the
  file's path, size and modification time; later loads read the cache in about a second.
- **Hugging Face** dir: ``config.json``, ``model.safetensors`` (or sharded with an index),
  ``tokenizer.json``; a hub id is downloaded first (needs a network; never in tests).

A file whose architecture speechlm does not implement, or whose tensors do not fit the declared
architecture or vocabulary, is one :class:`~speechlm.base.errors.SpeechlmError` naming the tensor.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from speechlm.base.errors import SpeechlmError
from speechlm.base.llm_files import cache_dir, download_hf, gguf_metadata, open_gguf, resolve_source
from speechlm.models.llama import LlamaConfig, LlamaLM
from speechlm.text.llm_tokenizer import LLMTokenizer, tokenizer_from_gguf_metadata, tokenizer_from_json

log = logging.getLogger(__name__)

CACHE_FORMAT = "speechlm-llm-cache-1"  # bump when what the cache holds changes
_GGUF_GLOBAL = {"token_embd.weight": "embed_tokens.weight", "output_norm.weight": "norm.weight",
                "output.weight": "lm_head.weight"}
_GGUF_BLOCK = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
               "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
               "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj",
               "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
_GGUF_BLOCK_RE = re.compile(r"^blk\.(\d+)\.(\w+)\.weight$")


def gguf_tensor_name(name: str) -> Optional[str]:
    """Our parameter name for a GGUF llama tensor name (None: not one we know)."""
    if name in _GGUF_GLOBAL:
        return _GGUF_GLOBAL[name]
    m = _GGUF_BLOCK_RE.match(name)
    if m and m.group(2) in _GGUF_BLOCK:
        return f"layers.{m.group(1)}.{_GGUF_BLOCK[m.group(2)]}.weight"
    return None


def unpermute_rows(w: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Undo llama.cpp's Q/K row order: per head, GGUF interleaves the two rotary halves
    (rows ``0, Dh/2, 1, Dh/2 + 1, ...`` of Hugging Face's layout); this puts them back."""
    head_dim = w.shape[0] // num_heads
    return w.reshape(num_heads, head_dim // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def _f32(x) -> float:
    """A float32 header value as the decimal it was written from (1e-5, not 9.99999974e-06)."""
    return float(f"{float(x):.7g}")


def llama_config_from_gguf(meta: dict, shapes: Dict[str, tuple], source) -> LlamaConfig:
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise SpeechlmError(f"{source}: a {arch!r} model; speechlm implements the llama architecture "
                            "(SmolLM2, Llama 2/3 without rope scaling)")
    if str(meta.get("llama.rope.scaling.type", "none")) not in ("none", ""):
        raise SpeechlmError(f"{source}: rope scaling {meta['llama.rope.scaling.type']!r} is not implemented")
    if "token_embd.weight" not in shapes:
        raise SpeechlmError(f"{source}: no token_embd.weight tensor; not a llama model file")

    def need(key):
        if f"llama.{key}" not in meta:
            raise SpeechlmError(f"{source}: its metadata has no llama.{key}; the file is incomplete")
        return meta[f"llama.{key}"]

    heads = int(need("attention.head_count"))
    d_model = int(need("embedding_length"))
    return LlamaConfig(
        vocab_size=int(shapes["token_embd.weight"][0]), d_model=d_model, num_layers=int(need("block_count")),
        num_heads=heads, num_kv_heads=int(meta.get("llama.attention.head_count_kv", heads)),
        ffn_dim=int(need("feed_forward_length")),
        head_dim=int(meta.get("llama.attention.key_length", d_model // heads)),
        rope_base=_f32(meta.get("llama.rope.freq_base", 10000.0)),
        rms_eps=_f32(meta.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
        tie_embeddings="output.weight" not in shapes,
        max_positions=int(meta.get("llama.context_length", 8192)))


def _dequantised(reader, source) -> Tuple[Dict[str, torch.Tensor], Dict[str, tuple]]:
    """Every tensor of a GGUF file as float32 under its GGUF name, and their shapes."""
    import numpy as np
    from gguf.quants import dequantize

    out = {}
    for t in reader.tensors:
        shape = tuple(int(n) for n in reversed(list(t.shape)))  # GGUF lists the fastest dim first
        try:
            arr = dequantize(t.data, t.tensor_type)
        except NotImplementedError:
            raise SpeechlmError(f"{source}: tensor {t.name} is {t.tensor_type.name}, which gguf cannot "
                                "dequantise; use a file quantised as Q8_0, Q4_0/1, Q4_K ... or F16") from None
        out[t.name] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32).reshape(shape).copy())
    return out, {k: tuple(v.shape) for k, v in out.items()}


def _renamed(gguf_tensors: Dict[str, torch.Tensor], cfg: LlamaConfig, source) -> Dict[str, torch.Tensor]:
    state, unknown = {}, []
    for name, w in gguf_tensors.items():
        ours = gguf_tensor_name(name)
        if ours is None:
            unknown.append(name)
            continue
        if ours.endswith("q_proj.weight"):
            w = unpermute_rows(w, cfg.num_heads)
        elif ours.endswith("k_proj.weight"):
            w = unpermute_rows(w, cfg.num_kv_heads)
        state[ours] = w
    if unknown:
        raise SpeechlmError(f"{source}: tensors speechlm's llama does not have: {', '.join(unknown[:5])}"
                            f"{' ...' if len(unknown) > 5 else ''}; not a plain llama model")
    return state


def cache_paths(gguf_path: Path, where: Path) -> Tuple[Path, Path]:
    st = gguf_path.stat()
    key = hashlib.sha1(f"{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{CACHE_FORMAT}".encode())
    stem = f"{gguf_path.stem}.{key.hexdigest()[:12]}"
    return where / f"{stem}.safetensors", where / f"{stem}.tokenizer.json"


def _write_cache(weights: Path, tok_path: Path, state, cfg: LlamaConfig, tokenizer: LLMTokenizer,
                 source) -> None:
    from safetensors.torch import save_file

    weights.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": CACHE_FORMAT, "source": str(source), "llama_config": json.dumps(cfg.to_dict()),
            "sos_eos_id": str(tokenizer.sos_eos_id)}
    for final, write in ((tok_path, lambda p: tokenizer.save(p)),
                         (weights, lambda p: save_file(state, str(p), metadata=meta))):
        tmp = final.with_name(final.name + f".tmp{os.getpid()}")
        try:
            write(tmp)
            os.replace(tmp, final)  # the weights last: their presence means the cache is complete
        except OSError as e:
            tmp.unlink(missing_ok=True)
            log.warning("could not cache the float weights at %s (%s); the next load dequantises again",
                        final, e)
            return


def _read_cache(weights: Path, tok_path: Path):
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != CACHE_FORMAT:
            return None
        state = {k: f.get_tensor(k) for k in f.keys()}
    cfg = LlamaConfig.from_dict(json.loads(meta["llama_config"]))
    tokenizer = tokenizer_from_json(tok_path, cfg.vocab_size, int(meta["sos_eos_id"]))
    return cfg, state, tokenizer


def read_gguf(path: str | Path, cache: str | Path = "") -> Tuple[LlamaConfig, dict, LLMTokenizer]:
    """Architecture, float32 state dict (our names) and tokenizer of a GGUF llama file; the
    dequantised result is cached under ``cache`` (:func:`speechlm.base.llm_files.cache_dir`)."""
    path = Path(path)
    weights, tok_path = cache_paths(path, cache_dir(cache))
    if weights.is_file() and tok_path.is_file():
        try:
            cached = _read_cache(weights, tok_path)
        except Exception as e:  # a damaged cache is rebuilt, never trusted
            log.warning("LLM cache %s unreadable (%s: %s); dequantising %s again", weights,
                        type(e).__name__, e, path)
            cached = None
        if cached:
            log.info("LLM %s: float weights from the cache %s", path.name, weights)
            return cached
    t0 = time.perf_counter()
    reader = open_gguf(path)
    meta = gguf_metadata(reader)
    gguf_tensors, shapes = _dequantised(reader, path)
    cfg = llama_config_from_gguf(meta, shapes, path)
    state = _renamed(gguf_tensors, cfg, path)
    tokenizer = tokenizer_from_gguf_metadata(meta, cfg.vocab_size, path)
    _write_cache(weights, tok_path, state, cfg, tokenizer, path)
    log.info("LLM %s: dequantised %d tensors in %.1f s; float weights cached at %s (delete it to redo)",
             path.name, len(state), time.perf_counter() - t0, weights)
    return cfg, state, tokenizer


def llama_config_from_hf(hf: dict, source) -> LlamaConfig:
    if hf.get("model_type") != "llama":
        raise SpeechlmError(f"{source}/config.json: model_type {hf.get('model_type')!r}; speechlm "
                            "implements the llama architecture (SmolLM2, Llama 2/3)")
    rope = hf.get("rope_parameters") or {}  # transformers >= 5; rope_theta / rope_scaling before
    scaling = hf.get("rope_scaling") or rope
    if scaling and (scaling.get("rope_type") or scaling.get("type")) not in ("default", None):
        raise SpeechlmError(f"{source}/config.json: rope scaling {scaling} is not implemented")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise SpeechlmError(f"{source}/config.json: attention/MLP biases are not implemented")
    try:
        heads = int(hf["num_attention_heads"])
        return LlamaConfig(
            vocab_size=int(hf["vocab_size"]), d_model=int(hf["hidden_size"]),
            num_layers=int(hf["num_hidden_layers"]), num_heads=heads,
            num_kv_heads=int(hf.get("num_key_value_heads") or heads), ffn_dim=int(hf["intermediate_size"]),
            head_dim=int(hf.get("head_dim") or 0), rope_base=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
            rms_eps=float(hf.get("rms_norm_eps", 1e-6)),
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            max_positions=int(hf.get("max_position_embeddings", 8192)))
    except KeyError as e:
        raise SpeechlmError(f"{source}/config.json has no {e.args[0]}") from None


def _hf_tensors(path: Path) -> Dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    index = path / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (path / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise SpeechlmError(f"{path}: no model.safetensors (nor model.safetensors.index.json); "
                            "speechlm reads safetensors weights")
    out = {}
    for name in files:
        try:
            out.update(load_file(str(path / name)))
        except Exception as e:
            raise SpeechlmError(f"{path / name} could not be read ({type(e).__name__}: {e})") from None
    return out


def read_hf_dir(path: str | Path) -> Tuple[LlamaConfig, dict, LLMTokenizer]:
    """Architecture, float32 state dict (our names) and tokenizer of a Hugging Face llama dir."""
    path = Path(path)
    hf = json.loads((path / "config.json").read_text())
    cfg = llama_config_from_hf(hf, path)
    state = {}
    for name, w in _hf_tensors(path).items():
        ours = name[len("model."):] if name.startswith("model.") else name
        if ours == "lm_head.weight" and cfg.tie_embeddings:
            continue
        if ours.endswith("rotary_emb.inv_freq"):
            continue
        state[ours] = w.float()
    eos = hf.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    return cfg, state, tokenizer_from_json(path / "tokenizer.json", cfg.vocab_size, eos)


def load_checked(model: LlamaLM, state: dict, source) -> None:
    """``model.load_state_dict(state)``; a missing, extra or misshapen tensor is one clear error."""
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state))
    extra = sorted(set(state) - set(ours))
    wrong = [f"{k}: {tuple(state[k].shape)} in the file, {tuple(ours[k].shape)} in the model"
             for k in ours if k in state and state[k].shape != ours[k].shape]
    if missing or extra or wrong:
        what = "; ".join(filter(None, [
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(extra[:3])}" if extra else "",
            f"shape {wrong[0]}" if wrong else ""]))
        raise SpeechlmError(f"{source}: the weights do not fit the architecture it declares ({what}); "
                            "the file's vocabulary or architecture metadata disagree with its tensors")
    model.load_state_dict(state, assign=True)


def load_llm(source: str, cache: str | Path = "", key: str = "llm.source") -> Tuple[LlamaLM, LLMTokenizer]:
    """The LLM ``source`` names (``smollm2``, a ``.gguf``, an HF dir or hub id) and its tokenizer,
    float32 on the CPU, in eval mode; ``key`` is the option that named it (for messages)."""
    kind, where = resolve_source(source, key)
    t0 = time.perf_counter()
    if kind == "gguf":
        cfg, state, tokenizer = read_gguf(where, cache)
    else:
        cfg, state, tokenizer = read_hf_dir(download_hf(where, key) if kind == "hf-hub" else where)
    with torch.device("meta"):  # no random init to throw away: the weights are assigned below
        model = LlamaLM(cfg, tokenizer.sos_eos_id)
    load_checked(model, state, where)
    log.info("LLM %s: %d layers, d_model %d, %d/%d heads, vocabulary %d, %.1f M parameters; loaded in %.1f s",
             source, cfg.num_layers, cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.vocab_size,
             sum(p.numel() for p in model.parameters()) / 1e6, time.perf_counter() - t0)
    return model.eval(), tokenizer
