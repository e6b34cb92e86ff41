"""Parameters of the `quality` stage: the Llama judge (vLLM in-process or any
OpenAI-compatible server) or the distilled fastText classifier.

The defaults here are the product's defaults; the pipeline config embeds this model as
``stages.quality``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import QualityConfigError

RubricName = Literal["llama3_requirements", "fineweb_edu"]


class QualityParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Off by default, unlike other stages: it needs a model (judge weights or a
    # distilled fastText model) that the default configuration cannot ship.
    enabled: bool = False
    classifier: Literal["llama_judge", "fasttext"] = "fasttext"
    backend: Literal["vllm", "openai"] = "vllm"

    # --- the judge ---------------------------------------------------------------
    # Local Hugging Face model directory. Both backends read the tokenizer (and chat
    # template) from it to build and truncate prompts; the vllm backend also loads
    # the weights from it.
    model: str | None = None
    # Name the OpenAI-compatible server serves the model under (its
    # --served-model-name); None: the `model` string, which is what
    # `vllm.entrypoints.openai.api_server --model DIR` serves by default.
    served_model_name: str | None = None
    rubric: RubricName = "llama3_requirements"
    # `chat` wraps the rubric in the model's chat template (Llama-2-chat's [INST] format when
    # the tokenizer has none); `plain` is for base models. None: `chat` when the tokenizer
    # carries a chat template, else `plain`.
    prompt_format: Literal["chat", "plain"] | None = None
    max_doc_tokens: int = Field(1024, gt=0)
    batch_size: int = Field(256, gt=0)
    # A judged document whose score tokens together hold less probability than this
    # did not answer in the rubric's format: flagged `judge_off_format`, score None.
    min_candidate_mass: float = Field(0.5, ge=0.0, le=1.0)
    on_error: Literal["fail", "null"] = "fail"

    # --- openai backend ----------------------------------------------------------
    base_url: str = "http://127.0.0.1:8000/v1"
    # Name of the environment variable holding the API key (never the key itself);
    # None: no Authorization header.
    api_key_env: str | None = None
    max_concurrency: int = Field(16, gt=0)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0)
    # First wait before a retry; it doubles on each further retry.
    retry_backoff_s: float = Field(1.0, ge=0)

    # --- vllm backend engine knobs -----------------------------------------------
    # On a machine without a GPU (vLLM's CPU build) the judge sets what the engine needs
    # there itself: no engine subprocess, no torch.compile, eager mode, float32 for "auto"
    # and a KV cache sized from the model (vllm_backend.cpu_engine_defaults).
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    # Exact KV-cache size; None: derived from gpu_memory_utilization (GPU), or from the
    # model's shape and max_model_len (CPU).
    kv_cache_memory_bytes: int | None = Field(None, gt=0)
    enforce_eager: bool = False
    dtype: str = "auto"
    max_model_len: int = Field(4096, gt=0)  # Llama 2's context
    tensor_parallel_size: int = Field(1, gt=0)
    # Tokens the engine prefills per step (larger: fewer, fuller steps); None: vLLM's.
    max_num_batched_tokens: int | None = Field(None, gt=0)

    # --- distilled fastText classifier -------------------------------------------
    model_path: str | None = None

    # --- decision ----------------------------------------------------------------
    # Keep a document when its score (0..5) is >= the threshold of its bucket
    # (`en`, `code`, a language code), else the "default" entry.
    threshold: dict[str, float] = Field(default_factory=lambda: {"default": 2.5})
    # classifier 'fasttext': decide at the thresholds `curate distill` calibrated for the
    # model (in `<model_path>.report.json`: it keeps the share the judge keeps at
    # `threshold`); false, or a model without them: at `threshold` itself.
    calibrated_threshold: bool = True

    @field_validator("threshold")
    @classmethod
    def _threshold_has_default(cls, value: dict[str, float]) -> dict[str, float]:
        if "default" not in value:
            raise ValueError('threshold needs a "default" entry')
        bad = {k: v for k, v in value.items() if not 0.0 <= v <= 5.0}
        if bad:
            raise ValueError(f"thresholds must lie in 0..5, got {bad}")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    # ------------------------------------------------------------------------------
    def threshold_for(self, bucket: str) -> float:
        return self.threshold.get(bucket, self.threshold["default"])

    def keeps(self, score: float | None, bucket: str) -> bool:
        """The stage's decision: a missing score (flagged) is never a pass."""
        return score is not None and score >= self.threshold_for(bucket)

    @property
    def judge_model_name(self) -> str:
        """What the judge labels are attributed to (and the server is asked for)."""
        return self.served_model_name or self.model or ""

    def problems(self) -> list[str]:
        """Everything that stops this configuration from running, one line each.

        Empty when disabled. Checks that the configured model files exist, so call it
        where the stage runs (a worker), not only where the config is written.
        """
        if not self.enabled:
            return []
        out: list[str] = []
        if self.classifier == "llama_judge":
            if not self.model:
                out.append(
                    "quality: classifier 'llama_judge' needs `model`, a local Hugging Face "
                    "model directory (the judge's tokenizer, and weights for backend 'vllm')"
                )
            elif not Path(self.model).is_dir():
                out.append(f"quality: judge model directory does not exist: {self.model}")
            if self.api_key_env and self.backend == "openai":
                if self.api_key_env not in os.environ:
                    out.append(f"quality: environment variable {self.api_key_env} (api_key_env) is not set")
        else:
            if not self.model_path:
                out.append("quality: classifier 'fasttext' needs `model_path`, a model trained by `curate distill`")
            elif not Path(self.model_path).is_file():
                out.append(f"quality: fastText model file does not exist: {self.model_path}")
        return out

    def check(self) -> None:
        """Raise QualityConfigError with a one-line message if `problems()` finds any."""
        problems = self.problems()
        if problems:
            raise QualityConfigError("; ".join(problems))
