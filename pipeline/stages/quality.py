"""Quality stage: the Llama judge (vLLM in process, or an OpenAI-compatible server) or the
distilled fastText classifier scores each document 0..5; below the bucket's threshold is a
drop. Off-format answers and judge errors are never trusted as scores.

The distilled classifier decides at the thresholds `curate distill` calibrated for it (they
keep the share the judge keeps at `stages.quality.threshold`; written beside the model)
unless `stages.quality.calibrated_threshold` is false; the manifest records which
(`stages.quality.threshold`, `stages.quality.threshold_source`)."""

from __future__ import annotations

import logging

from classifiers.judge import QualityParams
from classifiers.quality import make_scorer
from pipeline.stages.base import BatchStage, Doc, with_drop

log = logging.getLogger(__name__)


def decision(params: QualityParams) -> tuple[QualityParams, dict]:
    """The parameters the stage decides with (their `threshold` is the one used), and what
    the manifest says about it: {"threshold": {...}, "threshold_source": "..."}."""
    if params.classifier == "fasttext" and params.model_path:
        if not params.calibrated_threshold:
            source = "config: stages.quality.threshold (calibrated_threshold is false)"
        else:
            from classifiers.quality_fasttext import REPORT_SUFFIX, read_calibration

            cal = read_calibration(params.model_path)
            if cal:
                source = f"calibrated by curate distill: {params.model_path}{REPORT_SUFFIX}"
                if cal.get("judge_threshold") != params.threshold:
                    # The config's judge thresholds changed since distilling: say so.
                    source += (
                        f"; calibrated for judge thresholds {cal.get('judge_threshold')}, not the"
                        f" configured {params.threshold} (distill again to recalibrate)"
                    )
                threshold = dict(cal["threshold"])
                return (
                    params.model_copy(update={"threshold": threshold}),
                    {"threshold": threshold, "threshold_source": source},
                )
            source = (
                "config: stages.quality.threshold (the model has no calibrated thresholds beside"
                " it; distill it again to calibrate)"
            )
    else:
        source = "config: stages.quality.threshold"
    return params, {"threshold": dict(params.threshold), "threshold_source": source}


class QualityStage(BatchStage):
    name = "quality"
    models = ("scorer",)

    def setup(self) -> None:
        self.scorer = make_scorer(self.params)
        self.decide, info = decision(self.params)
        log.info("quality: keep thresholds %s (%s)", info["threshold"], info["threshold_source"])

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
            elif not self.decide.keeps(r.score, d["bucket"]):
                new = with_drop(new, self.name, "quality/low_score", f"{r.score:.3f}")
            out.append(new)
        return out
