"""The one exception type that reaches the user as a one-line message (no traceback unless debug=true)."""


class DistillError(Exception):
    """A problem the user can fix: the message names what is wrong, where, and what to do."""
