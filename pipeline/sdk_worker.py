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

With `--workers N`, the workers are forked from a zygote: `start_zygote` (below) starts one
process (`python -m pipeline.sdk_worker --zygote SOCKET`) at the CLI's first lines when the command
line asks for workers, else as soon as the run's configuration is read; while the runner process
imports its own libraries, reads inputs and builds the graph, the zygote imports Beam's harness,
the stages and their libraries and loads the compiled kernels, once. The command Beam runs for
each worker is then a small client of that socket: it hands over its environment and arguments,
the zygote forks a worker that has all of that loaded (copy-on-write), and the client waits for
the worker's exit status and returns it to Beam. Each worker's start-up (~2 s of imports) thus
costs neither its CPU nor its wall time. A worker dies with the zygote, the zygote with the
runner; a client killed (Beam, `stop_workers`) takes its worker down. Where the zygote cannot
serve (it failed to start, or died), the client runs the worker itself as before.

This module is light (the client imports it), so the process settings that the runner process
and its workers share live here too: malloc's arenas and Arrow's allocator
(`limit_malloc_arenas`), the garbage collector (`relax_gc`, `freeze_gc`), Beam's state sampler
(`shorten_state_sampling`) and its signature look-ups (`cache_signatures`), and pyarrow without
pandas (`arrow_without_pandas`).
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

from pipeline import progress
from pipeline.progress import LOG_FILE_ENV

# glibc gives each thread that allocates its own malloc arena (up to 8 per core) and hands little
# of them back; Beam's harness allocates from its gRPC and bundle threads. Two arenas took the
# dedup stages' SDK worker peak from 628 to 545 MB at 200k documents (bench.dedup_scale).
MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # mallopt parameter, <malloc.h>
ARROW_MEMORY_POOL = "system"  # Arrow's allocator: malloc's (limit_malloc_arenas)
PR_SET_PDEATHSIG = 1  # <sys/prctl.h>
WORKER_MODULE = "pipeline.sdk_worker"  # this module: the command Beam runs for each worker
RUNNER_PID_ENV = "CURATE_RUNNER_PID"
ZYGOTE_ENV = "CURATE_ZYGOTE"  # "PID:SOCKET" of the run's zygote
ZYGOTE_WAIT_S = 120.0  # a client waits this long for the zygote's socket (while the zygote lives)
FORKED = b"F"  # zygote -> client: the worker is forked; then its exit status, then EOF
FORKED_LINE = "curate: SDK worker forked from the zygote"  # in the run's log, once per worker
GC_YOUNG = 10_000  # allocations between young-generation collections (Python's 700): relax_gc
STATE_SAMPLING_MS = 10  # Beam's state sampler's longest sleep (its default 200): shorten_state_sampling


