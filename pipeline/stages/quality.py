"""Quality stage: the Llama judge (vLLM in process, or an OpenAI-compatible server) or the
distilled fastText classifier scores each document 0..5; below the bucket's threshold is a
drop. Off-format answers and judge errors are never trusted as scores."""
from __future__ import annotations

from classifiers.judge import make_scorer
from pipeline.stages.base import BatchStage, Doc, with_drop


class QualityStage(BatchStage):
    name = "quality"

    def setup(self) -> None:
        self.scorer = make_scorer(self.params)

    def teardown(self) -> None:
        scorer = getattr(self, "scorer", None)
        if scorer is not None:
            scorer.close()

    def apply(self, docs: list[Doc]) -> list[Doc]:
        results = self.scorer.score([d["text"] for d in docs])
        out = []
        for d, r in zip(docs, results):
            new = {**d, "quality_score": r.score, "quality_flag": r.flag}
            if r.flag:
                new = with_drop(new, self.name, f"quality/{r.flag}")
            elif not self.params.keeps(r.score, d["bucket"]):
                new = with_drop(new, self.name, "quality/low_score", f"{r.score:.3f}")
            out.append(new)
        return out
