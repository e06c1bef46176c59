"""A corpus in a common layout as a scored test set in one step: import (every utterance is the
test set unless the corpus gives its own split) and fbank into a cache dir, exactly as
``speechlm import ... --test-fraction 1.0`` then ``speechlm compute-fbank`` would, so the WER
of ``speechlm decode --data`` is the WER of the long way round."""

from __future__ import annotations

import logging
from pathlib import Path

from speechlm.base.errors import SpeechlmError
from speechlm.data.import_options import KINDS

log = logging.getLogger(__name__)

PREFIX = "data"


def _newest_mtime(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    return max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=path.stat().st_mtime)


def prepare_eval_set(kind: str, path: str | Path, cache_dir: str | Path, on_error: str = "raise",
                     num_jobs: int = 1) -> Path:
    """The test cut manifest (with features) of the corpus at ``path``, computed into
    ``cache_dir`` (manifests/, feats/) or taken from there when the corpus has not changed."""
    from speechlm.data.features import compute_fbank
    from speechlm.data.importers import import_corpus

    if kind not in KINDS:
        raise SpeechlmError(f"--data-kind {kind!r}: choose one of {', '.join(KINDS)}")
    path, cache_dir = Path(path), Path(cache_dir)
    if not path.exists():
        raise SpeechlmError(f"--data {path} not found")
    out = cache_dir / "cuts_test.jsonl.gz"
    stamp = cache_dir / ".done"
    key = f"{kind} {path.resolve()} on_error={on_error}\n"
    if (out.is_file() and stamp.is_file() and stamp.read_text() == key
            and _newest_mtime(path) <= stamp.stat().st_mtime):
        log.info("test set %s: features cached in %s", path, cache_dir)
        return out
    stamp.unlink(missing_ok=True)
    result = import_corpus(kind, path, cache_dir / "manifests", PREFIX, on_error=on_error,
                           dev_fraction=0.0, test_fraction=1.0)
    log.info("%s", result.summary())
    compute_fbank(cache_dir / "manifests" / f"{PREFIX}_cuts_test.jsonl.gz", out, cache_dir / "feats",
                  num_jobs=num_jobs)
    stamp.write_text(key)
    return out
