"""Small real test corpora: documents drawn from ../shared/data/bench-corpus (multilingual
dev-set paragraphs, English help pages, stdlib and Go code, near-duplicates with known
originals), written as JSONL files like a user's input."""
from __future__ import annotations

import io
import json
from pathlib import Path

import zstandard

SHARED = Path(__file__).resolve().parents[2] / "shared"
BENCH = SHARED / "data" / "bench-corpus"
LANGID_DEV = SHARED / "data" / "langid-dev" / "lingua_sentences.tsv.zst"


def bench_manifest() -> dict[str, dict]:
    """id -> {category, source, lang, bytes, dup_of, edit_rate} from the corpus's manifest.tsv.zst."""
    out = {}
    with open(BENCH / "manifest.tsv.zst", "rb") as f:
        rows = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8")
        header = next(rows).rstrip("\n").split("\t")
        for line in rows:
            rec = dict(zip(header, line.rstrip("\n").split("\t")))
            out[rec["id"]] = rec
    return out


def bench_docs(limit_per_category: int, parts: int = 1) -> list[dict]:
    """The first `limit_per_category` documents of each category, from the first `parts` files,
    each with its manifest fields (category, lang, dup_of)."""
    meta = bench_manifest()
    seen: dict[str, int] = {}
    out = []
    for i in range(parts):
        with open(BENCH / f"part-{i:05d}.jsonl.zst", "rb") as f:
            for line in io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8"):
                d = json.loads(line)
                m = meta[d["id"]]
                c = m["category"]
                if seen.get(c, 0) < limit_per_category:
                    seen[c] = seen.get(c, 0) + 1
                    out.append({**d, "category": c, "lang": m["lang"], "dup_of": m["dup_of"] or None})
    return out


def with_originals(docs: list[dict]) -> list[dict]:
    """Drop near-duplicates whose original is not in the sample (so each has a partner)."""
    ids = {d["id"] for d in docs}
    return [d for d in docs if not d.get("dup_of") or d["dup_of"] in ids]


def write_jsonl(path: Path, records: list, compress: bool = False) -> Path:
    blob = b"".join((r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode()) + b"\n"
                    for r in records)
    path.write_bytes(zstandard.ZstdCompressor().compress(blob) if compress else blob)
    return path


def near_dup_pairs(n: int) -> list[dict]:
    """n near-duplicates from the bench corpus together with their originals."""
    meta = bench_manifest()
    dups = [m for m in meta.values() if m["dup_of"]][:n]
    want = {m["id"] for m in dups} | {m["dup_of"] for m in dups}
    out = []
    for i in range(8):
        with open(BENCH / f"part-{i:05d}.jsonl.zst", "rb") as f:
            for line in io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8"):
                d = json.loads(line)
                if d["id"] in want:
                    m = meta[d["id"]]
                    out.append({**d, "category": m["category"], "lang": m["lang"], "dup_of": m["dup_of"] or None})
    return out
