"""Running a pipeline: Beam options and the in-process runner.

The embedded default is Beam's FnApiRunner, named explicitly: Beam 2.77's default
DirectRunner first tries to download the Prism runner binary, which fails (or hangs) offline.
`workers > 1` switches the FnApiRunner to its multi-processing mode.
"""
from __future__ import annotations

import ctypes
import logging
import os
import time
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from pipeline.config import Config
from pipeline.graph import build, input_info
from pipeline.sources import FileSpec
from pipeline.stages.base import COUNTER_NAMESPACE


# glibc gives each thread that allocates its own malloc arena (up to 8 per core) and hands little
# of them back; Beam's harness allocates from its gRPC and bundle threads. Two arenas took the
# dedup stages' SDK worker peak from 628 to 545 MB at 200k documents (bench.dedup_scale).
MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # mallopt parameter, <malloc.h>


def limit_malloc_arenas(n: int = MALLOC_ARENAS) -> None:
    """This process (mallopt, for arenas created from now on) and the SDK worker processes it
    starts (MALLOC_ARENA_MAX, read by glibc at their start). A no-op off glibc; a value the
    user already set in the environment is kept."""
    os.environ.setdefault("MALLOC_ARENA_MAX", str(n))
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, int(os.environ["MALLOC_ARENA_MAX"]))
    except (OSError, AttributeError, ValueError):
        pass


def in_process_runner():
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    return FnApiRunner()


def local_options(workers: int) -> PipelineOptions:
    opts = PipelineOptions(flags=[], save_main_session=False)  # never parse sys.argv
    d = opts.view_as(DirectOptions)
    d.direct_num_workers = workers
    d.direct_running_mode = "multi_processing" if workers > 1 else "in_memory"
    return opts


@dataclass
class RunResult:
    counters: dict[str, int]
    seconds: float
    runner: str


def run_local(config: Config, specs: list[FileSpec], workers: int) -> RunResult:
    runner_name = "FnApiRunner" + (f" (multi_processing, {workers} workers)" if workers > 1 else " (in process)")
    run_info = {"runner": runner_name, "workers": workers, **input_info(config, specs)}
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    limit_malloc_arenas()
    t0 = time.monotonic()
    p = beam.Pipeline(runner=in_process_runner(), options=local_options(workers))
    build(p, config, specs, run_info)
    result = p.run()
    result.wait_until_finish()
    return RunResult(read_counters(result), time.monotonic() - t0, runner_name)


def read_counters(result) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for c in result.metrics().query()["counters"]:
            if c.key.metric.namespace == COUNTER_NAMESPACE:
                out[c.key.metric.name] = out.get(c.key.metric.name, 0) + (c.committed or c.attempted or 0)
    except Exception:  # noqa: BLE001 - metrics are best effort; the manifest is the ledger
        pass
    return out