def _to_log(path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return  # the run's log cannot be opened: keep the terminal
    for std in (1, 2):
        os.dup2(fd, std)
    os.close(fd)


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the runner's stop_workers is all there is
        pass


def shorten_state_sampling() -> None:
    """Beam's state sampler (per bundle, a thread that samples which step runs) sleeps up to
    200 ms between samples, and the bundle's end joins it: ~100 ms of idle wall time per bundle
    (0.5 s of a 15 s in-process run on the quick corpus). Its default period, the one thing that
    differs, becomes STATE_SAMPLING_MS (only Beam's msec counters, which nothing here reads, are
    sampled less coarsely). Left alone if Beam's signature changed."""
    from apache_beam.runners.worker import statesampler

    init = statesampler.StateSampler.__init__
    if init.__defaults__ == (statesampler.DEFAULT_SAMPLING_PERIOD_MS,):
        init.__defaults__ = (STATE_SAMPLING_MS,)


def cache_signatures() -> None:
    """Beam works out the same facts again and again as it builds the graph and each bundle's
    operations: the signature of every DoFn method (inspect.signature; 18,400 calls in one
    in-process run of the quick corpus) and every DoFn's state and timer specs (get_dofn_specs,
    582 calls for 143 DoFns). A bound method's signature depends on its function only, a DoFn's
    specs on the DoFn only, and neither changes once they are made; so each is kept, weakly, by
    the function (Beam's get_signature, wherever it was imported) or by the DoFn (get_dofn_specs,
    returned as fresh sets). 0.2-0.4 s of the 10 s run. Left alone where Beam's functions moved;
    done once per process."""
    import types
    import weakref

    from apache_beam.transforms import core, ptransform, userstate, util
    from apache_beam.typehints import decorators

    get_signature, get_dofn_specs = decorators.get_signature, userstate.get_dofn_specs
    if getattr(get_signature, "cached", False):
        return
    signatures: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    specs: dict[int, tuple] = {}

    def cached_signature(func):
        if type(func) is not types.MethodType or type(func.__func__) is not types.FunctionType:
            return get_signature(func)
        sig = signatures.get(func.__func__)
        if sig is None:
            sig = signatures[func.__func__] = get_signature(func)
        return sig

    def cached_specs(dofn):
        key = id(dofn)
        hit = specs.get(key)
        if hit is None or hit[0]() is not dofn:
            state, timers = get_dofn_specs(dofn)  # raises for a DoFn it refuses: nothing kept
            try:
                ref = weakref.ref(dofn, lambda _: specs.pop(key, None))
            except TypeError:  # not weakly referable: not kept
                return state, timers
            hit = specs[key] = (ref, frozenset(state), frozenset(timers))
        return set(hit[1]), set(hit[2])

    cached_signature.cached = True
    for module in (decorators, core, ptransform, util):
        if getattr(module, "get_signature", None) is get_signature:
            module.get_signature = cached_signature
    userstate.get_dofn_specs = cached_specs


def _harness(argv: list[str], forked: bool = False) -> None:
    if os.environ.get(LOG_FILE_ENV):
        _to_log(os.environ[LOG_FILE_ENV])
    if forked:
        print(f"{FORKED_LINE} (pid {os.getpid()})", file=sys.stderr, flush=True)
    relax_gc()
    import_beam_without_pandas()
    from apache_beam.runners.worker import sdk_worker_main

    arrow_without_pandas()
    shorten_state_sampling()
    cache_signatures()
    freeze_gc()

    try:
        sdk_worker_main.main(argv)
    finally:  # its last progress counts, before the runner (waiting for this exit) reads them
        progress.flush()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    runner = os.environ.get(RUNNER_PID_ENV)
    if runner and runner.isdigit() and os.getppid() != int(runner):
        sys.exit(1)  # the runner died before prctl took effect
    if len(sys.argv) == 3 and sys.argv[1] == "--zygote":
        zygote(sys.argv[2])
        return
    if os.environ.get(ZYGOTE_ENV):
        code = _forked_worker(os.environ[ZYGOTE_ENV])
        if code is not None:
            sys.exit(code)
    _harness(sys.argv)


# ----------------------------------------------------------------------------- the zygote


def _preload() -> None:
    """What every worker needs, loaded once: Beam's harness, the stages and their libraries."""
    import importlib

    relax_gc()
    import_beam_without_pandas()
    from apache_beam.runners.worker import sdk_worker_main  # noqa: F401

    for name in ("dedup", "finalize", "heuristics", "langid", "mixture", "quality", "read", "route", "write"):
        importlib.import_module(f"pipeline.stages.{name}")
    for name in ("pyarrow.parquet", "zstandard"):
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library: a stage that needs it says so
            pass
    arrow_without_pandas()
    try:
        from classifiers.kernels import kernels

        kernels()
    except Exception:  # noqa: BLE001 - a worker that needs them says why
        pass
    freeze_gc()


def _recv_request(conn: socket.socket) -> dict:
    size = int.from_bytes(_recv_exactly(conn, 8), "big")
    return json.loads(_recv_exactly(conn, size))


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the client went away")
        buf += chunk
    return bytes(buf)


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def zygote(path: str) -> None:
    """Listen on `path` at once (clients queue while the libraries load), preload, then fork one
    worker per client; report each worker's exit status to its client; kill the worker of a
    client that goes away. Single-threaded, so that fork() is safe."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(_address(path))
    srv.listen(64)
    _preload()
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ)
    workers: dict[int, socket.socket] = {}  # worker pid -> its client's connection
    while True:
        for key, _ in sel.select(timeout=0.1):
            if key.fileobj is srv:
                conn, _ = srv.accept()
                try:
                    request = _recv_request(conn)
                except (OSError, ValueError):
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    sel.close()
                    srv.close()
                    for other in workers.values():
                        other.close()
                    conn.close()
                    _worker_child(request)  # never returns
                workers[pid] = conn
                conn.sendall(FORKED)
                sel.register(conn, selectors.EVENT_READ, pid)
            else:  # a client readable: it went away (it sends nothing more)
                try:
                    gone = not key.fileobj.recv(1)
                except OSError:
                    gone = True
                if gone:
                    try:
                        os.kill(key.data, signal.SIGKILL)
                    except OSError:
                        pass
        while workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = workers.pop(pid, None)
            if conn is not None:
                sel.unregister(conn)
                try:
                    conn.sendall(str(_exit_code(status)).encode())
                except OSError:
                    pass
                conn.close()


def _worker_child(request: dict) -> None:
    """In the forked worker: the client's environment and arguments, then Beam's harness."""
    code = 1
    try:
        os.environ.clear()
        os.environ.update(request["env"])
        _die_with_parent()  # with the zygote (which dies with the runner)
        progress._ON = progress.PROGRESS_DIR_ENV in os.environ  # read at import, in the zygote
        sys.argv = list(request["argv"])
        _harness(sys.argv, forked=True)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported like an uncaught exception, then exit 1
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


# ----------------------------------------------------------------------------- the client


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return b") Z" not in f.read()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            pass
        return True


def _forked_worker(spec: str) -> int | None:
    """Have the zygote fork this worker and wait for its exit status; None where the zygote
    cannot serve (then this process runs the worker itself)."""
    pid_s, _, path = spec.partition(":")
    if not pid_s.isdigit() or not path:
        return None
    zpid = int(pid_s)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + ZYGOTE_WAIT_S
    while True:
        try:
            conn.connect(_address(path))
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if not _alive(zpid) or time.monotonic() > deadline:
                conn.close()
                return None
            time.sleep(0.02)
    forked = False
    status = bytearray()
    try:
        body = json.dumps({"env": dict(os.environ), "argv": sys.argv}).encode()
        conn.sendall(len(body).to_bytes(8, "big") + body)
        forked = conn.recv(1) == FORKED
        while forked and (chunk := conn.recv(64)):
            status += chunk
    except OSError:
        pass
    finally:
        conn.close()
    if not forked:
        return None  # the zygote died before forking: run the worker here
    return int(status) if status.isdigit() else 1


# ----------------------------------------------------------------------------- the runner's side


def limit_malloc_arenas(n: int = MALLOC_ARENAS) -> None:
    """This process (mallopt, for arenas created from now on) and the SDK worker processes it
    starts (MALLOC_ARENA_MAX, read by glibc at their start). A no-op off glibc; a value the
    user already set in the environment is kept. Arrow allocates from the same malloc
    (ARROW_MEMORY_POOL): its default, mimalloc, kept ~30 MB more at the in-process peak of the
    quick corpus (the last pass's batches and shards), 622 -> 591 MB."""
    os.environ.setdefault("MALLOC_ARENA_MAX", str(n))
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", ARROW_MEMORY_POOL)  # read at pyarrow's import
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, int(os.environ["MALLOC_ARENA_MAX"]))
    except (OSError, AttributeError, ValueError):
        pass
    if "pyarrow" in sys.modules and os.environ["ARROW_DEFAULT_MEMORY_POOL"] == ARROW_MEMORY_POOL:
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())  # imported already: from now on


