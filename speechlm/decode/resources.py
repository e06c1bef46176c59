"""Where a model dir's decoding resources are: the lang dir (``HLG.fst``, ``words.txt``) of the
``hlg-*`` methods and the text LM of the LM-fusion methods.

Looked up, for the methods that use them (their ``resources`` in the registry), in this order:

1. the option given now (``--lang-dir``, ``--lm-checkpoint``);
2. inside the model dir: ``lang/`` (with ``HLG.fst``) and ``lm.pt`` (a model dir that carries
   them is self-contained: copy it anywhere);
3. what the last ``speechlm decode`` of this model dir used, recorded as absolute paths in
   ``resources.yaml`` (recipe stage 5 writes it);
4. text LM only: the config's ``decode.lm_checkpoint``, else ``speechlm.lm_init``
   (:func:`speechlm.decode.methods.text_lm_source`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import yaml

from speechlm.base.registry import DECODING_METHODS

log = logging.getLogger("speechlm.decode")

RESOURCES_FILE = "resources.yaml"
LANG_IN_DIR, LM_IN_DIR = "lang", "lm.pt"


def _needs(methods: Sequence[str]) -> set:
    return {r for m in methods if m in DECODING_METHODS for r in DECODING_METHODS.get(m).resources}


def recorded_resources(exp_dir: str | Path) -> Dict[str, str]:
    path = Path(exp_dir) / RESOURCES_FILE
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {k: str(v) for k, v in data.items() if v} if isinstance(data, dict) else {}


def find_resources(exp_dir: str | Path, methods: Sequence[str], lang_dir: Optional[str | Path] = None,
                   lm_checkpoint: Optional[str | Path] = None) -> Tuple[Optional[Path], Optional[str]]:
    """``(lang_dir, lm_checkpoint)`` for ``methods`` (None where none is needed or found; a
    method that needs one then says how to give it)."""
    exp_dir = Path(exp_dir)
    needs = _needs(methods)
    recorded = recorded_resources(exp_dir)
    if "lang_dir" in needs and not lang_dir:
        if (exp_dir / LANG_IN_DIR / "HLG.fst").is_file():
            lang_dir = exp_dir / LANG_IN_DIR
        elif recorded.get("lang_dir"):
            lang_dir = recorded["lang_dir"]
            log.info("lang dir %s (recorded in %s)", lang_dir, exp_dir / RESOURCES_FILE)
    if "text_lm" in needs and not lm_checkpoint:
        if (exp_dir / LM_IN_DIR).is_file():
            lm_checkpoint = exp_dir / LM_IN_DIR
        elif recorded.get("lm_checkpoint"):
            lm_checkpoint = recorded["lm_checkpoint"]
            log.info("text LM %s (recorded in %s)", lm_checkpoint, exp_dir / RESOURCES_FILE)
    return (Path(lang_dir) if lang_dir else None), (str(lm_checkpoint) if lm_checkpoint else None)


def record_resources(exp_dir: str | Path, methods: Sequence[str], lang_dir: Optional[str | Path],
                     lm_checkpoint: Optional[str | Path]) -> None:
    """Remember (absolute paths, in ``resources.yaml``) the lang dir and text LM a decoding of
    ``exp_dir`` used, for the methods that used them, so later runs find them without options."""
    needs = _needs(methods)
    found = {}
    if "lang_dir" in needs and lang_dir and (Path(lang_dir) / "HLG.fst").is_file():
        found["lang_dir"] = str(Path(lang_dir).resolve())
    if "text_lm" in needs and lm_checkpoint and Path(lm_checkpoint).is_file():
        found["lm_checkpoint"] = str(Path(lm_checkpoint).resolve())
    if not found:
        return
    data = {**recorded_resources(exp_dir), **found}
    path = Path(exp_dir) / RESOURCES_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("# decoding resources the last `speechlm decode` used (read by speechlm transcribe)\n"
                   + yaml.safe_dump(data, sort_keys=True), encoding="utf-8")
    tmp.replace(path)
