"""Line-level dedup on real data: the bytes its shuffles carry per input document, the first
pass's extra CPU time, and what it removes.

Runs the graph's own DoFns (read, language ID, heuristics, tokens, dedup keys, route, exact
dedup, then LineItems -> CountLines -> ResolveLines) outside a runner and encodes what each
hands to a GroupByKey with the coder Beam uses for untyped Python values (FastPrimitivesCoder),
as bench/shuffle_bytes.py does for the other shuffles. MinHash's drop events are not simulated
(exact dedup's are): they add ~20 bytes per near-duplicate to GroupLineDocs.

  python -m bench.line_dedup_bytes [--docs N] [--category b_english ...] [--set key=value ...]

Reads the bench corpus (../shared/data/bench-corpus); line dedup is switched on. Recorded
results: bench/results/line-dedup-bytes.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

from apache_beam.coders import coders

from bench.data import iter_bench_corpus
from pipeline.config import Config, set_dotted
from pipeline.sources import make_uid
from pipeline.stages.base import unpack
from pipeline.stages.dedup import DEDUP_TAG, DedupKeys, ExactDedupPartition
from pipeline.stages.heuristics import HeuristicsStage
from pipeline.stages.langid import LanguageIdStage
from pipeline.stages.line_dedup import ITEMS_TAG, CountLines, LineItems, ResolveLines
from pipeline.stages.mixture import TokenCount, tokenizer_spec
from pipeline.stages.route import RouteDocuments

CODER = coders.FastPrimitivesCoder()


def size(value) -> int:
    return len(CODER.encode(value))


def documents(max_docs: int, categories: set[str] | None) -> list[dict]:
    out = []
    for d in iter_bench_corpus():
        if categories and d["category"] not in categories:
            continue
        kind = "code" if d["category"] == "c_code" else "text"
        out.append(
            {
                "uid": make_uid(0, len(out)),
                "id": d["id"],
                "text": d["text"],
                "source": "bench",
                "kind": kind,
                "path": d["id"] if kind == "code" else None,
                "n_bytes": len(d["text"].encode()),
            }
        )
        if len(out) >= max_docs:
            break
    return out


def measure(config: Config, docs: list[dict], partitions: int = 64, repeats: int = 3) -> dict:
    st = config.stages
    stages = [
        LanguageIdStage(st.langid, False),
        HeuristicsStage(st.heuristics, False),
        TokenCount(tokenizer_spec(config.tokenizer), False),
        DedupKeys(st.exact_dedup, st.minhash_dedup, False),
    ]
    for s in stages:
        s.setup()
    bs = config.runner.batch_size
    batches = [docs[i : i + bs] for i in range(0, len(docs), bs)]
    for s in stages:
        batches = [next(iter(s.process(b))) for b in batches]
    survivors = sum(1 for b in batches for d in b if d.get("drop") is None)

    items_fn = LineItems(config, partitions)
    best = float("inf")
    for _ in range(repeats):  # CPU time of the first-pass DoFn, best of `repeats`
        t0 = time.process_time()
        outputs = [o for b in batches for o in items_fn.process(b)]
        best = min(best, time.process_time() - t0)
    out: dict[str, int] = defaultdict(int)
    by_part: dict[int, list] = defaultdict(list)
    by_chunk: dict[tuple, list] = defaultdict(list)
    taking_part, line_items = 0, 0
    for o in outputs:
        if getattr(o, "tag", None) == ITEMS_TAG:
            out["GroupLines"] += size(o.value)
            by_part[o.value[0]].append(o.value[1])
            line_items += len(unpack(o.value[1]))
        else:
            out["GroupLineDocs: document payloads"] += size(o)
            by_chunk[o[0]].append(o[1])
            taking_part += len(unpack(o[1][1]))
    # exact dedup's drop events join GroupLineDocs too
    route = RouteDocuments(config, partitions)
    exact_groups: dict[int, list] = defaultdict(list)
    for b in batches:
        for o in route.process(b):
            if getattr(o, "tag", None) == DEDUP_TAG:
                exact_groups[o.value[0]].append(o.value[1])
    exact = ExactDedupPartition(partitions, False, config.runner.records_per_chunk)
    for part, lists in exact_groups.items():
        for o in exact.process((part, lists)):
            if getattr(o, "tag", None) == "events":
                out["GroupLineDocs: dedup events"] += size(o.value)
                by_chunk[o.value[0]].append(o.value[1])
    count = CountLines(st.line_dedup.max_line_repeats, config.runner.records_per_chunk)
    occurrences = 0
    for part, lists in by_part.items():
        for key, value in count.process((part, lists)):
            out["GroupLineDocs: frequent-line occurrences"] += size((key, value))
            by_chunk[key].append(value)
            occurrences += len(unpack(value[1]))
    resolve = ResolveLines(config)
    emptied = changed = lines_removed = delta_tokens = 0
    for key, parts in by_chunk.items():
        for o in resolve.process((key, parts)):
            if o.tag == "events":
                out["GroupByChunk: lines events"] += size(o.value)
                for ev in unpack(o.value[1][1]):
                    emptied += ev[3]
                    changed += not ev[3]
                    lines_removed += 0 if ev[3] else len(ev[2])
            else:
                delta_tokens += sum(d[3] for d in o.value)
    n = len(docs)
    tokens = sum(d["n_tokens"] for b in batches for d in b if d.get("drop") is None)
    return {
        "documents": n,
        "first_pass_survivors": survivors,
        "taking_part": taking_part,
        "counted_lines_per_taking_part_doc": line_items / max(1, taking_part),
        "bytes_per_input_doc": {k: round(v / n, 1) for k, v in sorted(out.items())},
        "bytes_per_counted_line (GroupLines)": round(out["GroupLines"] / max(1, line_items), 1),
        "line_items_cpu_ms_per_taking_part_doc": round(1000 * best / max(1, taking_part), 3),
        "frequent_line_occurrences": occurrences,
        "documents_changed": changed,
        "documents_emptied": emptied,
        "lines_removed": lines_removed,
        "survivor_tokens_removed_fraction": round(-delta_tokens / max(1, tokens), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--category", action="append", help="bench-corpus categories (default: all)")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    args = ap.parse_args()
    data: dict = {"stages": {"line_dedup": {"enabled": True}}}
    for o in args.overrides:
        set_dotted(data, o)
    config = Config.model_validate(data)
    print(json.dumps(measure(config, documents(args.docs, set(args.category or ()))), indent=1))


if __name__ == "__main__":
    main()
