"""fastText, without the warnings it prints to stderr on every load and training (its Python
wrapper's `eprint`: "load_model does not return WordVectorModel or SupervisedModel any more
..."), which would interleave with a run's progress and say nothing a user can act on."""

from __future__ import annotations

from pathlib import Path


def _silent(*_args, **_kwargs) -> None:
    return None


def fasttext_module():
    """The `fasttext` module, its warnings off."""
    import fasttext

    fasttext.FastText.eprint = _silent
    return fasttext


def load_model(path: str | Path):
    return fasttext_module().load_model(str(path))
