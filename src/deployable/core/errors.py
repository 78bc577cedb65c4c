"""User-facing errors.

A :class:`DeployableError` is something the user can fix. The CLI prints it as one line and exits with code 2;
the traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DeployableError(Exception):
    """An error the user can fix: bad config, missing file, unknown plugin, missing optional dependency."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(DeployableError):
    """The configuration file is invalid."""


class DataError(DeployableError):
    """A data file is missing, unreadable, or does not match the config."""


class ModelError(DeployableError):
    """A model file is missing, unreadable, or does not produce what the config says."""


class MissingDependencyError(DeployableError):
    """An optional dependency is needed for the requested feature."""


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to ``word`` by edit similarity, or None when nothing is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A ``did you mean 'x'?`` hint, or a list of the valid choices when nothing is close."""
    candidates = sorted(set(candidates))
    match = closest(word, candidates)
    if match is not None:
        return f"did you mean '{match}'?"
    return "valid: " + ", ".join(repr(c) for c in candidates)
