"""The one exception type users see: a clear message naming the file/key and what to do."""


class SpeechlmError(Exception):
    """Bad input or configuration. The CLI prints the message alone (no traceback) and exits 2."""


def user_message(error: SpeechlmError) -> str:
    """The message to show for ``error``, whole. One raised in a DataLoader worker process comes
    back wrapped in the worker's traceback ("Caught SpeechlmError in DataLoader worker ..."): the
    message is what follows the traceback's last ``SpeechlmError:``."""
    text = str(error)
    marker = "SpeechlmError: "
    if text.startswith("Caught SpeechlmError in DataLoader worker") and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text
