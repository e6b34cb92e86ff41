"""The zygote that `--workers N` forks its SDK workers from (pipeline/sdk_worker.py): a client gets
its forked worker's exit status back, and falls back to running the worker itself where the
zygote cannot serve. (tests/test_e2e.py checks that a real run's two workers are forked and
that its shards equal the in-process run's; tests/test_output_safety.py that Ctrl-C, SIGTERM and
SIGKILL leave no worker behind.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline import sdk_worker
from pipeline.sdk_worker import FORKED_LINE, RUNNER_PID_ENV

ROOT = Path(__file__).resolve().parent.parent


def _zygote(tmp_path):
    path = str(tmp_path / "z.sock")
    env = {**os.environ, RUNNER_PID_ENV: str(os.getpid())}
    env.pop(sdk_worker.ZYGOTE_ENV, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.sdk_worker", "--zygote", path],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, path


def test_a_client_gets_its_forked_workers_exit_status(tmp_path, monkeypatch):
    proc, path = _zygote(tmp_path)
    try:
        # a worker with no runner to talk to (no control endpoint) fails: its status comes back
        for k in ("CONTROL_API_SERVICE_DESCRIPTOR", "LOGGING_API_SERVICE_DESCRIPTOR", "CURATE_LOG_FILE"):
            monkeypatch.delenv(k, raising=False)
        t = time.monotonic()
        code = sdk_worker._forked_worker(f"{proc.pid}:{path}")
        assert code is not None and code != 0
        assert time.monotonic() - t < 120
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert FORKED_LINE in err, err


def test_without_a_zygote_the_client_runs_the_worker_itself(tmp_path):
    proc, path = _zygote(tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    t = time.monotonic()
    assert sdk_worker._forked_worker(f"{proc.pid}:{path}") is None  # dead before it listened or served
    assert sdk_worker._forked_worker(f"{2**22 + 12345}:{tmp_path / 'none.sock'}") is None
    assert sdk_worker._forked_worker("not-a-spec") is None
    assert time.monotonic() - t < 5
