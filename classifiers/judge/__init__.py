"""The Llama judge: rubric prompts, expected-score arithmetic, vLLM and OpenAI backends,
judge labels for distillation. No Beam import; vllm and transformers are imported only
when a judge is built."""

from .errors import JudgeError, QualityConfigError
from .labels import (
    LABELS_SCHEMA,
    label_records,
    label_row,
    labelled_keys,
    labels_table,
    read_labels,
    text_hash,
    write_labels,
)
from .params import QualityParams
from .prompts import RUBRICS, PromptBuilder, Rubric, get_rubric
from .scoring import (
    JUDGE_ERROR,
    OFF_FORMAT,
    QualityResult,
    Scorer,
    result_from_probabilities,
)

__all__ = [
    "JUDGE_ERROR",
    "LABELS_SCHEMA",
    "OFF_FORMAT",
    "RUBRICS",
    "JudgeError",
    "PromptBuilder",
    "QualityResult",
    "QualityConfigError",
    "QualityParams",
    "Rubric",
    "Scorer",
    "get_rubric",
    "label_records",
    "label_row",
    "labelled_keys",
    "labels_table",
    "read_labels",
    "result_from_probabilities",
    "text_hash",
    "write_labels",
]
