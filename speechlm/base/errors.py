"""The one exception type users see: a clear message naming the file/key and what to do."""


class SpeechlmError(Exception):
    """Bad input or configuration. The CLI prints the message alone (no traceback) and exits 2."""
