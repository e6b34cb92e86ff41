"""What the quality stage calls, whichever model scores: the `Scorer` interface and its
per-document `QualityResult`. The Llama judge's backends (classifiers/judge/) and the distilled
fastText classifier (classifiers/quality_fasttext.py) implement it;
`classifiers.quality.make_scorer` builds the configured one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

# why a document has no score (the quality_flag column); the judge's, the classifier never flags
Flag = Literal["judge_off_format", "judge_error"]
OFF_FORMAT: Flag = "judge_off_format"
JUDGE_ERROR: Flag = "judge_error"


@dataclass(frozen=True)
class QualityResult:
    """One document's verdict.

    score: 0..5, or None when flagged. candidate_mass: total probability of the
    candidate answers (1.0 for the fastText classifier, whose classes are exhaustive).
    probabilities: label -> probability, unnormalised (as the model gave them).
    """

    score: float | None
    candidate_mass: float
    probabilities: dict[str, float] = field(default_factory=dict)
    flag: Flag | None = None


class Scorer(Protocol):
    """What the Beam stage calls: one object per worker, built in DoFn.setup."""

    def score(self, texts: list[str]) -> list[QualityResult]: ...

    def close(self) -> None: ...
