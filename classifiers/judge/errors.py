"""Errors of the quality stage; their messages are single lines a CLI can print as is."""

from __future__ import annotations


def one_line(message: object) -> str:
    """Collapse whitespace (tracebacks, server bodies) into one line."""
    return " ".join(str(message).split())


class QualityConfigError(ValueError):
    """The quality configuration cannot run (missing model, missing file, ...)."""

    def __init__(self, message: object) -> None:
        super().__init__(one_line(message))


class JudgeError(RuntimeError):
    """The judge could not score (server down after retries, engine failure, ...)."""

    def __init__(self, message: object) -> None:
        super().__init__(one_line(message))
