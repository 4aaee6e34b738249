"""Errors that carry what an operator needs: which host, which field, what to do."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located by host (or "cluster") and data key."""

    host: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.host}: {self.field}: {self.message}"


class InputError(Exception):
    """Bad input: exit code 2, nothing touched. Holds every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """A ' (did you mean X?)' suffix when a close match exists, else ''."""
    import difflib

    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def one_line(error: BaseException) -> str:
    """An exception as one line. pyinfra's loaders wrap what an inventory, group_data or deploy
    file raised (``UnexpectedExternalError``: ``.exception`` and ``.filename``, and a ``str()``
    that itself fails); that is unwrapped and named with its file."""
    inner = getattr(error, "exception", None)
    if isinstance(inner, BaseException):
        where = getattr(error, "filename", None) or "the file"
        return f"{where}: {type(inner).__name__}: {_text(inner)}"
    return f"{type(error).__name__}: {_text(error)}"


def _text(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:  # pyinfra's CLI exceptions need attributes they do not always have
        text = ""
    return " ".join(text.split()) or "(no message)"
