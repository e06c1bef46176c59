"""Run one call in a forked child and return its bytes: for engines that carry state from one
utterance to the next (espeak-ng's noise generator, the random-noise kernels of an ONNX voice),
so that each utterance comes from an engine that has never spoken and the output depends on
the call alone, whatever the process synthesised before."""

import os
from typing import Callable

from speechlm.base.errors import SpeechlmError


def call_in_fork(fn: Callable[[], bytes], what: str) -> bytes:
    """``fn()`` run in a forked child (where ``os.fork`` exists; else here). A
    :class:`SpeechlmError` in the child is raised again here with its message; ``what`` names
    the work in the message when the child dies without an answer."""
    if not hasattr(os, "fork"):
        return fn()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: run once, send, exit
        os.close(read_fd)
        code = 0
        try:
            payload = b"O" + fn()
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            payload, code = b"E" + str(e).encode("utf-8", "replace"), 1
        try:
            with os.fdopen(write_fd, "wb") as out:
                out.write(payload)
        finally:
            os._exit(code)  # no atexit handlers or buffered output of the parent's
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as inp:
        payload = inp.read()
    _, status = os.waitpid(pid, 0)
    if payload[:1] == b"O" and os.waitstatus_to_exitcode(status) == 0:
        return payload[1:]
    if payload[:1] == b"E":
        raise SpeechlmError(payload[1:].decode("utf-8", "replace"))
    raise SpeechlmError(f"{what} died (wait status {status}) without output")
