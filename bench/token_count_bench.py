"""What exact token counts cost: Llama 3's tokenizer (the default `n_tokens`) on the bench corpus.

  python -m bench.token_count_bench [--docs N] [--rounds R] [--no-pipeline] [--no-tiktoken]

1. The counter alone (`classifiers.tokens.TokenCounter`, the code the `Tokens` stage runs: the
   compiled kernel for Llama 3), batches of 256 documents, documents/s and MB/s per CPU-second with
   1 thread (the per-core figure) and with every core, against tiktoken (what counts the texts
   the kernel leaves; `threads` threads) and `tokenizers`' `encode_batch_fast` on the same
   tokenizer.json (RAYON_NUM_THREADS threads); per category, Llama 3 tokens against the bytes/4
   estimate the pipeline used to default to.
2. The same ids from the tokenizer.json (`tokenizers`) as from an independent tiktoken Encoding
   (the library of Meta's reference tokenizer, llama3/tokenizer.py) made straight from the GGUF,
   on every document (skipped without tiktoken).
3. In the pipeline: `curate run` with the race's config (bench/configs/race.yaml, every stage on,
   --workers 1) on the whole bench corpus, `tokenizer.kind=approx` against the default, CPU
   seconds of the process (best of R rounds, alternating), and how many documents the stage
   counts (those that pass the filters) against how many dedup then keeps.

Writes bench/results/tokens.md. Reads ../shared/data/bench-corpus (bench/data.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from bench.data import BENCH_CORPUS, iter_bench_corpus

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "tokens.md"
RUNS = ROOT / "bench" / ".cache" / "runs" / "tokens"
BATCH = 256  # runner.batch_size's default: documents per encode_batch in the pipeline

CJK = {"zh", "ja", "ko"}
THAI_INDIC = {"th", "hi", "bn", "ta", "te", "mr", "gu", "kn", "ml", "pa", "ur", "ne", "si"}
NON_LATIN = {"ru", "uk", "bg", "sr", "mk", "be", "kk", "el", "ar", "fa", "he", "hy", "ka", "am"}


def group_of(rec: dict) -> str:
    if rec.get("category") == "c_code":
        return "code"
    lang = (rec.get("lang") or "").split("_")[0].split("-")[0]
    if lang == "en":
        return "English"
    if lang in CJK:
        return "Chinese/Japanese/Korean"
    if lang in THAI_INDIC:
        return "Thai and Indic"
    if lang in NON_LATIN:
        return "Cyrillic, Greek, Arabic, Hebrew, ..."
    return "other Latin-script"


def load(max_docs: int | None) -> list[dict]:
    out = []
    for rec in iter_bench_corpus():
        out.append({"text": rec["text"], "group": group_of(rec)})
        if max_docs and len(out) >= max_docs:
            break
    return out


# ----------------------------------------------------------------------------- 1. the counter


def _timed(fn, texts: list[str], rounds: int = 2) -> tuple[float, float, list[int]]:
    """Best (wall s, CPU s) of `rounds` passes of fn over the texts in batches of BATCH."""
    fn(texts[:BATCH])  # warm up (thread pools, caches)
    best, counts = None, []
    for _ in range(rounds):
        w, c = time.perf_counter(), time.process_time()
        counts = []
        for i in range(0, len(texts), BATCH):
            counts += fn(texts[i : i + BATCH])
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        if best is None or cpu < best[1]:
            best = (wall, cpu)
    return best[0], best[1], counts


def child(threads: int, max_docs: int | None) -> dict:
    """In a process whose RAYON_NUM_THREADS was set before tokenizers loaded: the pipeline's
    counter (the compiled kernel), the library counter (tiktoken, `threads` threads) and
    `tokenizers`' encode_batch_fast on the same file."""
    from tokenizers import Tokenizer

    from classifiers.text import approx_token_count
    from classifiers.tokens import TokenCounter, resolve

    docs = load(max_docs)
    texts = [d["text"] for d in docs]
    t = time.perf_counter()
    spec = resolve("llama3")
    counter = TokenCounter.load(spec)
    load_s = time.perf_counter() - t
    counter.threads = threads
    wall, cpu, counts = _timed(counter.count, texts)
    library = TokenCounter._library_counter(spec, spec.path)  # what counts a text the kernel leaves
    library.threads = threads
    lib_wall, lib_cpu, lib_counts = _timed(library.count, texts)
    t = time.perf_counter()
    hf = Tokenizer.from_file(spec.path)
    hf_load_s = time.perf_counter() - t
    hf_wall, hf_cpu, hf_counts = _timed(
        lambda b: [len(e.ids) for e in hf.encode_batch_fast(b, add_special_tokens=False)], texts, 1
    )
    groups: dict[str, dict] = defaultdict(lambda: {"docs": 0, "bytes": 0, "tokens": 0, "approx": 0})
    for d, n in zip(docs, counts):
        g = groups[d["group"]]
        nb = len(d["text"].encode("utf-8", "surrogatepass"))
        g["docs"] += 1
        g["bytes"] += nb
        g["tokens"] += n
        g["approx"] += approx_token_count(nb)
    return {
        "threads": threads,
        "docs": len(texts),
        "bytes": sum(g["bytes"] for g in groups.values()),
        "tokens": sum(counts),
        "engine": _engine(counter),
        "lib_engine": _engine(library),
        "lib_wall_s": lib_wall,
        "lib_cpu_s": lib_cpu,
        "lib_same": lib_counts == counts,
        "load_s": load_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "hf_load_s": hf_load_s,
        "hf_wall_s": hf_wall,
        "hf_cpu_s": hf_cpu,
        "same_counts": counts == hf_counts,
        "groups": dict(groups),
        "sha256": spec.sha256,
    }


