"""Heuristic filter stage: Gopher / C4 / FineWeb rules for text, StarCoder-style rules for
code. Keeps the computed signals on the document (annotate mode writes them as columns)."""

from __future__ import annotations

from classifiers.heuristics import evaluate
from pipeline.stages.base import BatchStage, Doc, with_drop


class HeuristicsStage(BatchStage):
    name = "heuristics"

    def apply(self, docs: list[Doc]) -> list[Doc]:
        out = []
        for d in docs:
            # filter mode needs only the first failing rule; annotate mode writes every signal
            res = evaluate(
                d["text"], d.get("language") or "", d["kind"], self.params, first_failure_only=not self.annotate
            )
            new = {**d, "signals": res.signals if self.annotate else None}
            out.append(with_drop(new, self.name, f"heuristics/{res.rule}") if res.rule else new)
        return out
