"""The race: our pipeline against datatrove on the same corpus (`make bench`, `make bench QUICK=1`).

    python -m bench.run [--quick] [--rounds N] [--no-scale] [--no-profile]

* Corpus: `--quick` races on ../shared/data/bench-corpus (16,303 real documents, 76.6 MB);
  otherwise on the full corpus that bench/build_corpus.py builds and caches (about 100,000
  documents, 330 MB of real text and code: bench/.cache/corpus-full).
* Ours: `curate run bench/configs/race.yaml` (read -> langid -> heuristics -> distilled fastText
  quality -> exact + MinHash dedup (14 x 8) -> mixture -> Parquet) with `--workers 2` (the
  in-process runner's multi-processing mode) and `--workers 1` (in process). The fastText
  quality model is trained by bench/proxy_quality.py on proxy labels (no judge labels needed).
* Theirs: bench/datatrove_race.py in its own virtualenv (bench/.cache/dt-venv, datatrove 0.10.1):
  JsonlReader -> LanguageFilter (the same lid.176 file) -> Gopher repetition -> Gopher quality ->
  4-stage MinHash (14 x 8) -> ParquetWriter, 2 tasks on 2 workers.
* The three run alternately, `--rounds` times (2 by default). Each is a fresh process tree,
  measured from outside: wall time (documents/s and MB/s of input text), CPU seconds of the whole
  tree (this process is a child subreaper, so every descendant's CPU time is counted) and peak
  memory summed over the tree (RSS of every descendant, sampled every 0.2 s). Load average is
  recorded next to each run: other processes on the machine slow wall times, not CPU seconds.
* Fairness: the documents each keeps (ours: passed every filter and dedup, whether or not the
  mixture sampled them; theirs: its Parquet output) are compared (Jaccard of ids, overall and
  among English documents).
* Profile: one more in-process run of ours with every DoFn's own time measured (exclusive of
  the stages it feeds) and a cProfile of another (top functions by own time).
* Scale-up (full mode, or `--scale`): our peak memory (in process by default) on a quarter of the
  quick corpus repeated 1x, 4x and 16x with new ids.

Writes bench/results/race.md (the latest table, with the machine; also kept as race-quick.md or
race-full.md) and ends with the line
`speedup_vs_datatrove=<ours/theirs documents per second> peak_rss_ratio=<ours/theirs peak memory>`,
both for `--workers 2` against datatrove's 2 workers.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from bench.build_corpus import CACHE, build_full, build_scaled, corpus_size
from bench.data import BENCH_CORPUS, read_bench_manifest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "race.md"
RUNS = CACHE / "runs"
CONFIG = Path(__file__).resolve().parent / "configs" / "race.yaml"
LID_MODEL = ROOT / "classifiers" / "models" / "lid.176.ftz"
DT_VENV = CACHE / "dt-venv"
DT_HOME = CACHE / "dt-home"
DT_PACKAGES = ["datatrove[processing]==0.10.1", "spacy", "pyarrow", "zstandard", "orjson", "aiohttp"]
SAMPLE_S = 0.2
MiB = 1 << 20

GOALS = {  # issue 18's, per corpus: documents/s over datatrove's, --workers 2 and in process
    "quick": {"speedup_w2": 5.0, "speedup_w1": 4.0},
    "full": {"speedup_w2": 8.0, "speedup_w1": 5.0},
}


# ------------------------------------------------------------------ machine and setup


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model or platform.processor(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def ensure_dt_venv() -> Path:
    """datatrove in its own virtualenv (its pins differ from ours); created once."""
    py = DT_VENV / "bin" / "python"
    stamp = DT_VENV / ".race-installed"
    if stamp.exists() and stamp.read_text() == json.dumps(DT_PACKAGES):
        return py
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DT_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *DT_PACKAGES], check=True)
    subprocess.run([str(py), "-c", "import datatrove, spacy, fasttext, pyarrow, zstandard, orjson"], check=True)
    stamp.write_text(json.dumps(DT_PACKAGES))
    return py


def languages() -> list[str]:
    from classifiers.langid import LangIdParams

    return list(LangIdParams().languages)


# ------------------------------------------------------------------ measuring a process tree


def become_subreaper() -> bool:
    """Orphaned descendants (a forkserver left behind) are re-parented to us, so that waiting
    for them adds their CPU time to RUSAGE_CHILDREN."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_orphans(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                for p in psutil.Process().children():
                    p.kill()
                deadline = time.monotonic() + timeout
            time.sleep(0.05)


