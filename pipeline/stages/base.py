"""What every per-document stage shares: batches in, batches out, one drop per document.

Documents travel through the first pass as lists (a few hundred at a time) so that Beam's
per-element overhead stays off the hot path. A stage never mutates its input: it returns new
document dicts. A document keeps the first drop it gets (`drop`: a `classifiers.decisions.Drop`); later
stages skip dropped documents in filter mode and still compute their columns in annotate mode.
Every drop increments the Beam counter `stage/rule` where it is decided.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from classifiers.decisions import Drop
from pipeline import progress
from pipeline.records import pack, unpack  # noqa: F401 - the stages' packing

Doc = dict[str, Any]

COUNTER_NAMESPACE = "curate"


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim; a no-op elsewhere).
    (No gc.collect() first: the models go by reference count, and a full collection of the
    run's heap cost ~80 ms a call.)"""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Counters:
    """Beam counters named `stage/rule`, created lazily (the same code runs in and out of Beam)."""

    def __init__(self) -> None:
        self._c: dict[str, Any] = {}

    def inc(self, name: str, n: int = 1) -> None:
        c = self._c.get(name)
        if c is None:
            c = self._c[name] = Metrics.counter(COUNTER_NAMESPACE, name)
        c.inc(n)
        progress.add(name, n)  # the live display of `curate run` (pipeline/progress.py)


def dropped(doc: Doc) -> bool:
    return doc.get("drop") is not None


def with_drop(doc: Doc, stage: str, rule: str, detail: str | None = None) -> Doc:
    """`rule` is the full `stage/rule` name (e.g. `langid/low_score`)."""
    return {**doc, "drop": Drop(stage, rule, detail)}


class BatchStage(beam.DoFn):
    """Subclasses set `name`, load models in `setup()` (naming the attributes that hold them in
    `models`) and implement `apply(docs) -> docs`, given only the documents they must process
    (all of them in annotate mode).

    `release_models` (graph.first_pass sets it for an in-process run with one worker, where a
    stage's one bundle is the whole corpus): the models are let go when the bundle ends, so that
    the last pass (re-read, merge, write) does not carry them: the quick corpus's in-process peak
    ~560 -> 435-478 MB. Should another bundle come, `process` loads them again."""

    name = "stage"
    models: tuple[str, ...] = ()
    release_models = False

    def __init__(self, params: Any, annotate: bool):
        self.params, self.annotate = params, annotate
        self.counters = Counters()

    def apply(self, docs: list[Doc]) -> list[Doc]:
        raise NotImplementedError

    def finish_bundle(self) -> None:
        if self.release_models and self.models:
            self.teardown()
            for name in self.models:
                setattr(self, name, None)
            self._released = True
            release_free_memory()

    def process(self, batch: list[Doc]) -> Iterable[list[Doc]]:
        if getattr(self, "_released", False):
            self.setup()
            self._released = False
        todo = [i for i, d in enumerate(batch) if self.annotate or not dropped(d)]
        if not todo:
            yield batch
            return
        out = list(batch)
        for i, new in zip(todo, self.apply([batch[i] for i in todo])):
            if batch[i].get("drop") is not None:  # annotate mode: the first drop stands
                new = {**new, "drop": batch[i]["drop"]}
            elif new.get("drop") is not None:
                self.counters.inc(new["drop"][1])
            out[i] = new
        yield out
