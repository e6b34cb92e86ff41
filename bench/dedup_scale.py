"""Memory of the dedup stages as the corpus grows: per-worker memory must not grow with the
corpus (except per-partition group sizes).

    python -m bench.dedup_scale [--sizes 50000,200000] [--workers 1,2]

Corpus of N documents: the first N/2 documents of the full race corpus (bench/.cache/corpus-full,
real text and code, built by bench.build_corpus if missing) and one edited copy of each, with a
new id and word edits at a rate drawn from 1, 3, 10 and 30% (`bench.build_corpus.edit_words`):
about half of the copies are near-duplicates of their original, the others distinct documents
for MinHash, so every size has the same mix. Files of 3,125 documents each (16 at 50k, 64 at
200k), so that a bigger corpus means more files, not bigger ones. Cached in
bench/.cache/dedup-scale-N.

Pipeline (bench/configs/dedup-scale.yaml): the graph's own first pass with every per-document
stage off -> dedup keys -> route -> exact dedup -> MinHash 14x8 bands -> connected components ->
cluster resolution, the same transforms as `curate run`; no mixture, last pass or write.
It runs in a child process on Beam's local FnApiRunner, in process (`--workers 1`) and in its
multi-processing mode (`--workers 2`: the runner process and two SDK worker processes), and is
measured from outside every 0.2 s: the peak RSS of each process. In Beam's local runner the
runner process holds every shuffle's data (GroupByKey buffers) in memory, and each SDK worker
gets its whole share of a stage as one bundle, read ahead; on Dataflow, Flink or Spark the
shuffle lives in the shuffle service or on disk and is streamed to the workers, so what a
worker VM needs is its SDK process's imports plus the DoFns' working sets. The child reports the dedup counters and the shuffle partitions; a separate in-process
run traces the dedup DoFns' working sets (tracemalloc around each call), and in the
multi-processing runs each runner stage's share of the SDK worker's peak is recorded.

Writes bench/results/dedup-scale.md and prints it.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

from bench.build_corpus import CACHE, FULL_DIR, build_full, edit_words, write_corpus
from bench.data import iter_bench_corpus

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "dedup-scale.md"
CONFIG = Path(__file__).resolve().parent / "configs" / "dedup-scale.yaml"
RUNS = CACHE / "runs"
COPY_EDIT_RATES = (0.01, 0.03, 0.10, 0.30)
SEED = 4321
DOCS_PER_FILE = 3125


def build(n_docs: int) -> Path:
    """The corpus of `n_docs` documents (cached)."""
    dest = CACHE / f"dedup-scale-{n_docs}"
    stats = dest / "corpus_stats.json"
    parts = max(1, n_docs // DOCS_PER_FILE)
    if stats.exists() and (s := json.loads(stats.read_text())).get("docs") == n_docs and len(s["files"]) == parts:
        return dest
    build_full()
    half = n_docs // 2
    originals = []
    for d in iter_bench_corpus(FULL_DIR):
        originals.append({k: d[k] for k in ("id", "text", "category", "source", "lang")})
        if len(originals) == half:
            break
    if len(originals) < half:
        raise SystemExit(f"the full corpus has {len(originals):,} documents; {n_docs:,} needs {half:,}")
    rng = random.Random(SEED)
    copies = []
    for d in originals:
        rate = rng.choice(COPY_EDIT_RATES)
        copies.append(
            {
                **d,
                "id": f"{d['id']}~e{round(rate * 100)}",
                "text": edit_words(d["text"], rate, rng),
                "dup_of": d["id"],
                "edit_rate": rate,
            }
        )
    write_corpus(originals + copies, dest, parts, extra_stats={"copy_edit_rates": COPY_EDIT_RATES})
    return dest


# ------------------------------------------------------------------ the child: the dedup stages alone


def trace_working_sets(peaks: dict) -> None:
    """Wrap the dedup DoFns' `process` (in this process only) so that each call records the
    peak of what it allocates (tracemalloc, started and stopped around the call): the memory a
    worker needs for one partition (or one node), whatever the runner buffers around it."""
    import tracemalloc

    from pipeline.stages import dedup

    def wrap(cls):
        orig = cls.process

        def process(self, *args, **kwargs):
            tracemalloc.start()
            try:
                out = list(orig(self, *args, **kwargs) or ())
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            peaks[cls.__name__] = max(peaks.get(cls.__name__, 0), peak)
            return out

        cls.process = process

    for cls in (
        dedup.UrlDedupPartition,
        dedup.ExactDedupPartition,
        dedup.MinHashPartition,
        dedup.AttachNodes,
        dedup.ResolveClusters,
    ):
        wrap(cls)


class StageSampler:
    """Peak RSS of this process (the runner) and of the largest SDK worker process during each
    runner stage, every 0.05 s. The stage comes from the FnApiRunner's per-bundle debug log line
    (a Beam internal: if it changes, every sample falls under "start")."""

    def __init__(self) -> None:
        import logging
        import threading

        import psutil
        from apache_beam.runners.portability.fn_api_runner import fn_runner

        self.stage, self.peaks, self.done = "start", {}, threading.Event()
        me = psutil.Process()
        sampler = self

        class Handler(logging.Handler):
            def emit(self, record):
                msg = record.getMessage()
                if msg.startswith("Running bundle for stage "):
                    m = re.search(r"([A-Z]\w*(?:/\w+)+)", msg)
                    sampler.stage = m.group(1) if m else msg[25:85]

        def sample():
            while not self.done.is_set():
                rss, kids = me.memory_info().rss, []
                for c in me.children(recursive=True):
                    try:
                        kids.append(c.memory_info().rss)
                    except psutil.Error:
                        pass
                runner, worker = self.peaks.setdefault(self.stage, (0, 0))
                self.peaks[self.stage] = (max(runner, rss), max(worker, max(kids, default=0)))
                self.done.wait(0.05)

        log = fn_runner._BUNDLE_LOGGER
        log.setLevel(logging.DEBUG)
        log.addHandler(Handler())
        log.propagate = False
        threading.Thread(target=sample, daemon=True).start()

    def stop(self) -> dict:
        self.done.set()
        return self.peaks


def child(glob: str, workers: int, result: Path, trace: bool) -> None:
    import apache_beam as beam

    from pipeline.config import Source, load_config
    from pipeline.graph import first_pass, shuffle_partitions
    from pipeline.runner import in_process_runner, local_options, read_counters
    from pipeline.sdk_worker import limit_malloc_arenas
    from pipeline.sources import discover
    from pipeline.stages.dedup import DEDUP_TAG, NODES_TAG, Deduplicate
    from pipeline.stages.route import URL_TAG

    config = load_config(str(CONFIG))
    config.sources = [Source(name="input", paths=[glob])]
    specs = discover(config.sources)
    partitions = shuffle_partitions(config, specs)
    peaks: dict[str, int] = {}
    if trace:
        trace_working_sets(peaks)
    limit_malloc_arenas()  # as `curate run` does
    t0 = time.monotonic()
    stages = StageSampler()
    p = beam.Pipeline(runner=in_process_runner(), options=local_options(workers))
    _, routed, _, _ = first_pass(p, config, specs, partitions)
    (routed[URL_TAG], routed[DEDUP_TAG], routed[NODES_TAG]) | "Dedup" >> Deduplicate.for_config(config, partitions)
    res = p.run()
    res.wait_until_finish()
    by_stage = stages.stop()
    result.write_text(
        json.dumps(
            {
                "seconds": round(time.monotonic() - t0, 1),
                "partitions": partitions,
                "input_bytes": sum(s.size for s in specs),
                "counters": read_counters(res),
                "working_sets": peaks,
                "by_stage": by_stage,
            }
        )
    )


# ------------------------------------------------------------------ the parent: measure and report


def run_one(corpus: Path, n_docs: int, workers: int, trace: bool = False) -> dict:
    from bench.run import measure, tail

    result = RUNS / f"dedup-scale-{n_docs}-w{workers}{'-traced' if trace else ''}.json"
    result.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "bench.dedup_scale",
        "--child",
        str(corpus / "part-*.jsonl.zst"),
        "--workers",
        str(workers),
        "--result",
        str(result),
    ] + (["--trace"] if trace else [])
    m = measure(f"dedup {n_docs} w{workers}", cmd, RUNS / f"dedup-scale-{n_docs}-w{workers}.log")
    if m.rc != 0:
        raise SystemExit(f"{m.name} failed (rc={m.rc}):\n{tail(m.log)}")
    out = json.loads(result.read_text())
    sdk_worker = lambda name: "sdk_worker_main" in name and not name.startswith("sh ")  # noqa: E731 (not its sh -c)
    runner = max((rss for name, rss in m.peak_each if "bench.dedup_scale" in name), default=0)
    sdk = [rss for name, rss in m.peak_each if sdk_worker(name)]
    out.update(
        docs=n_docs,
        workers=workers,
        wall_s=m.wall_s,
        cpu_s=m.cpu_s,
        peak_total=m.peak_rss,
        peak_runner=runner,
        peak_sdk_worker=max(sdk, default=0),
        sdk_workers=len(sdk),
        load=m.load_before,
    )
    return out


def stage_growth(by_stage: dict) -> dict[str, int]:
    """{stage: what it added to the SDK worker's running peak}, stages in the order they ran."""
    out, peak = {}, 0
    for stage, (_, worker) in by_stage.items():
        if stage != "start":
            out[stage] = max(0, worker - peak)
        peak = max(peak, worker)
    return out


def report(rows: list[dict], traced: list[dict]) -> str:
    mb = lambda n: f"{n / (1 << 20):,.0f}"  # noqa: E731
    L = [
        "# Dedup stages: memory against corpus size",
        "",
        "`python -m bench.dedup_scale` — the dedup stages alone (first pass with the per-document stages off, "
        "dedup keys, exact + MinHash 14×8, connected components, cluster resolution) on Beam's local "
        "FnApiRunner; peak RSS of each process sampled every 0.2 s.",
        "",
        "| docs | workers | shuffle partitions | exact dups | near dups | wall s | runner process peak MB "
        "| SDK worker peak MB | total peak MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c = r["counters"]
        sdk = f"{mb(r['peak_sdk_worker'])} ({r['sdk_workers']} procs)" if r["sdk_workers"] else "(in process)"
        L.append(
            f"| {r['docs']:,} | {r['workers']} | {r['partitions']} | {c.get('exact_dedup/duplicate', 0):,} "
            f"| {c.get('minhash_dedup/near_duplicate', 0):,} | {r['wall_s']:.0f} | {mb(r['peak_runner'])} "
            f"| {sdk} | {mb(r['peak_total'])} |"
        )
    L.append("")
    for w in sorted({r["workers"] for r in rows}):
        rs = sorted((r for r in rows if r["workers"] == w), key=lambda r: r["docs"])
        if len(rs) < 2:
            continue
        a, b = rs[0], rs[-1]
        x = b["docs"] / a["docs"]
        if b["sdk_workers"]:
            L.append(
                f"- `--workers {w}`, {x:.0f}× the documents: SDK worker peak {mb(a['peak_sdk_worker'])} → "
                f"{mb(b['peak_sdk_worker'])} MB ({b['peak_sdk_worker'] / a['peak_sdk_worker']:.2f}×), "
                f"runner process {mb(a['peak_runner'])} → {mb(b['peak_runner'])} MB "
                f"({b['peak_runner'] / a['peak_runner']:.2f}×)."
            )
        else:
            L.append(
                f"- in process, {x:.0f}× the documents: peak {mb(a['peak_total'])} → {mb(b['peak_total'])} MB "
                f"({b['peak_total'] / a['peak_total']:.2f}×)."
            )
    if traced:
        names = sorted({k for r in traced for k in r["working_sets"]})
        L += [
            "",
            "Largest working set of one call of each dedup DoFn (what it allocates while it processes one "
            "shuffle partition, or one component for ResolveClusters; tracemalloc, in process, a separate run):",
            "",
            "| docs | shuffle partitions | " + " | ".join(f"{n} MB" for n in names) + " |",
            "|---:|---:|" + "---:|" * len(names),
        ]
        for r in traced:
            L.append(
                f"| {r['docs']:,} | {r['partitions']} | "
                + " | ".join(f"{r['working_sets'].get(n, 0) / (1 << 20):,.1f}" for n in names)
                + " |"
            )
    multi = sorted((r for r in rows if r["sdk_workers"]), key=lambda r: r["docs"])
    if len(multi) >= 2:
        a, b = (stage_growth(r["by_stage"]) for r in (multi[0], multi[-1]))
        top = sorted(b, key=lambda s: -b[s])[:6]
        L += [
            "",
            f"Where the SDK worker's peak grows (`--workers {multi[-1]['workers']}`): MB that each runner stage "
            "(named by its first transform) adds to the largest SDK worker process's peak so far, for the six "
            "stages that add most:",
            "",
            f"| stage | {multi[0]['docs']:,} docs | {multi[-1]['docs']:,} docs |",
            "|---|---:|---:|",
        ]
        for s in (s for s in b if s in top):
            L.append(f"| `{s}` | {mb(a[s]) if s in a else '(not sampled)'} | {mb(b[s])} |")
    L.append("")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50000,200000")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--child", metavar="GLOB", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, int(args.workers), args.result, args.trace)
        return 0
    rows, traced = [], []
    for n in (int(s) for s in args.sizes.split(",")):
        corpus = build(n)
        for w in (int(s) for s in args.workers.split(",")):
            print(f"dedup scale: {n:,} docs, --workers {w} ...", file=sys.stderr, flush=True)
            rows.append(run_one(corpus, n, w))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        print(f"dedup scale: {n:,} docs, in process, DoFn working sets traced ...", file=sys.stderr, flush=True)
        traced.append(run_one(corpus, n, 1, trace=True))
        print(json.dumps(traced[-1]), file=sys.stderr, flush=True)
    text = report(rows, traced)
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
