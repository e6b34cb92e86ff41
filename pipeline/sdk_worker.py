"""The SDK worker process `curate run --workers N` starts, in place of Beam's own
`python -m apache_beam.runners.worker.sdk_worker_main` (which it then runs as is).

Two differences, both about stopping: a worker ignores SIGINT, so a Ctrl-C at the terminal (sent
to the whole process group) reaches only the runner process, which stops its workers itself
(`pipeline.runner.stop_workers`) and reports the interrupt in one line; and on Linux a worker
dies with the runner process (PR_SET_PDEATHSIG), even one killed with SIGKILL, instead of waiting
for its gRPC channel to time out.

Its stdout and stderr (Beam's start-up warnings, a crash's traceback) go to the run's log file,
OUT/logs/run.log, when `curate run` names one (pipeline/progress.py); the terminal shows curate's
lines only.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from pipeline import progress
from pipeline.progress import LOG_FILE_ENV

PR_SET_PDEATHSIG = 1  # <sys/prctl.h>
RUNNER_PID_ENV = "CURATE_RUNNER_PID"


def _to_log(path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return  # the run's log cannot be opened: keep the terminal
    for std in (1, 2):
        os.dup2(fd, std)
    os.close(fd)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the runner's stop_workers is all there is
        pass
    runner = os.environ.get(RUNNER_PID_ENV)
    if runner and runner.isdigit() and os.getppid() != int(runner):
        sys.exit(1)  # the runner died before prctl took effect
    if os.environ.get(LOG_FILE_ENV):
        _to_log(os.environ[LOG_FILE_ENV])
    from apache_beam.runners.worker import sdk_worker_main

    try:
        sdk_worker_main.main(sys.argv)
    finally:  # its last progress counts, before the runner (waiting for this exit) reads them
        progress.flush()


if __name__ == "__main__":
    main()
