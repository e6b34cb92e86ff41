"""The judge on any OpenAI-compatible completions server that speaks vLLM's extensions.

`python -m vllm.entrypoints.openai.api_server --model DIR --enable-prefix-caching
--enable-prompt-tokens-details`, or a fleet of them behind a load balancer. Each document
is one POST to `{base_url}/completions` with the prompt as token ids (built and truncated
locally with the model's tokenizer, exactly as the in-process backend builds them),
`max_tokens=1`, `temperature=0`, and the same per-token request the in-process engine
gets: `logprob_token_ids` (the candidate answer tokens: their exact log-probabilities,
whatever their rank) with `return_tokens_as_token_ids` (keys "token_id:N"). Answers are
matched on token ids, never on decoded text: Llama 2's " yes" is `▁yes` (4874), and the
mid-word `yes` (3582) is another token. A server that does not return every candidate's
log-probability (an older vLLM, another server) is an error, not a zero.

Requests run on a thread pool of `max_concurrency` workers, each with `timeout_s`, and
are retried `max_retries` times with exponential backoff on connection errors, timeouts,
HTTP 408/429/5xx. Documents go to `base_url` and nowhere else: redirects are refused and
proxy environment variables ignored. The API key is read from the environment variable
named by `api_key_env` at each request; it is never kept on the object or logged.

Standard library only (urllib + concurrent.futures).
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .errors import JudgeError, one_line
from .params import QualityParams
from .prompts import BuiltPrompt, PromptBuilder
from .scoring import QualityResult, judge_error, label_probabilities, result_from_probabilities

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class _Retryable(Exception):
    """A failure worth another try (connection, timeout, overload)."""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401, ANN001
        return None  # the 3xx then surfaces as an HTTPError


class OpenAIJudge:
    """Scorer on an OpenAI-compatible server. `close()` stops its worker threads."""

    def __init__(self, params: QualityParams, *, check_server: bool = True) -> None:
        if not params.model:
            raise JudgeError("quality: the openai judge needs `model` (a local tokenizer directory)")
        self.params = params
        self.base_url = params.base_url.rstrip("/")
        self.model_name = params.judge_model_name
        self.builder = PromptBuilder.for_params(params)
        self.rubric = self.builder.rubric
        self._candidate_ids = sorted({t for ids in self.builder.candidate_token_ids.values() for t in ids})
        if params.api_key_env and params.api_key_env not in os.environ:
            raise JudgeError(f"environment variable {params.api_key_env} (api_key_env) is not set")
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _RefuseRedirects())
        self._pool = ThreadPoolExecutor(max_workers=params.max_concurrency, thread_name_prefix="quality-judge")
        self._closed = False
        self._lock = threading.Lock()
        self.stats = {
            "documents": 0,
            "requests": 0,
            "retries": 0,
            "prompt_tokens": 0,
            "cached_prompt_tokens": 0,
            "truncated_documents": 0,
        }
        if check_server:
            try:
                self.check_server()
            except BaseException:
                self.close()
                raise

    # ------------------------------------------------------------------ HTTP
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.params.api_key_env:
            key = os.environ.get(self.params.api_key_env)
            if not key:
                raise JudgeError(f"environment variable {self.params.api_key_env} (api_key_env) is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _call(self, method: str, path: str, payload: dict | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=self._headers())
        try:
            with self._opener.open(request, timeout=self.params.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            try:
                detail = one_line(exc.read()[:300].decode("utf-8", "replace"))
            except Exception:  # noqa: BLE001
                detail = ""
            if exc.code in RETRY_STATUS:
                raise _Retryable(f"HTTP {exc.code} {detail}".strip()) from exc
            raise JudgeError(f"{method} {self.base_url}{path} -> HTTP {exc.code} {detail}") from exc
        except urllib.error.URLError as exc:
            raise _Retryable(str(exc.reason)) from exc
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, cut bodies
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise JudgeError(f"{method} {self.base_url}{path} returned invalid JSON") from exc

    def _with_retries(self, what: str, call: Callable[[], Any]) -> Any:
        attempts = self.params.max_retries + 1
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                with self._lock:
                    self.stats["retries"] += 1
                time.sleep(self.params.retry_backoff_s * 2 ** (attempt - 1))
            if self._closed:
                raise JudgeError(f"{what}: the judge was closed")
            try:
                return call()
            except _Retryable as exc:
                last = exc
        raise JudgeError(f"{what} failed after {attempts} attempts: {last}")

    # ------------------------------------------------------------------ checks
    def check_server(self) -> None:
        """Fail fast, in one line, when nothing serves the model at base_url."""
        try:
            listing = self._with_retries(f"GET {self.base_url}/models", lambda: self._call("GET", "/models"))
        except JudgeError as exc:
            if "HTTP 401" in str(exc) or "HTTP 403" in str(exc):
                key = f"the key in {self.params.api_key_env}" if self.params.api_key_env else "no key (set api_key_env)"
                raise JudgeError(f"the server at {self.base_url} refused {key}: {exc}") from exc
            raise JudgeError(f"no OpenAI-compatible server answers at {self.base_url}: {exc}") from exc
        try:
            served = [m["id"] for m in listing["data"]]
        except (KeyError, TypeError) as exc:
            raise JudgeError(f"{self.base_url}/models returned no model list") from exc
        if self.model_name not in served:
            raise JudgeError(
                f"the server at {self.base_url} does not serve {self.model_name!r} "
                f"(it serves: {', '.join(map(str, served)) or 'nothing'}); "
                "set served_model_name"
            )

    # ------------------------------------------------------------------ scoring
    def _score_one(self, prompt: BuiltPrompt) -> QualityResult:
        payload = {
            "model": self.model_name,
            "prompt": prompt.token_ids,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": 1,
            "logprob_token_ids": self._candidate_ids,
            "return_tokens_as_token_ids": True,
        }
        what = f"POST {self.base_url}/completions"
        response = self._with_retries(what, lambda: self._call("POST", "/completions", payload))
        try:
            top = response["choices"][0]["logprobs"]["top_logprobs"][0] or {}
            logprobs = {
                int(k.removeprefix("token_id:")): float(v)
                for k, v in top.items()
                if k.startswith("token_id:") and v is not None
            }
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise JudgeError(f"{what} returned no log-probabilities keyed by token id") from exc
        missing = [t for t in self._candidate_ids if t not in logprobs]
        if missing:
            raise JudgeError(
                f"{what} returned no log-probability for answer tokens {missing}: the server "
                "must support vLLM's logprob_token_ids and return_tokens_as_token_ids (vLLM >= 0.32)"
            )
        probs = label_probabilities(logprobs, self.builder.candidate_token_ids)
        usage = response.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        with self._lock:
            self.stats["documents"] += 1
            self.stats["requests"] += 1
            self.stats["prompt_tokens"] += int(usage.get("prompt_tokens") or len(prompt.token_ids))
            self.stats["cached_prompt_tokens"] += int(details.get("cached_tokens") or 0)
            self.stats["truncated_documents"] += int(prompt.truncated)
        return result_from_probabilities(probs, self.rubric.values, self.params.min_candidate_mass)

    def score(self, texts: list[str]) -> list[QualityResult]:
        if self._closed:
            raise JudgeError("the openai judge is closed")
        pool = self._pool
        results: list[QualityResult] = []
        size = self.params.batch_size
        for start in range(0, len(texts), size):
            prompts = self.builder.build(texts[start : start + size])
            futures: list[Future] = [pool.submit(self._score_one, p) for p in prompts]
            try:
                for future in futures:
                    try:
                        results.append(future.result())
                    except JudgeError:
                        if self.params.on_error == "fail":
                            raise
                        results.append(judge_error())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return results

    def close(self) -> None:
        self._closed = True
        pool = self.__dict__.pop("_pool", None)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> OpenAIJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