@dataclass
class Measured:
    name: str
    cmd: list[str]
    rc: int
    wall_s: float
    cpu_s: float
    peak_rss: int
    peak_procs: int
    peak_by_process: list  # [(short command, RSS bytes)] at the moment of the peak
    peak_each: list  # [(short command, its own peak RSS bytes)] for every process of the tree
    load_before: float
    load_after: float
    log: str
    extra: dict = field(default_factory=dict)
    peak_pss: int = 0  # peak of the summed proportional set size: a page shared by n processes counts 1/n in each


def pss(pid: int) -> int:
    """A process's proportional set size in bytes (Linux /proc/PID/smaps_rollup), 0 where unknown."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def measure(name: str, cmd: list[str], log: Path, env: dict | None = None) -> Measured:
    """Run `cmd`; wall time, CPU time of the whole tree, peak of the summed RSS of the tree,
    and each process's own peak."""
    log.parent.mkdir(parents=True, exist_ok=True)
    me = psutil.Process()
    peak: list = [0, 0, []]
    peak_pss = [0]
    each: dict[int, int] = {}
    done = threading.Event()
    names: dict[int, str] = {}

    def short(p) -> str:
        if p.pid not in names:
            cmd = p.cmdline()
            names[p.pid] = " ".join(a.rsplit("/", 1)[-1] for a in cmd[:3])[:60]
        return names[p.pid]

    def sample():
        while not done.is_set():
            total = n = total_pss = 0
            procs = []
            for p in me.children(recursive=True):
                try:
                    rss = p.memory_info().rss
                    procs.append((short(p), rss))
                    each[p.pid] = max(each.get(p.pid, 0), rss)
                    total += rss
                    total_pss += pss(p.pid)
                    n += 1
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            peak_pss[0] = max(peak_pss[0], total_pss)
            if total > peak[0]:
                peak[0], peak[1], peak[2] = total, n, sorted(procs, key=lambda t: -t[1])
            done.wait(SAMPLE_S)

    load_before = os.getloadavg()[0]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        wall = time.monotonic() - t0
        reap_orphans()
        done.set()
        sampler.join()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    peak_each = sorted(((names.get(pid, str(pid)), rss) for pid, rss in each.items()), key=lambda t: -t[1])
    return Measured(
        name,
        cmd,
        rc,
        round(wall, 2),
        round(cpu, 2),
        peak[0],
        peak[1],
        peak[2],
        peak_each,
        round(load_before, 2),
        round(os.getloadavg()[0], 2),
        str(log),
        peak_pss=peak_pss[0],
    )


