"""The quality stage's scorer, built from its params (stages.quality): the distilled fastText classifier, or the Llama
judge on vLLM in process or on an OpenAI-compatible server (vllm itself is imported only when
a VllmJudge is built)."""

from __future__ import annotations

from classifiers.judge.openai_backend import OpenAIJudge
from classifiers.judge.params import QualityParams
from classifiers.judge.vllm_backend import VllmJudge
from classifiers.quality_fasttext import FastTextQualityScorer
from classifiers.scorer import Scorer


def make_scorer(params: QualityParams) -> Scorer:
    """Build the configured scorer; raises QualityConfigError (one line) if it cannot."""
    # Checked as if enabled: asking for a scorer means the stage is meant to run.
    params.model_copy(update={"enabled": True}).check()
    if params.classifier == "fasttext":
        return FastTextQualityScorer(params.model_path)  # type: ignore[arg-type]
    if params.backend == "vllm":
        return VllmJudge(params)
    return OpenAIJudge(params)