def import_beam_without_pandas() -> None:
    """Import Beam with pandas hidden. Beam's typehints package imports pandas whenever it is
    installed (a dependency of HF datasets, which the tests use), for DataFrame type conversions
    a run never makes: 0.3 s and ~45 MB of every process that imports Beam (the runner, the
    zygote, so every worker). Hidden, Beam skips them; afterwards pandas imports as usual for
    whatever wants it. Nothing is done where Beam or pandas is imported already."""
    if "apache_beam" in sys.modules or "pandas" in sys.modules:
        return
    sys.modules["pandas"] = None  # `import pandas` raises ImportError, which Beam expects
    try:
        import apache_beam  # noqa: F401
    finally:
        if sys.modules.get("pandas", 0) is None:
            del sys.modules["pandas"]


class _NoPandas:
    """A meta path finder for which pandas does not exist (arrow_without_pandas)."""

    def find_spec(self, name: str, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def arrow_without_pandas() -> None:
    """pyarrow imports pandas the first time it converts Python values (pa.array,
    RecordBatch.from_pylist: the last pass's rows, the shards), to tell pandas' objects and
    missing values apart: 0.2 s and ~45 MB in every process that writes rows, for values curate
    never hands it. One conversion made while pandas cannot be imported settles that for the
    process: pyarrow then converts without it, and `Table.to_pandas()` still imports pandas when
    asked. Nothing is done where pandas is loaded already."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.RecordBatch.from_pylist([{"n": 1, "s": "x", "f": 0.5, "none": None}])
    finally:
        sys.meta_path.remove(blocker)


def relax_gc() -> None:
    """The first pass allocates millions of short-lived dicts and strings that form no cycles;
    Python's default, a young-generation collection every 700 allocations, spent 0.36 s of a
    14 s in-process run on the quick corpus collecting them (611 collections), 0.04 s at
    GC_YOUNG. So do a process's first imports (Beam's above all: ~350 young and 3 full
    collections at 700, 0.2 s; 40 and none at GC_YOUNG, 0.13 s), so the console script and the
    workers set it before them. Cyclic garbage, which this code makes little of, waits a little
    longer."""
    import gc

    young, middle, old = gc.get_threshold()
    if young and young < GC_YOUNG:
        gc.set_threshold(GC_YOUNG, middle, old)


def freeze_gc() -> None:
    """The objects made so far (the modules, classes and functions of every import, the graph,
    the models' Python side), which live as long as the process, move to a generation the
    collector no longer traverses (gc.freeze): the full collections of an in-process run on the
    quick corpus (three) took 0.13 s of its 0.23 s of collecting, walking them. In the zygote,
    before its forks, it also keeps the collector from writing to those objects' pages in every
    worker (copy-on-write). Once per process: garbage among the frozen stays (there is little:
    they were made to stay), so a process that runs pipelines one after another (the tests)
    does not freeze each run's leftovers."""
    import gc

    if not _FROZE:
        gc.freeze()
        _FROZE.append(True)


_FROZE: list = []  # [True] once freeze_gc has frozen this process's objects


_ZYGOTE: list = []  # [the zygote's Popen] while one runs


def start_zygote() -> None:
    """Start the process the SDK workers of `--workers N` are forked from (see the module's
    docstring), now, so that it loads their libraries while this process gets the run ready. Its
    socket (Linux's abstract namespace: no file to clean up, whatever ends the run) is named to
    the workers by ZYGOTE_ENV; run_local stops it when the run ends, and it dies with this
    process. Elsewhere than Linux the workers start as Beam starts them."""
    if _ZYGOTE or not sys.platform.startswith("linux"):
        return
    import uuid

    limit_malloc_arenas()  # read by glibc at the zygote's start, inherited by its workers
    os.environ[RUNNER_PID_ENV] = str(os.getpid())
    name = f"@curate-zygote-{os.getpid()}-{uuid.uuid4().hex}"  # "@": the abstract namespace (below)
    proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, "--zygote", name], stdin=subprocess.DEVNULL)
    _ZYGOTE[:] = [proc]
    os.environ[ZYGOTE_ENV] = f"{proc.pid}:{name}"


def stop_zygote() -> None:
    if not _ZYGOTE:
        return
    proc = _ZYGOTE.pop()
    if os.environ.get(ZYGOTE_ENV, "").startswith(f"{proc.pid}:"):
        del os.environ[ZYGOTE_ENV]
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # it does not listen
        proc.kill()
        proc.wait()


def _address(name: str) -> str:
    """A socket name: "@..." is Linux's abstract namespace (a leading NUL byte)."""
    return "\0" + name[1:] if name.startswith("@") else name


if __name__ == "__main__":
    main()
