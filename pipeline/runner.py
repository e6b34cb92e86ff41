"""Running a pipeline: Beam options and the in-process runner.

The embedded default is Beam's FnApiRunner, named explicitly: Beam 2.77's default
DirectRunner first tries to download the Prism runner binary, which fails (or hangs) offline.
`workers > 1` switches the FnApiRunner to its multi-processing mode.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, TypeOptions

from pipeline import progress, schema
from pipeline.config import Config
from pipeline.graph import build, input_info
from pipeline.sdk_worker import (
    RUNNER_PID_ENV,
    WORKER_MODULE,
    arrow_without_pandas,
    cache_signatures,
    freeze_gc,
    limit_malloc_arenas,
    relax_gc,
    shorten_state_sampling,
    start_zygote,
    stop_zygote,
)
from pipeline.sources import FileSpec
from pipeline.stages.base import COUNTER_NAMESPACE

# `exec`: the worker is this process's child, not a shell's (see pipeline/sdk_worker.py)
WORKER_COMMAND = f"exec {shlex.quote(sys.executable)} -m {WORKER_MODULE}"


def in_process_runner():
    from apache_beam.portability import python_urns
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    class Runner(FnApiRunner):
        """FnApiRunner whose SDK worker processes (multi-processing mode) run pipeline.sdk_worker:
        they ignore the terminal's Ctrl-C and die with this process."""

        def run_via_runner_api(self, pipeline_proto, options):
            for env in pipeline_proto.components.environments.values():
                if env.urn == python_urns.SUBPROCESS_SDK:
                    env.payload = WORKER_COMMAND.encode()
            return super().run_via_runner_api(pipeline_proto, options)

    os.environ[RUNNER_PID_ENV] = str(os.getpid())
    return Runner()


def _children() -> dict[int, list[int]]:
    """{parent pid: child pids} of every process visible in /proc (Linux)."""
    out: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
        if len(fields) > 1 and fields[0] != b"Z":
            out.setdefault(int(fields[1]), []).append(int(d))
    return out


def descendants(pid: int | None = None) -> list[int]:
    """Live (not zombie) descendants of `pid` (default: this process), children first."""
    if not os.path.isdir("/proc"):
        return []
    tree, out, todo = _children(), [], [pid or os.getpid()]
    while todo:
        kids = tree.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return WORKER_MODULE.encode() in f.read()
    except OSError:
        return False


def stop_workers(grace_s: float = 2.0) -> list[int]:
    """Stop the SDK worker processes this process started (and anything they started): SIGTERM,
    then SIGKILL for what is still alive after `grace_s`. Returns the pids it signalled."""
    tree = descendants()
    workers = [p for p in tree if _is_worker(p)]
    pids = workers + [q for w in workers for q in descendants(w)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace_s
        while pids and time.monotonic() < deadline:
            alive = set(descendants())
            pids = [p for p in pids if p in alive]
            time.sleep(0.02)
        if not pids:
            break
    return workers


def _drop_startup_noise(record: logging.LogRecord) -> bool:
    return "semi_persistent_directory" not in record.getMessage()


def _quiet_worker_startup() -> None:
    """Each SDK worker logs a warning at start that concerns only Dataflow's session files
    ("No semi_persistent_directory found"); the runner forwards it to stderr. Without a run log
    (a pipeline not started by `curate run`), drop that one."""
    log = logging.getLogger("apache_beam.runners.portability.local_job_service")
    if _drop_startup_noise not in log.filters:
        log.addFilter(_drop_startup_noise)


def local_options(workers: int) -> PipelineOptions:
    opts = PipelineOptions(flags=[], save_main_session=False)  # never parse sys.argv
    d = opts.view_as(DirectOptions)
    d.direct_num_workers = workers
    d.direct_running_mode = "multi_processing" if workers > 1 else "in_memory"
    # Beam's check of declared type hints between transforms as the graph is built: ours are
    # strings (Any to Beam), so it finds nothing, in ~0.1 s of every run's start (the graph's
    # build 0.39 -> 0.28 s); the types it infers for coders are inferred all the same
    opts.view_as(TypeOptions).pipeline_type_check = False
    return opts


@dataclass
class RunResult:
    counters: dict[str, int]
    seconds: float  # the pipeline's own run, from building the graph to the last write
    runner: str
    first_read: float | None = None  # wall time the first document was read (with `started`)


def run_local(
    config: Config, specs: list[FileSpec], workers: int, write_root: str | None = None, started: float | None = None
) -> RunResult:
    """Run the pipeline on this machine; shards and manifest go to `write_root` (default: the
    output path itself; `curate run` passes its staging directory). With `started` (the wall time
    the command started), the run's live progress is shown on stderr (pipeline/progress.py)."""
    runner_name = schema.LOCAL_RUNNER + (f" (multi_processing, {workers} workers)" if workers > 1 else " (in process)")
    run_info = {"runner": runner_name, "workers": workers, **input_info(config, specs)}
    if not progress.run_log_active():  # no run log (pipeline/progress.py RunLog): Beam's warnings only
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
        _quiet_worker_startup()
    limit_malloc_arenas()
    shorten_state_sampling()  # in-process bundles; the workers do it themselves
    cache_signatures()  # the graph's build, and in-process bundles
    arrow_without_pandas()
    relax_gc()
    if workers > 1:
        start_zygote()  # `curate run` started it earlier, as soon as it had read the config
    t0 = time.monotonic()
    monitor = None
    if started is not None:
        monitor = progress.Monitor(len(specs), sum(s.size for s in specs), started)
    p = beam.Pipeline(runner=in_process_runner(), options=local_options(workers))
    _TEMPDIRS.add(p.local_tempdir)
    try:
        if monitor is not None:
            monitor.__enter__()
            _TEMPDIRS.add(monitor.dir)
        build(p, config, specs, run_info, write_root, release_models=workers == 1)
        freeze_gc()  # what the run made so far lives as long as it
        result = p.run()
        result.wait_until_finish()
        if monitor is not None:
            monitor.close(finished=True)
    finally:
        if monitor is not None:
            monitor.close(finished=False)
        stop_zygote()
        remove_tempdirs()
    return RunResult(
        read_counters(result), time.monotonic() - t0, runner_name, monitor.first_read if monitor is not None else None
    )


_TEMPDIRS: set[str] = set()  # Beam's local temporary directories of the pipelines running here


def remove_tempdirs() -> None:
    """Beam removes its pipeline's temporary directory when run() returns or raises; not when
    the process exits from a signal handler (pipeline/interrupt.py), nor before run() started."""
    import shutil

    while _TEMPDIRS:
        shutil.rmtree(_TEMPDIRS.pop(), ignore_errors=True)


def read_counters(result) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for c in result.metrics().query()["counters"]:
            if c.key.metric.namespace == COUNTER_NAMESPACE:
                out[c.key.metric.name] = out.get(c.key.metric.name, 0) + (c.committed or c.attempted or 0)
    except Exception:  # noqa: BLE001 - metrics are best effort; the manifest is the ledger
        pass
    return out
