"""Reading and writing files the user names: text that is not UTF-8 and a disk that is full
become one message naming the file (the CLI prints it; exit 2), never a traceback."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Optional

from speechlm.base.errors import SpeechlmError

# below this many free bytes, a write that failed without saying why failed for want of space
NEARLY_FULL_BYTES = 1 << 20


def read_text_file(path: Path, what: str = "") -> str:
    """A whole UTF-8 text file; a decoding error names the file (``what``: the option that gave
    it, e.g. ``--text-file``) and line."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SpeechlmError(
            f"{what + ' ' if what else ''}{path}:{line}: not UTF-8 text (byte {raw[e.start]:#04x} at "
            f"offset {e.start}). Convert the file to UTF-8, e.g. `iconv -f latin1 -t utf-8`."
        ) from None


def _free_bytes(path: Path) -> Optional[int]:
    for p in (path, *path.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


def disk_full_message(error: BaseException, path: Optional[Path] = None) -> Optional[str]:
    """The message for an error that a full disk (or quota) caused, else None: which file could
    not be written (or, when the error does not say, ``path``: where the command writes), how
    much room its disk has left, what to do."""
    if not isinstance(error, OSError) or error.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    if error.filename:
        where = Path(error.filename)
        target = f"writing {where}: the disk holding {where.parent}"
    elif path is not None:
        where = Path(path)
        target = f"writing under {where}: its disk"
    else:
        where, target = None, "the disk this command writes to"
    free = _free_bytes(where) if where is not None else None
    room = f" ({free / 2**20:.1f} MiB free there)" if free is not None else ""
    quota = " (or your quota there)" if error.errno == errno.EDQUOT else ""
    return (f"no space left on the device: {target} is full{quota}{room}. "
            "Free some space there, or write to another disk (e.g. another --exp-dir / --out-dir).")


def write_failure(error: BaseException, path: Path) -> BaseException:
    """What a failed write of ``path`` should raise: libraries that write through C (torch.save,
    soundfile) fail with a RuntimeError that does not say why; when the disk has (almost) no
    room left, the reason is a full disk: an ``OSError(ENOSPC)`` naming the path."""
    if isinstance(error, OSError):
        return error
    free = _free_bytes(Path(path))
    if free is not None and free < NEARLY_FULL_BYTES:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return error
