"""The one exception type that reaches the user as a one-line message (no traceback unless debug=true), and
the one way optional dependencies are imported: a missing one names the extra that installs it."""
from __future__ import annotations

import importlib
from types import ModuleType


class DistillError(Exception):
    """A problem the user can fix: the message names what is wrong, where, and what to do."""


def require(extra: str, what: str, *modules: str) -> list[ModuleType]:
    """Import `modules` (optional dependencies that `what` needs); if one is missing, a DistillError that
    names it and `pip install 'distill[<extra>]'`."""
    try:
        return [importlib.import_module(name) for name in modules]
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        raise DistillError(f"{what} needs {' and '.join(modules)} ({missing} is not installed): "
                           f"pip install 'distill[{extra}]'") from e
