"""The SDK worker process `curate run --workers N` starts, in place of Beam's own
`python -m apache_beam.runners.worker.sdk_worker_main` (which it then runs as is).

Two differences, both about stopping: a worker ignores SIGINT, so a Ctrl-C at the terminal (sent
to the whole process group) reaches only the runner process, which stops its workers itself
(`pipeline.runner.stop_workers`) and reports the interrupt in one line; and on Linux a worker
dies with the runner process (PR_SET_PDEATHSIG), even one killed with SIGKILL, instead of waiting
for its gRPC channel to time out.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <sys/prctl.h>
RUNNER_PID_ENV = "CURATE_RUNNER_PID"


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the runner's stop_workers is all there is
        pass
    runner = os.environ.get(RUNNER_PID_ENV)
    if runner and runner.isdigit() and os.getppid() != int(runner):
        sys.exit(1)  # the runner died before prctl took effect
    from apache_beam.runners.worker import sdk_worker_main
    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    main()
