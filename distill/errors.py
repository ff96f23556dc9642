"""The one exception type that reaches the user as a one-line message (no traceback unless debug=true), and
the one way optional dependencies are imported: a missing one names the extra that installs it."""
from __future__ import annotations

import errno
import importlib
from types import ModuleType

NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class DistillError(Exception):
    """A problem the user can fix: the message names what is wrong, where, and what to do, on one line."""

    def __init__(self, message: str = "", *args):
        if isinstance(message, str):  # a cell or column name quoted from the user's file may hold a line break
            message = printable(message.strip())  # or control bytes: shown escaped, as \n or \x00
        super().__init__(message, *args)


def printable(text: str) -> str:
    """`text` on one line with nothing a terminal would act on: line breaks and control characters escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def require(extra: str, what: str, *modules: str) -> list[ModuleType]:
    """Import `modules` (optional dependencies that `what` needs); if one is missing, a DistillError that
    names it and `pip install 'distill[<extra>]'`."""
    try:
        return [importlib.import_module(name) for name in modules]
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        raise DistillError(f"{what} needs {' and '.join(modules)} ({missing} is not installed): "
                           f"pip install 'distill[{extra}]'") from e


def no_room(e: BaseException) -> bool:
    """A full disk (or a file-size limit), as Python, torch's writer or safetensors' Rust writer say it."""
    if isinstance(e, OSError):
        return e.errno in NO_ROOM
    text = str(e)
    return any(f"os error {n}" in text for n in NO_ROOM) or "No space left on device" in text or (
        "PytorchStreamWriter failed writing file" in text) or "database or disk is full" in text  # SQLite
