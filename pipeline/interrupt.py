"""Ctrl-C (SIGINT) and SIGTERM during `curate run`: one line on stderr, exit code 128 + signal
(130 for Ctrl-C), every worker process stopped, nothing of the run left behind.

The work is done in the signal handler itself, then the process exits (os._exit): Beam's runner,
unwound by an exception, would first wait for its workers and the bundle in flight (seconds to
minutes; the workers ignore SIGINT, see pipeline/sdk_worker.py, so that a terminal's Ctrl-C
reaches only this process). The handler stops the SDK worker processes, runs the cleanups
registered by the run (its staging directory, Beam's temporary directory), writes the one line
and exits. What the dying runner would print meanwhile (threads that see their worker die,
gRPC's C core) goes to /dev/null.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """Context manager for the main thread (elsewhere it installs nothing). `cleanups` run on a
    signal, in order; `state()` says in a few words what became of the output."""

    def __init__(self):
        self.old: dict = {}
        self.fired: int | None = None
        self.cleanups: list[Callable[[], None]] = []
        self.state: Callable[[], str] = lambda: "nothing was written"

    def __enter__(self) -> Interrupts:
        from pipeline import runner  # imported now: never import inside the handler

        self._stop_workers = runner.stop_workers
        self._remove_tempdirs = runner.remove_tempdirs
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self.old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        if self.fired is not None:  # a second Ctrl-C does not cut the cleanup short
            return
        self.fired = signum
        self.exit(signum)

    def exit(self, signum: int) -> None:
        """Stop everything, clean up, write the one line, exit 128 + signum."""
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        logging.disable(logging.CRITICAL)
        threading.excepthook = lambda _args: None
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        message = "stopped"
        try:
            for fn in (self._stop_workers, *self.cleanups, self._remove_tempdirs):
                try:
                    fn()
                except Exception:  # noqa: BLE001 - clean up what can be
                    pass
            message = self.state()
        except Exception:  # noqa: BLE001
            pass
        finally:
            os.dup2(saved, 2)
        try:
            os.write(2, f"interrupted ({signal.Signals(signum).name}): {message}\n".encode(errors="replace"))
            sys.stdout.flush()
        finally:
            os._exit(128 + signum)

    def __exit__(self, *exc) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)
        self.old = {}
