"""Small real test corpora: documents drawn from ../shared/data/bench-corpus (multilingual
dev-set paragraphs, English help pages, stdlib and Go code, near-duplicates with known
originals; read with bench/data.py), written as JSONL files like a user's input."""
from __future__ import annotations

import json
from pathlib import Path

import zstandard

from bench.data import iter_bench_corpus, read_bench_manifest


def _record(d: dict) -> dict:
    return {**d, "dup_of": d.get("dup_of") or None}


def bench_docs(limit_per_category: int) -> list[dict]:
    """The first `limit_per_category` documents of each category (with the manifest's
    category, lang and dup_of)."""
    seen: dict[str, int] = {}
    out = []
    for d in iter_bench_corpus():
        c = d["category"]
        if seen.get(c, 0) < limit_per_category:
            seen[c] = seen.get(c, 0) + 1
            out.append(_record(d))
        if len(seen) == 4 and min(seen.values()) >= limit_per_category:
            break
    return out


def near_dup_pairs(n: int) -> list[dict]:
    """n near-duplicates from the bench corpus together with their originals."""
    dups = [m for m in read_bench_manifest().values() if m["dup_of"]][:n]
    want = {m["id"] for m in dups} | {m["dup_of"] for m in dups}
    return [_record(d) for d in iter_bench_corpus() if d["id"] in want]


def write_jsonl(path: Path, records: list, compress: bool = False) -> Path:
    blob = b"".join((r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode()) + b"\n"
                    for r in records)
    path.write_bytes(zstandard.ZstdCompressor().compress(blob) if compress else blob)
    return path
