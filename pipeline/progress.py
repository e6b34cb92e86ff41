"""Live progress of `curate run`, and its log file.

Reporting (every process that runs the pipeline's DoFns: the runner process itself, or the SDK
worker processes of `--workers N`): each `Counters.inc` (pipeline/stages/base.py) also adds to a
small per-process tally here, and a daemon thread appends what was added since its last report
as one JSON line to `$CURATE_PROGRESS_DIR/<pid>.jsonl`, at most once a second. No I/O per
document, nothing when the variable is unset (a pipeline not started by `curate run`), and no
effect on the outputs.

Watching (the runner process): `Monitor` sets that variable (SDK workers inherit it), polls the
directory twice a second and shows the sums: on a terminal (stderr is a TTY) a `rich` live
display; otherwise one plain line every 10 s (`CURATE_PROGRESS_INTERVAL` seconds, for tests).
Shown: input files read of the total, documents read and per second, drops so far per stage,
the time since the command started and the read pass's estimated time left (from the bytes of
the files read). The first pass reads every file before dedup starts, so after it the display
says the run is in dedup, mixture and writing.

The log: `setup_logging` sends Python's logging (Beam's included, at INFO) to OUT/logs/run.log
and nothing of it to the terminal, which shows curate's own lines only. `--workers N`: the SDK
workers' stderr goes to the same file (`LOG_FILE_ENV`, read by pipeline/sdk_worker.py).
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter

PROGRESS_DIR_ENV = "CURATE_PROGRESS_DIR"
LOG_FILE_ENV = "CURATE_LOG_FILE"  # the run's log, for the SDK workers' stdout and stderr (pipeline/sdk_worker.py)
INTERVAL_ENV = "CURATE_PROGRESS_INTERVAL"  # seconds between plain lines (default PLAIN_S)
REPORT_S = 1.0  # a reporting process writes at most this often
POLL_S = 0.5
PLAIN_S = 10.0

STARTING = "starting (workers, models)"
FILES, BYTES, RECORDS, KEPT = "input/files", "input/bytes", "input/records", "output/kept"
# counters that count something other than a document leaving the run (pipeline/stages/*.py);
# every other `stage/rule` counter is one drop (or, under quarantine/, one quarantined record)
NOT_DROPS = frozenset(
    {
        FILES,
        BYTES,
        RECORDS,
        KEPT,
        "langid/lingua",
        "langid/lingua_changed",
        "langid/code_in_text",
        "minhash_dedup/giant_bucket",
        "minhash_dedup/cc_unconverged",
        "line_dedup/frequent_lines",
        "line_dedup/lines_removed",
    }
)


# ----------------------------------------------------------------------------- reporting side


class _Reporter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: Counter = Counter()
        self.first: float | None = None  # wall time of the first count in `pending`
        self.thread: threading.Thread | None = None

    def add(self, name: str, n: int) -> None:
        with self.lock:
            if self.first is None:
                self.first = time.time()
            self.pending[name] += n
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="curate-progress", daemon=True)
                self.thread.start()
                atexit.register(self.flush)  # an SDK worker's last counts: the runner waits for its exit

    def _loop(self) -> None:
        while True:
            time.sleep(REPORT_S)
            self.flush()

    def flush(self) -> None:
        with self.lock:
            pending, first = self.pending, self.first
            self.pending, self.first = Counter(), None
        where = os.environ.get(PROGRESS_DIR_ENV)
        if not pending or not where:
            return
        line = json.dumps({"t": first, "c": pending}, separators=(",", ":")).encode() + b"\n"
        try:  # one write of one line, appended: the reader never sees half a record it keeps
            fd = os.open(os.path.join(where, f"{os.getpid()}.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:  # the run is over (its directory removed): nothing to report to
            return
        try:
            os.write(fd, line)
        except OSError:
            pass
        finally:
            os.close(fd)


_REPORTER = _Reporter()


# An SDK worker inherits the variable at its start; the runner process sets it while a Monitor
# watches (a flag, not an environment lookup per count).
_ON = PROGRESS_DIR_ENV in os.environ


def add(name: str, n: int = 1) -> None:
    """Count `n` for `name` towards the live progress of the `curate run` that started this
    process (a no-op otherwise)."""
    if _ON:
        _REPORTER.add(name, n)


def file_read(size: int) -> None:
    """One input file read to its end (`size` bytes)."""
    add(FILES)
    add(BYTES, size)


def flush() -> None:
    """Report now what this process counted (the runner process, at the end of an in-process run)."""
    _REPORTER.flush()


# ----------------------------------------------------------------------------- watching side


def command_started() -> float:
    """Wall time this process started (Linux /proc), else when this module was imported."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        ticks = int(stat[stat.rfind(b")") + 2 :].split()[19])  # field 22: starttime, in clock ticks
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORTED


