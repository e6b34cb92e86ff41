"""The scorer interface and the expected-score arithmetic shared by every backend.

quality_score = sum_s s * P(s) / sum_s P(s) over the rubric's candidate answers s, read
from the log-probabilities of the first answer token (one token generated, greedy).
The denominator, the candidates' total probability mass, says whether the judge answered
in the rubric's format at all: below `min_candidate_mass` the result is flagged
`judge_off_format` and carries no score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from classifiers.scorer import JUDGE_ERROR, OFF_FORMAT, Flag, QualityResult, Scorer  # noqa: F401 - the judge's API


def judge_error() -> QualityResult:
    return QualityResult(None, 0.0, {}, JUDGE_ERROR)


def label_probabilities(
    token_logprobs: Mapping[int, float], candidate_token_ids: Mapping[str, Sequence[int]]
) -> dict[str, float]:
    """Sum the probabilities of each label's tokens ("yes" + "Yes"); absent tokens: 0."""
    out: dict[str, float] = {}
    for label, ids in candidate_token_ids.items():
        out[label] = sum(math.exp(token_logprobs[t]) for t in ids if t in token_logprobs)
    return out


def result_from_probabilities(
    probabilities: Mapping[str, float],
    values: Mapping[str, float],
    min_candidate_mass: float,
) -> QualityResult:
    """Expected score over the candidates, normalised by their mass; flag low mass."""
    probs = {label: float(probabilities.get(label, 0.0)) for label in values}
    mass = sum(probs.values())
    if mass <= 0.0 or mass < min_candidate_mass:
        return QualityResult(None, mass, probs, OFF_FORMAT)
    score = sum(values[label] * p for label, p in probs.items()) / mass
    lo, hi = min(values.values()), max(values.values())
    return QualityResult(min(hi, max(lo, score)), mass, probs, None)
