"""The scorer interface and the expected-score arithmetic shared by every backend.

quality_score = sum_s s * P(s) / sum_s P(s) over the rubric's candidate answers s, read
from the log-probabilities of the first answer token (one token generated, greedy).
The denominator, the candidates' total probability mass, says whether the judge answered
in the rubric's format at all: below `min_candidate_mass` the result is flagged
`judge_off_format` and carries no score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    from .params import QualityParams

Flag = Literal["judge_off_format", "judge_error"]
OFF_FORMAT: Flag = "judge_off_format"
JUDGE_ERROR: Flag = "judge_error"


@dataclass(frozen=True)
class JudgeResult:
    """One document's verdict.

    score: 0..5, or None when flagged. candidate_mass: total probability of the
    candidate answers (1.0 for the fastText classifier, whose classes are exhaustive).
    probabilities: label -> probability, unnormalised (as the model gave them).
    """

    score: float | None
    candidate_mass: float
    probabilities: dict[str, float] = field(default_factory=dict)
    flag: Flag | None = None


def judge_error() -> JudgeResult:
    return JudgeResult(None, 0.0, {}, JUDGE_ERROR)


def label_probabilities(
    token_logprobs: Mapping[int, float], candidate_token_ids: Mapping[str, Sequence[int]]
) -> dict[str, float]:
    """Sum the probabilities of each label's tokens ("yes" + "Yes"); absent tokens: 0."""
    out: dict[str, float] = {}
    for label, ids in candidate_token_ids.items():
        out[label] = sum(
            math.exp(token_logprobs[t]) for t in ids if t in token_logprobs
        )
    return out


def result_from_probabilities(
    probabilities: Mapping[str, float],
    values: Mapping[str, float],
    min_candidate_mass: float,
) -> JudgeResult:
    """Expected score over the candidates, normalised by their mass; flag low mass."""
    probs = {label: float(probabilities.get(label, 0.0)) for label in values}
    mass = sum(probs.values())
    if mass <= 0.0 or mass < min_candidate_mass:
        return JudgeResult(None, mass, probs, OFF_FORMAT)
    score = sum(values[label] * p for label, p in probs.items()) / mass
    lo, hi = min(values.values()), max(values.values())
    return JudgeResult(min(hi, max(lo, score)), mass, probs, None)


class Scorer(Protocol):
    """What the Beam stage calls: one object per worker, built in DoFn.setup."""

    def score(self, texts: list[str]) -> list[JudgeResult]: ...

    def close(self) -> None: ...


def make_scorer(params: "QualityParams") -> Scorer:
    """Build the configured scorer; raises QualityConfigError (one line) if it cannot."""
    # Checked as if enabled: asking for a scorer means the stage is meant to run.
    params.model_copy(update={"enabled": True}).check()
    if params.classifier == "fasttext":
        from classifiers.quality_fasttext import FastTextQualityScorer

        return FastTextQualityScorer(params.model_path)  # type: ignore[arg-type]
    if params.backend == "vllm":
        from .vllm_backend import VllmJudge

        return VllmJudge(params)
    from .openai_backend import OpenAIJudge

    return OpenAIJudge(params)