_IMPORTED = time.time()


def _duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(max(0.0, s)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Monitor:
    """The runner process's side: the reports' sums and their display (see the module doc).

    with Monitor(total_files, total_bytes, started) as mon:
        ...run the pipeline...
    mon.first_read  # wall time the first document was read (start-up ends there)
    """

    def __init__(
        self,
        total_files: int,
        total_bytes: int,
        started: float,
        stream=None,
        live: bool | None = None,
        interval: float | None = None,
    ):
        self.total_files, self.total_bytes, self.started = total_files, total_bytes, started
        self.stream = stream or sys.stderr
        self.live = live if live is not None else _isatty(self.stream)
        if interval is None:
            try:
                interval = float(os.environ.get(INTERVAL_ENV) or PLAIN_S)
            except ValueError:
                interval = PLAIN_S
        self.interval = interval
        self.totals: Counter = Counter()
        self.first_read: float | None = None
        self.dir: str | None = None
        self._offsets: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = None
        self._lock = threading.Lock()

    # -- the reports
    def poll(self) -> None:
        with self._lock:
            try:
                names = sorted(os.listdir(self.dir)) if self.dir else []
            except OSError:
                return
            for name in names:
                path = os.path.join(self.dir, name)
                try:
                    with open(path, "rb") as f:
                        f.seek(self._offsets.get(name, 0))
                        data = f.read()
                except OSError:
                    continue
                end = data.rfind(b"\n") + 1  # a line still being written waits for the next poll
                self._offsets[name] = self._offsets.get(name, 0) + end
                for line in data[:end].splitlines():
                    try:
                        rec = json.loads(line)
                        counts = {str(k): int(v) for k, v in rec["c"].items()}
                    except (ValueError, KeyError, TypeError, AttributeError):
                        continue
                    self.totals.update(counts)
                    t = rec.get("t")
                    if counts.get(RECORDS) and isinstance(t, (int, float)):
                        self.first_read = t if self.first_read is None else min(self.first_read, t)

    def drops(self) -> dict[str, int]:
        """Drops so far per stage (quarantined records under `quarantine`), largest first."""
        out: Counter = Counter()
        for name, n in self.totals.items():
            if name in NOT_DROPS or "/" not in name or name.startswith("skipped/"):
                continue
            out[name.split("/", 1)[0]] += n
        return dict(out.most_common())

    def snapshot(self, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        t = self.totals
        reading = now - self.first_read if self.first_read is not None else None
        rate = t[RECORDS] / reading if reading and reading > 0.5 else None
        eta = None
        if reading and 0 < t[BYTES] < self.total_bytes:
            eta = reading * (self.total_bytes - t[BYTES]) / t[BYTES]
        return {
            "files": t[FILES],
            "total_files": self.total_files,
            "documents": t[RECORDS],
            "per_s": rate,
            "drops": self.drops(),
            "kept": t[KEPT],
            "elapsed": now - self.started,
            "eta": eta,
            "read_done": self.total_files > 0 and t[FILES] >= self.total_files,
        }

    # -- the display
    def line(self, now: float | None = None) -> str:
        s = self.snapshot(now)
        drops = ", ".join(f"{k} {v:,}" for k, v in s["drops"].items()) or "none"
        rate = f" ({s['per_s']:,.0f}/s)" if s["per_s"] else ""
        if s["read_done"]:
            phase = "read pass done; dedup, mixture and writing" + (f": {s['kept']:,} kept" if s["kept"] else "")
        elif not s["documents"]:
            phase = STARTING
        else:
            phase = f"read pass eta {_duration(s['eta'])}"
        return (
            f"progress: {s['files']:,}/{s['total_files']:,} files read, {s['documents']:,} documents{rate};"
            f" drops so far: {drops}; elapsed {_duration(s['elapsed'])}, {phase}"
        )

    def render(self):
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        s = self.snapshot()
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            "[bold]curate run[/]",
            ProgressBar(total=max(1, s["total_files"]), completed=s["files"], width=30),
            f"{s['files']:,}/{s['total_files']:,} files",
            f"{s['documents']:,} docs" + (f" · {s['per_s']:,.0f} docs/s" if s["per_s"] else ""),
            f"elapsed {_duration(s['elapsed'])}",
            "[green]read pass done[/]"
            if s["read_done"]
            else STARTING
            if not s["documents"]
            else f"read eta {_duration(s['eta'])}",
        )
        out = Table.grid(padding=(0, 1))
        out.add_row(grid)
        drops = " · ".join(f"{k} {v:,}" for k, v in s["drops"].items()) or "none yet"
        out.add_row(f"drops so far: {drops}")
        if s["read_done"]:
            out.add_row("dedup, mixture and writing" + (f": {s['kept']:,} kept so far" if s["kept"] else ""))
        return out

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(POLL_S):
            self.poll()
            if self._live is not None:
                self._live.refresh()
            elif time.monotonic() - last >= self.interval:
                last = time.monotonic()
                self._print(self.line())

    def _print(self, text: str) -> None:
        try:
            print(text, file=self.stream, flush=True)
        except (OSError, ValueError):
            pass

    # -- start and stop
    def __enter__(self) -> Monitor:
        self.dir = tempfile.mkdtemp(prefix="curate-progress-")
        global _ON
        _REPORTER.flush()  # nothing left over from an earlier run in this process
        os.environ[PROGRESS_DIR_ENV] = self.dir
        _ON = True
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                console=Console(file=self.stream), get_renderable=self.render, auto_refresh=False, transient=False
            )
            self._live.start()
            self._live.console.show_cursor(True)  # an interrupt exits at once: never leave it hidden
        self._thread = threading.Thread(target=self._loop, name="curate-progress-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close(exc[0] is None)

    def close(self, finished: bool = True) -> None:
        """Stop watching: a last poll (after this process's own report), the last display, then
        the reports' directory is removed. Safe to call twice."""
        if self.dir is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _REPORTER.flush()
        self.poll()
        if self._live is not None:
            if finished:
                self._live.refresh()
            self._live.stop()
            self._live = None
        elif finished:
            self._print(self.line())
        if os.environ.get(PROGRESS_DIR_ENV) == self.dir:
            del os.environ[PROGRESS_DIR_ENV]
            global _ON
            _ON = False
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# ----------------------------------------------------------------------------- the log file

_RUN_LOG: RunLog | None = None  # the one started by `curate run` in this process, while it lasts


def run_log_active() -> bool:
    return _RUN_LOG is not None


# Beam logs at INFO, for every annotation of a DoFn method that is a string (our modules use
# `from __future__ import annotations`), "Converting string literal type hint to Any": 249 of a
# run log's 295 lines on the race corpus, none of them actionable. Warnings still go to the log.
TYPE_HINT_LOGGER = "apache_beam.typehints.native_type_compatibility"


class RunLog:
    """Python's logging, Beam's included, at INFO into one file, and none of it on the terminal.
    Records logged before the file's place exists (the staging directory) wait in memory.

        log = RunLog.start()          # at the start of the command
        log.open(path)                # once OUT.tmp-<id>/logs/ can be created
        ...
        log.close()
    """

    def __init__(self) -> None:
        self.memory = logging.handlers.MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)
        self.file: logging.FileHandler | None = None
        self.path: str | None = None
        self.saved: tuple | None = None

    @classmethod
    def start(cls) -> RunLog:
        global _RUN_LOG
        self = _RUN_LOG = cls()
        root = logging.getLogger()
        hints = logging.getLogger(TYPE_HINT_LOGGER)
        self.saved = (list(root.handlers), root.level, logging.getLogger("apache_beam").level, hints.level)
        for h in list(root.handlers):
            root.removeHandler(h)
        root.addHandler(self.memory)
        root.setLevel(logging.INFO)
        logging.getLogger("apache_beam").setLevel(logging.INFO)
        hints.setLevel(logging.WARNING)
        logging.captureWarnings(True)
        return self

    def open(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.file = logging.FileHandler(path, encoding="utf-8")
        self.file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s"))
        self.memory.setTarget(self.file)
        self.memory.flush()
        root = logging.getLogger()
        root.removeHandler(self.memory)
        root.addHandler(self.file)
        self.path = path
        os.environ[LOG_FILE_ENV] = path

    def keep(self) -> str | None:
        """A failed run's staging directory is deleted: a copy of its log, in the temporary directory."""
        if self.file is None or self.path is None:
            return None
        self.file.flush()
        fd, copy = tempfile.mkstemp(prefix="curate-run-", suffix=".log")
        os.close(fd)
        try:
            shutil.copyfile(self.path, copy)
        except OSError:
            return None
        return copy

    def close(self) -> None:
        global _RUN_LOG
        if _RUN_LOG is self:
            _RUN_LOG = None
        root = logging.getLogger()
        for h in (self.memory, self.file):
            if h is not None:
                root.removeHandler(h)
                h.close()
        if self.saved is not None:
            handlers, level, beam_level, hints_level = self.saved
            for h in handlers:
                root.addHandler(h)
            root.setLevel(level)
            logging.getLogger("apache_beam").setLevel(beam_level)
            logging.getLogger(TYPE_HINT_LOGGER).setLevel(hints_level)
            self.saved = None
        logging.captureWarnings(False)
        if self.path is not None and os.environ.get(LOG_FILE_ENV) == self.path:
            del os.environ[LOG_FILE_ENV]