def _engine(counter) -> str:
    if counter.native is not None:
        return "compiled kernel"
    return "tiktoken" if counter.encoding is not None else "tokenizers"


def run_child(threads: int, max_docs: int | None) -> dict:
    env = {**os.environ, "RAYON_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "true"}
    cmd = [sys.executable, "-m", "bench.token_count_bench", "--child", str(threads)]
    if max_docs:
        cmd += ["--docs", str(max_docs)]
    out = subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- 2. tiktoken


def tiktoken_check(max_docs: int | None) -> dict | None:
    """An independent tiktoken Encoding made from llama.cpp's GGUF (ranks = token ids, Meta's
    pattern; the way Meta's reference tokenizer loads its tokenizer.model) against the
    tokenizer.json through `tokenizers`, id for id, on every document."""
    try:
        import tiktoken
    except ImportError:
        return None
    from tokenizers import Tokenizer

    from classifiers import artifacts
    from classifiers.artifacts import LLAMA_BPE_GGUF, read_gguf_metadata
    from classifiers.tokens import _byte_decoder, resolve

    meta = read_gguf_metadata(artifacts.llama_cpp_vocab_dir() / LLAMA_BPE_GGUF)
    byte_of = _byte_decoder()
    ranks = {
        bytes(byte_of[c] for c in tok): i
        for i, (tok, typ) in enumerate(zip(meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]))
        if typ == 1
    }
    enc = tiktoken.Encoding("llama3", pat_str=artifacts.LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens={})
    tok = Tokenizer.from_file(resolve("llama3").path)
    texts = [d["text"] for d in load(max_docs)]
    differ = 0
    for i in range(0, len(texts), BATCH):
        ours = tok.encode_batch_fast(texts[i : i + BATCH], add_special_tokens=False)
        ref = enc.encode_ordinary_batch(texts[i : i + BATCH])
        differ += sum(a.ids != b for a, b in zip(ours, ref))
    return {"docs": len(texts), "differ": differ, "tiktoken": tiktoken.__version__}


# ----------------------------------------------------------------------------- 3. the pipeline