def tail(path: str, n: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# ------------------------------------------------------------------ the contestants


def ours_cmd(glob: str, out: Path, workers: int, model: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.cli",
        "run",
        str(CONFIG),
        "--input",
        glob,
        "--output",
        str(out),
        "--workers",
        str(workers),
        "--overwrite",
        "--set",
        f"stages.quality.model_path={model}",
    ]


def run_ours(tag: str, glob: str, workers: int, model: Path) -> Measured:
    out = RUNS / f"ours-w{workers}"
    if out.exists():
        shutil.rmtree(out)
    m = measure(f"ours --workers {workers}", ours_cmd(glob, out, workers, model), RUNS / f"{tag}.log")
    if m.rc != 0:
        raise SystemExit(f"{m.name} failed (rc={m.rc}):\n{tail(m.log)}")
    manifest = json.loads((out / "manifest.json").read_text())
    if not manifest["ledger"]["balanced"]:
        raise SystemExit(f"{m.name}: the ledger does not balance")
    m.extra = {
        "kept_ids": sorted(ours_kept(out)),
        "written": manifest["ledger"]["kept"],
        "ledger": manifest["ledger"],
        "stage_drops": {k: v.get("dropped", 0) for k, v in manifest["stages"].items()},
    }
    return m


def ours_kept(out: Path) -> set[str]:
    """Documents that passed every filter and dedup: the mixture's rows plus those the mixture
    left out only to hit its shares (rejected with stage `mixture`)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    kept = (
        set(
            ds.dataset(out / "mixture", format="parquet", partitioning="hive")
            .to_table(columns=["id"])["id"]
            .to_pylist()
        )
        if (out / "mixture").exists()
        else set()
    )
    if (out / "rejected").exists():
        rej = ds.dataset(out / "rejected", format="parquet").to_table(columns=["id", "stage"])
        kept |= set(rej.filter(pc.equal(rej["stage"], "mixture"))["id"].to_pylist())
    return kept


def run_datatrove(tag: str, py: Path, corpus: Path, langs: list[str]) -> Measured:
    work = RUNS / "datatrove"
    env = {**os.environ, "HF_HOME": str(DT_HOME), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    cmd = [
        str(py),
        str(Path(__file__).with_name("datatrove_race.py")),
        "--input",
        str(corpus),
        "--work",
        str(work),
        "--tasks",
        "2",
        "--workers",
        "2",
        "--lid-model",
        str(LID_MODEL),
        "--languages",
        ",".join(langs),
    ]
    m = measure("datatrove (2 workers)", cmd, RUNS / f"{tag}.log", env)
    if m.rc != 0:
        raise SystemExit(f"datatrove failed (rc={m.rc}):\n{tail(m.log)}")
    import pyarrow.dataset as ds

    ids = ds.dataset(work / "output", format="parquet").to_table(columns=["id"])["id"].to_pylist()
    stages = {}
    for line in Path(m.log).read_text(errors="replace").splitlines():
        if line.startswith('{"seconds"'):
            stages = json.loads(line)["stages"]
    m.extra = {"kept_ids": sorted(ids), "written": len(ids), "stages": stages}
    return m


# ------------------------------------------------------------------ profile of ours (child process)


def profile_child(glob: str, out: Path, model: Path, mode: str) -> dict:
    """In this process: our in-process run with each DoFn's own time measured ("timers") or
    under cProfile ("cprofile"). Returns what the report needs."""
    import functools
    import inspect

    import apache_beam as beam

    import pipeline.stages.base
    import pipeline.stages.dedup
    import pipeline.stages.finalize
    import pipeline.stages.heuristics
    import pipeline.stages.langid
    import pipeline.stages.mixture
    import pipeline.stages.quality
    import pipeline.stages.read
    import pipeline.stages.route
    import pipeline.stages.write
    from pipeline.cli import check_output, check_stage_setup, parser, resolve_config
    from pipeline.runner import run_local
    from pipeline.sources import discover

    seconds: dict[str, float] = {}
    calls: dict[str, int] = {}

    def add(name: str, dt: float) -> None:
        seconds[name] = seconds.get(name, 0.0) + dt

    def wrap_process(orig):
        @functools.wraps(orig)
        def process(self, *a, **k):
            name = type(self).__name__
            calls[name] = calls.get(name, 0) + 1
            t = time.perf_counter()
            res = orig(self, *a, **k)
            add(name, time.perf_counter() - t)
            if res is None:
                return None
            it = iter(res)

            def timed():  # time inside the DoFn only, not in the stages its outputs feed
                while True:
                    t = time.perf_counter()
                    try:
                        x = next(it)
                    except StopIteration:
                        add(name, time.perf_counter() - t)
                        return
                    add(name, time.perf_counter() - t)
                    yield x

            return timed()

        return process

    def wrap_setup(orig):
        @functools.wraps(orig)
        def setup(self, *a, **k):
            t = time.perf_counter()
            try:
                return orig(self, *a, **k)
            finally:
                add(f"{type(self).__name__} (setup)", time.perf_counter() - t)

        return setup

    if mode == "timers":
        mods = [
            pipeline.stages.base,
            pipeline.stages.dedup,
            pipeline.stages.finalize,
            pipeline.stages.heuristics,
            pipeline.stages.langid,
            pipeline.stages.mixture,
            pipeline.stages.quality,
            pipeline.stages.read,
            pipeline.stages.route,
            pipeline.stages.write,
        ]
        for mod in mods:
            for _, cls in inspect.getmembers(mod, inspect.isclass):
                if issubclass(cls, beam.DoFn) and cls.__module__ == mod.__name__:
                    if "process" in cls.__dict__:
                        cls.process = wrap_process(cls.__dict__["process"])
                    if "setup" in cls.__dict__:
                        cls.setup = wrap_setup(cls.__dict__["setup"])

    args = parser().parse_args(ours_cmd(glob, out, 1, model)[3:])  # what follows `python -m pipeline.cli`
    config = resolve_config(args)
    check_stage_setup(config)
    specs = discover(config.sources)
    check_output(config.output.path, True)
    t0 = time.perf_counter()
    if mode == "cprofile":
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        run_local(config, specs, 1)
        prof.disable()
        wall = time.perf_counter() - t0
        st = pstats.Stats(prof)
        rows = sorted(
            (
                (tt, ct, nc, f"{Path(fn).name}:{ln}({func})" if fn != "~" else func)
                for (fn, ln, func), (cc, nc, tt, ct, _) in st.stats.items()
            ),
            reverse=True,
        )[:20]
        return {
            "wall_s": wall,
            "total_tt": sum(v[2] for v in st.stats.values()),
            "top": [
                {"function": f, "tottime": round(tt, 2), "cumtime": round(ct, 2), "calls": nc} for tt, ct, nc, f in rows
            ],
        }
    run_local(config, specs, 1)
    wall = time.perf_counter() - t0
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "wall_s": wall,
        "seconds": seconds,
        "calls": calls,
        "ledger": manifest["ledger"],
        "stages": {k: v.get("dropped", 0) for k, v in manifest["stages"].items()},
    }


def run_profile(tag: str, glob: str, model: Path, mode: str) -> dict:
    out = RUNS / f"profile-{mode}"
    if out.exists():
        shutil.rmtree(out)
    res_path = RUNS / f"profile-{mode}.json"
    cmd = [
        sys.executable,
        "-m",
        "bench.run",
        "--profile-child",
        mode,
        "--profile-glob",
        glob,
        "--profile-out",
        str(out),
        "--profile-model",
        str(model),
        "--profile-result",
        str(res_path),
    ]
    m = measure(f"profile ({mode})", cmd, RUNS / f"{tag}.log")
    if m.rc != 0:
        raise SystemExit(f"profile run failed (rc={m.rc}):\n{tail(m.log)}")
    res = json.loads(res_path.read_text())
    res["process_wall_s"] = m.wall_s
    return res


# ------------------------------------------------------------------ report


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def best(runs: list[Measured], name: str) -> Measured:
    return min((r for r in runs if r.name == name), key=lambda r: r.wall_s)


def peak(runs: list[Measured], name: str) -> int:
    return max(r.peak_rss for r in runs if r.name == name)


def peak_pss(runs: list[Measured], name: str) -> int:
    return max(r.peak_pss for r in runs if r.name == name)


def fmt_mb(n: int) -> str:
    return f"{n / MiB:,.0f}"


def stage_rows(prof: dict, n_docs: int) -> list[tuple[str, str, float, float, str]]:
    """(stage, DoFn, seconds, share of the run, documents/s) from the timers profile."""
    sec = prof["seconds"]
    st = prof["stages"]
    ledger = prof["ledger"]
    reach = {"ReadFile": n_docs}
    left = n_docs - ledger.get("quarantined", 0)
    for name, cls in (("langid", "LanguageIdStage"), ("heuristics", "HeuristicsStage"), ("quality", "QualityStage")):
        reach[cls] = left
        left -= st.get(name, 0)
    reach["TokenCount"] = reach["DedupKeys"] = reach["RouteDocuments"] = left
    reach["Finalize"] = n_docs
    labels = {
        "ReadFile": "read + normalize",
        "LanguageIdStage": "langid",
        "HeuristicsStage": "heuristics",
        "QualityStage": "quality (fastText)",
        "TokenCount": "token counts",
        "DedupKeys": "dedup keys (MinHash)",
        "RouteDocuments": "route (let text go)",
        "ExactDedupPartition": "exact dedup",
        "MinHashPartition": "MinHash buckets",
        "AttachNodes": "MinHash survivors",
        "ResolveClusters": "MinHash survivors",
        "CountUnconverged": "connected components",
        "Finalize": "last pass (re-read, merge)",
        "WriteShard": "write Parquet",
        "WriteManifest": "manifest",
    }
    rows = []
    wall = prof["wall_s"]
    for cls, s in sorted(sec.items(), key=lambda kv: -kv[1]):
        base = cls.replace(" (setup)", "")
        label = labels.get(base, base) + (" — model load" if cls.endswith("(setup)") else "")
        rate = f"{reach[cls] / s:,.0f}" if cls in reach and s > 0 else ""
        rows.append((label, cls, s, s / wall, rate))
    return rows


def write_report(ctx: dict) -> str:
    runs: list[Measured] = ctx["runs"]
    n_docs, n_bytes = ctx["n_docs"], ctx["n_bytes"]
    mb = n_bytes / 1e6
    dt, w2, w1 = (best(runs, n) for n in ("datatrove (2 workers)", "ours --workers 2", "ours --workers 1"))
    sp2, sp1 = dt.wall_s / w2.wall_s, dt.wall_s / w1.wall_s
    mem2, mem1 = peak(runs, w2.name) / peak(runs, dt.name), peak(runs, w1.name) / peak(runs, dt.name)
    m = ctx["machine"]
    L = [
        f"# Race against datatrove ({'quick' if ctx['quick'] else 'full'} corpus)",
        "",
        f"`{ctx['command']}` — {time.strftime('%Y-%m-%d %H:%M')}, on {m['nproc']} cores ({m['cpu']}), "
        f"{m['ram_gib']} GiB RAM, Python {m['python']}, Linux {m['kernel']}. Load average (1 min) at the start: "
        f"{ctx['load_start']} (above ~1, other processes competed for the {m['nproc']} cores; the load before and "
        f"after each run is in the table). Each contestant ran {ctx['rounds']} times, alternating; the summary takes "
        f"the best wall time of each and the highest peak memory. CPU seconds (every process of the tree, "
        f"children included) depend less on the load than wall times.",
        "",
        f"Corpus: `{ctx['corpus']}` — {n_docs:,} documents, {mb:,.1f} MB of text.",
        "",
        "Cores busy: CPU seconds over wall seconds, start-up included (at most the machine's cores). Peak RSS "
        "sums the resident memory of every process of the tree (the goals' measure); peak PSS counts a page "
        "shared by n processes 1/n in each, so the memory forked SDK workers share with the process they were "
        "forked from (pipeline/sdk_worker.py) counts once.",
        "",
        "| run | round | wall s | docs/s | MB/s | CPU s | cores busy | docs per CPU-s | peak RSS MB (procs) | peak PSS MB | load before → after | kept |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        L.append(
            f"| {r.name} | {r.extra.get('round', '')} | {r.wall_s:,.1f} | {n_docs / r.wall_s:,.0f} | "
            f"{mb / r.wall_s:,.2f} | {r.cpu_s:,.1f} | {r.cpu_s / r.wall_s:.2f} | {n_docs / r.cpu_s:,.0f} | {fmt_mb(r.peak_rss)} "
            f"({r.peak_procs}) | {fmt_mb(r.peak_pss)} | {r.load_before} → {r.load_after} | {len(r.extra['kept_ids']):,} |"
        )
    L += [
        "",
        "Best of the rounds, ours over datatrove:",
        "",
        "| ours | docs/s ours | docs/s datatrove | speedup | goal | CPU-s ratio (theirs/ours) | peak RSS ours / theirs | memory goal | peak PSS ours / theirs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    goals = GOALS["quick" if ctx["quick"] else "full"]
    for r, sp, mem, goal, memgoal in (
        (w2, sp2, mem2, goals["speedup_w2"], ""),
        (w1, sp1, mem1, goals["speedup_w1"], "≤ 1.0"),
    ):
        ok = "met" if sp >= goal else f"missed by {goal / sp:.2f}×"
        memok = ("met" if mem <= 1.0 else f"missed ({mem:.2f}×)") if memgoal else "—"
        L.append(
            f"| {r.name} | {n_docs / r.wall_s:,.0f} | {n_docs / dt.wall_s:,.0f} | **{sp:.2f}×** | ≥ {goal:.0f}×: {ok} "
            f"| {dt.cpu_s / r.cpu_s:.2f} | {mem:.2f} ({fmt_mb(peak(runs, r.name))} / {fmt_mb(peak(runs, dt.name))} MB) "
            f"| {memgoal + ': ' + memok if memgoal else memok} "
            f"| {peak_pss(runs, r.name) / max(1, peak_pss(runs, dt.name)):.2f} ({fmt_mb(peak_pss(runs, r.name))} / "
            f"{fmt_mb(peak_pss(runs, dt.name))} MB) |"
        )
    L += ["", "Processes at the moment of each contestant's highest peak (RSS, MB):", ""]
    for name in (w2.name, w1.name, dt.name):
        r = max((x for x in runs if x.name == name), key=lambda x: x.peak_rss)
        L.append(f"- {name}: " + ", ".join(f"`{c}` {fmt_mb(b)}" for c, b in r.peak_by_process))
    # kept overlap
    man = ctx["manifest"]
    ours_ids, dt_ids = set(w2.extra["kept_ids"]), set(dt.extra["kept_ids"])
    en = {i for i, row in man.items() if row.get("lang") == "en"}
    same = set(w1.extra["kept_ids"]) == ours_ids
    L += [
        "",
        "## Do both keep the same documents?",
        "",
        f"Ours kept {len(ours_ids):,} documents after every filter and dedup ({w2.extra['written']:,} written to the "
        f"mixture, the rest left out by its sampling to hit the token shares); datatrove kept {len(dt_ids):,}. "
        f"Our `--workers 1` and `--workers 2` runs kept {'the same' if same else 'DIFFERENT'} sets.",
        "",
        "| documents | ours | datatrove | both | Jaccard |",
        "| --- | --- | --- | --- | --- |",
        f"| all | {len(ours_ids):,} | {len(dt_ids):,} | {len(ours_ids & dt_ids):,} | {jaccard(ours_ids, dt_ids):.3f} |",
        f"| English (corpus `lang` = en) | {len(ours_ids & en):,} | {len(dt_ids & en):,} | {len(ours_ids & dt_ids & en):,} "
        f"| {jaccard(ours_ids & en, dt_ids & en):.3f} |",
    ]
    by_cat = {}
    for i in ours_ids | dt_ids:
        c = man.get(i, {}).get("category", "?")
        o, d = i in ours_ids, i in dt_ids
        acc = by_cat.setdefault(c, [0, 0, 0])
        acc[0] += o
        acc[1] += d
        acc[2] += o and d
    L += [f"| {c} | {o:,} | {d:,} | {b:,} | {b / (o + d - b):.3f} |" for c, (o, d, b) in sorted(by_cat.items())]
    L += [
        "",
        "datatrove's Gopher filters and MinHash use English stop words and spaCy's English tokenizer, so it "
        "keeps almost no other language (its `GopherQualityFilter` drops them for too few stop words); ours applies "
        "the rules per language. Both drop code here (the corpus is one text source; code fails language ID).",
    ]
    # profile
    prof = ctx.get("profile")
    if prof:
        L += [
            "",
            "## Where our time goes (in process, one worker)",
            "",
            f"A separate in-process run on {prof['docs']:,} documents ({prof['corpus']}) with each DoFn's own time "
            f"measured (exclusive of the stages it feeds): {prof['wall_s']:.1f} s in `run_local`, "
            f"{prof['process_wall_s']:.1f} s for the whole process (imports and start-up included).",
            "",
            "| stage | DoFn | seconds | share of run | docs/s of the stage |",
            "| --- | --- | --- | --- | --- |",
        ]
        rows = stage_rows(prof, prof["docs"])
        for label, cls, s, share, rate in rows:
            L.append(f"| {label} | {cls} | {s:.2f} | {share:.1%} | {rate} |")
        rest = prof["wall_s"] - sum(r[2] for r in rows)
        L.append(f"| Beam runner (shuffles, coders, bundles) | — | {rest:.2f} | {rest / prof['wall_s']:.1%} | |")
    cprof = ctx.get("cprofile")
    if cprof:
        L += [
            "",
            f"cProfile of another in-process run ({cprof['wall_s']:.1f} s under the profiler): top functions "
            "by own time.",
            "",
            "| function | own s | cumulative s | calls |",
            "| --- | --- | --- | --- |",
        ]
        L += [
            f"| `{t['function']}` | {t['tottime']:.2f} | {t['cumtime']:.2f} | {t['calls']:,} |"
            for t in cprof["top"][:15]
        ]
    if dt.extra.get("stages"):
        L += [
            "",
            "datatrove's own stage times in its best run: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in dt.extra["stages"].items())
            + ".",
        ]
    scale = ctx.get("scale")
    if scale:
        L += [
            "",
            "## Memory as the corpus grows (ours)",
            "",
            f"The first {scale[0]['parts']} files of the quick corpus repeated with new ids (repeats are exact "
            f"duplicates, so every copy crosses the dedup shuffles), `--workers {scale[0]['workers']}`:",
            "",
            "| corpus | documents | MB | wall s | docs/s | peak RSS MB (procs) | load before |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for s in scale:
            L.append(
                f"| {s['factor']}× | {s['docs']:,} | {s['mb']:,.0f} | {s['wall_s']:,.1f} | {s['docs'] / s['wall_s']:,.0f} "
                f"| {fmt_mb(s['peak_rss'])} ({s['procs']}) | {s['load']} |"
            )
        g = scale[-1]["peak_rss"] / scale[0]["peak_rss"]
        L.append("")
        L.append(f"Peak memory grows {g:.2f}× for {scale[-1]['factor'] // scale[0]['factor']}× the documents.")
    L += ["", f"speedup_vs_datatrove={sp2:.2f} peak_rss_ratio={mem2:.2f}", ""]
    text = "\n".join(L)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)  # the latest race, whichever corpus
    RESULTS.with_name(f"race-{'quick' if ctx['quick'] else 'full'}.md").write_text(text)
    return f"speedup_vs_datatrove={sp2:.2f} peak_rss_ratio={mem2:.2f}"


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Race our pipeline against datatrove on the same corpus.")
    ap.add_argument("--quick", action="store_true", help="race on ../shared/data/bench-corpus (16k documents)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-scale", action="store_true", help="skip the 1x/4x/16x memory scale-up (full mode)")
    ap.add_argument("--scale", action="store_true", help="run the scale-up in quick mode too")
    ap.add_argument(
        "--scale-parts",
        type=int,
        default=2,
        help="the scale-up repeats this many of the quick corpus's 8 files (default 2: ~4,000 docs)",
    )
    ap.add_argument("--scale-workers", type=int, default=1, help="--workers of the scale-up runs (default 1)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--profile-child", choices=["timers", "cprofile"], help=argparse.SUPPRESS)
    ap.add_argument("--profile-glob", help=argparse.SUPPRESS)
    ap.add_argument("--profile-out", help=argparse.SUPPRESS)
    ap.add_argument("--profile-model", help=argparse.SUPPRESS)
    ap.add_argument("--profile-result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.profile_child:
        res = profile_child(args.profile_glob, Path(args.profile_out), Path(args.profile_model), args.profile_child)
        Path(args.profile_result).write_text(json.dumps(res))
        return 0

    become_subreaper()
    t_start = time.monotonic()
    RUNS.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(f"[bench {time.monotonic() - t_start:6.0f}s] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    if args.quick:
        corpus = BENCH_CORPUS
        n_docs = sum(1 for _ in read_bench_manifest(corpus))
        n_bytes = int(json.loads((corpus / "corpus_stats.json").read_text())["text_bytes"])
    else:
        log("building (or reusing) the full corpus ...")
        build_full()
        corpus = CACHE / "corpus-full"
        n_docs, n_bytes = corpus_size(corpus)
    glob = str(corpus / "part-*.jsonl.zst")
    log(f"corpus {corpus}: {n_docs:,} documents, {n_bytes / 1e6:,.1f} MB")

    from bench.proxy_quality import ensure_model

    model = ensure_model()
    dt_py = ensure_dt_venv()
    langs = languages()

    ctx = {
        "quick": args.quick,
        "machine": machine(),
        "load_start": round(os.getloadavg()[0], 2),
        "command": "make bench"
        + (" QUICK=1" if args.quick else "")
        + f"  (python -m bench.run{' --quick' if args.quick else ''})",
        "corpus": str(corpus),
        "n_docs": n_docs,
        "n_bytes": n_bytes,
        "rounds": args.rounds,
        "runs": [],
    }
    for rnd in range(1, args.rounds + 1):
        order = ["w2", "w1", "dt"] if rnd % 2 else ["dt", "w1", "w2"]
        for who in order:
            if who == "dt":
                m = run_datatrove(f"r{rnd}-datatrove", dt_py, corpus, langs)
            else:
                m = run_ours(f"r{rnd}-ours-{who}", glob, int(who[1]), model)
            m.extra["round"] = rnd
            ctx["runs"].append(m)
            log(
                f"round {rnd}: {m.name}: {m.wall_s:.1f} s ({n_docs / m.wall_s:,.0f} docs/s), CPU {m.cpu_s:.1f} s, "
                f"peak {fmt_mb(m.peak_rss)} MB in {m.peak_procs} processes, load {m.load_before} -> {m.load_after}, "
                f"kept {len(m.extra['kept_ids']):,}"
            )

    ctx["manifest"] = read_bench_manifest(corpus)
    if not args.no_profile:
        if args.quick:
            pglob, pname = glob, "the race corpus"
        else:  # a quarter of the full corpus keeps the profile short
            parts = sorted(corpus.glob("part-*.jsonl.zst"))[:4]
            sub = RUNS / "profile-corpus"
            sub.mkdir(parents=True, exist_ok=True)
            for old in sub.glob("part-*"):
                old.unlink()
            for p in parts:
                os.symlink(p, sub / p.name)
            pglob = str(sub / "part-*.jsonl.zst")
            pname = f"{len(parts)} of the full corpus's 16 parts"
        log("profile: per-DoFn timers ...")
        prof = run_profile("profile-timers", pglob, model, "timers")
        prof["docs"] = prof["ledger"]["input"]
        prof["corpus"] = pname
        ctx["profile"] = prof
        log(f"profile: {prof['wall_s']:.1f} s; cProfile ...")
        ctx["cprofile"] = run_profile("profile-cprofile", pglob, model, "cprofile")

    if (not args.quick and not args.no_scale) or args.scale:
        scale = []
        for factor in (1, 4, 16):
            d = CACHE / f"scale-quick-p{args.scale_parts}-x{factor}"
            log(f"scale-up: {factor}x ...")
            stats = build_scaled(BENCH_CORPUS, factor, d, args.scale_parts)
            m = run_ours(f"scale-x{factor}", str(d / "part-*.jsonl.zst"), args.scale_workers, model)
            scale.append(
                {
                    "factor": factor,
                    "docs": stats["docs"],
                    "mb": stats["text_bytes"] / 1e6,
                    "wall_s": m.wall_s,
                    "workers": args.scale_workers,
                    "peak_rss": m.peak_rss,
                    "procs": m.peak_procs,
                    "load": m.load_before,
                    "parts": args.scale_parts,
                }
            )
            log(f"scale-up {factor}x: {stats['docs']:,} docs, {m.wall_s:.1f} s, peak {fmt_mb(m.peak_rss)} MB")
        ctx["scale"] = scale

    line = write_report(ctx)
    raw = {
        **{k: v for k, v in ctx.items() if k not in ("runs", "manifest")},
        "runs": [{**asdict(r), "extra": {k: v for k, v in r.extra.items() if k != "kept_ids"}} for r in ctx["runs"]],
    }
    (RUNS / "last.json").write_text(json.dumps(raw, indent=1, default=str))
    log(f"wrote {RESULTS} in {time.monotonic() - t_start:.0f} s")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