def pipeline_run(kind: str, model: Path) -> dict:
    out = RUNS / kind
    from bench.run import ours_cmd  # the race's own command line

    cmd = ours_cmd(str(BENCH_CORPUS / "part-*.jsonl.zst"), out, 1, model)
    if kind == "approx":
        cmd += ["--set", "tokenizer.kind=approx"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    w = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - w
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m = json.loads((out / "manifest.json").read_text())
    stages = {k: v.get("dropped", 0) for k, v in m["stages"].items()}
    ledger = m["ledger"]
    counted = (
        ledger["input"]
        - ledger["quarantined"]
        - sum(stages.get(s, 0) for s in ("normalize", "langid", "heuristics", "quality"))
    )
    deduped = sum(stages.get(s, 0) for s in ("url_dedup", "exact_dedup", "minhash_dedup"))
    return {
        "kind": kind,
        "wall_s": wall,
        "cpu_s": cpu,
        "input": ledger["input"],
        "counted": counted,
        "dedup_dropped": deduped,
        "kept": ledger["kept"],
        "tokens": m["mixture"]["total_tokens"],
        "tokenizer": m["tokenizer"],
    }


# ----------------------------------------------------------------------------- report


def report(one: dict, all_: dict, tk: dict | None, pipe: list[dict] | None, argv: list[str]) -> str:
    mb = one["bytes"] / 1e6
    L = [
        "# Exact token counts: Llama 3's tokenizer",
        "",
        f"`{' '.join(['python -m bench.token_count_bench', *argv])}` — {time.strftime('%Y-%m-%d %H:%M')},"
        f" {os.cpu_count()} cores (shared with other jobs). Corpus: {BENCH_CORPUS} — {one['docs']:,} documents,"
        f" {mb:,.1f} MB of text. Tokenizer sha256 {one['sha256'][:16]}…; the pipeline's counter"
        f" ({one['engine']}) loads in {one['load_s']:.2f} s, `tokenizers` in {one['hf_load_s']:.2f} s.",
        "",
        "## The counter (`TokenCounter.count`, batches of 256, as the `Tokens` stage runs it)",
        "",
        "| engine | threads | wall s | CPU s | docs/s | docs per CPU-s | MB per CPU-s | counts equal the pipeline's |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in (one, all_):
        L.append(
            f"| {r['engine']} (the pipeline's) | {r['threads']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} |"
            f" {r['docs'] / r['wall_s']:,.0f} | {r['docs'] / r['cpu_s']:,.0f} | {r['bytes'] / 1e6 / r['cpu_s']:.2f} | |"
        )
    for r in (one, all_):
        L.append(
            f"| {r['lib_engine']} (for texts with a special token's start) | {r['threads']} | {r['lib_wall_s']:.2f} |"
            f" {r['lib_cpu_s']:.2f} | {r['docs'] / r['lib_wall_s']:,.0f} | {r['docs'] / r['lib_cpu_s']:,.0f} |"
            f" {r['bytes'] / 1e6 / r['lib_cpu_s']:.2f} | {'yes' if r['lib_same'] else '**no**'} |"
        )
    for r in (one, all_):
        L.append(
            f"| tokenizers `encode_batch_fast` | {r['threads']} | {r['hf_wall_s']:.2f} | {r['hf_cpu_s']:.2f} |"
            f" {r['docs'] / r['hf_wall_s']:,.0f} | {r['docs'] / r['hf_cpu_s']:,.0f} |"
            f" {r['bytes'] / 1e6 / r['hf_cpu_s']:.2f} | {'yes' if r['same_counts'] else '**no**'} |"
        )
    L += [
        "",
        "Llama 3 tokens against the bytes/4 estimate (the old default), by kind of text:",
        "",
        "| text | docs | MB | Llama 3 tokens | bytes per token | bytes/4 estimate | real / estimate |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for g, v in sorted(one["groups"].items(), key=lambda kv: -kv[1]["bytes"]):
        L.append(
            f"| {g} | {v['docs']:,} | {v['bytes'] / 1e6:.1f} | {v['tokens']:,} | {v['bytes'] / v['tokens']:.2f} |"
            f" {v['approx']:,} | {v['tokens'] / v['approx']:.2f} |"
        )
    if tk:
        L += [
            "",
            f"Ids against an independent reference: tiktoken {tk['tiktoken']} (the library of Meta's reference"
            " tokenizer) loaded with ranks and pattern straight from llama.cpp's GGUF, and the tokenizer.json"
            f" through `tokenizers`: {tk['docs'] - tk['differ']:,} of {tk['docs']:,} documents get the same ids.",
        ]
    if pipe:
        L += [
            "",
            "## In the pipeline",
            "",
            "`curate run bench/configs/race.yaml --input 'BENCH/part-*.jsonl.zst' --workers 1` (the race's"
            " run: every stage on, the distilled quality model), process CPU seconds (user + sys):",
            "",
            "| tokenizer | rounds: CPU s | best CPU s | best wall s | documents counted | of which dedup drops |"
            " kept in the mixture | mixture tokens |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for kind in ("approx", "llama3"):
            runs = [p for p in pipe if p["kind"] == kind]
            b = min(runs, key=lambda p: p["cpu_s"])
            rounds = ", ".join("{:.1f}".format(p["cpu_s"]) for p in runs)
            L.append(
                f"| {kind} | {rounds} | {b['cpu_s']:.1f} |"
                f" {min(p['wall_s'] for p in runs):.1f} | {b['counted']:,} | {b['dedup_dropped']:,} |"
                f" {b['kept']:,} | {b['tokens']:,} |"
            )
        a = min(p["cpu_s"] for p in pipe if p["kind"] == "approx")
        e = min(p["cpu_s"] for p in pipe if p["kind"] == "llama3")
        L += [
            "",
            f"Exact counting costs {e - a:+.1f} CPU-s on this run ({(e - a) / a:+.1%} of the approx run's"
            f" {a:.1f} CPU-s).",
        ]
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, help="at most this many documents (default: the whole corpus)")
    ap.add_argument("--rounds", type=int, default=2, help="pipeline runs per tokenizer kind")
    ap.add_argument("--no-pipeline", action="store_true")
    ap.add_argument("--no-tiktoken", action="store_true")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.docs)))
        return 0
    log = lambda msg: print(f"[tokens] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    one = run_child(1, args.docs)
    log(
        f"1 thread: {one['docs'] / one['cpu_s']:,.0f} docs per CPU-s ({one['engine']}),"
        f" {one['docs'] / one['hf_cpu_s']:,.0f} (tokenizers)"
    )
    all_ = run_child(os.cpu_count() or 1, args.docs)
    log(f"{all_['threads']} threads: {all_['docs'] / all_['wall_s']:,.0f} docs/s")
    tk = None if args.no_tiktoken else tiktoken_check(args.docs)
    if tk:
        log(f"tiktoken: {tk['differ']} of {tk['docs']} differ")
    pipe = None
    if not args.no_pipeline:
        from bench.proxy_quality import ensure_model

        model = ensure_model()
        pipe = []
        for rnd in range(args.rounds):
            for kind in ("approx", "llama3") if rnd % 2 == 0 else ("llama3", "approx"):
                pipe.append(pipeline_run(kind, model))
                log(f"pipeline {kind}: {pipe[-1]['cpu_s']:.1f} CPU-s, {pipe[-1]['wall_s']:.1f} s")
    text = report(one, all_, tk, pipe, argv)
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
