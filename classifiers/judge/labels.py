"""Judge labels: rows for distillation, their Parquet files, and what is already done.

A label row records who judged what, by how much:

    id, text, text_hash (sha256 of the UTF-8 text), bucket, rubric (`name@vN`), model,
    score (None when flagged), candidate_mass, probabilities (label -> P), flag

A rerun of `curate judge` skips every (text_hash, rubric, model) already present in the
labels directory, so labelling a sample can be resumed and extended; changing the
rubric's version or the model labels again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from .scoring import JUDGE_ERROR, JudgeResult, Scorer

LabelKey = tuple[str, str, str]  # (text_hash, rubric id, model)

LABELS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("text_hash", pa.string()),
        ("bucket", pa.string()),
        ("rubric", pa.string()),
        ("model", pa.string()),
        ("score", pa.float32()),
        ("candidate_mass", pa.float32()),
        ("probabilities", pa.map_(pa.string(), pa.float32())),
        ("flag", pa.string()),
    ]
)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def label_row(
    record: Mapping, result: JudgeResult, *, rubric: str, model: str
) -> dict:
    text = record["text"]
    return {
        "id": str(record["id"]),
        "text": text,
        "text_hash": text_hash(text),
        "bucket": record.get("bucket"),
        "rubric": rubric,
        "model": model,
        "score": result.score,
        "candidate_mass": result.candidate_mass,
        "probabilities": dict(result.probabilities),
        "flag": result.flag,
    }


def label_records(
    records: Iterable[Mapping],
    scorer: Scorer,
    *,
    rubric: str,
    model: str,
    batch_size: int = 256,
    done: set[LabelKey] | frozenset[LabelKey] = frozenset(),
) -> Iterator[dict]:
    """Judge records ({id, text, bucket?}) in batches and yield label rows.

    Records whose (text_hash, rubric, model) is in `done` are skipped, as are repeats
    of a text within this run (a text is judged once per rubric and model).
    """
    seen: set[str] = set()
    batch: list[Mapping] = []

    def flush() -> Iterator[dict]:
        results = scorer.score([r["text"] for r in batch])
        for record, result in zip(batch, results, strict=True):
            yield label_row(record, result, rubric=rubric, model=model)
        batch.clear()

    for record in records:
        digest = text_hash(record["text"])
        if digest in seen or (digest, rubric, model) in done:
            continue
        seen.add(digest)
        batch.append(record)
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


def labels_table(rows: Sequence[Mapping]) -> pa.Table:
    cols = {name: [row.get(name) for row in rows] for name in LABELS_SCHEMA.names}
    cols["probabilities"] = [list((row.get("probabilities") or {}).items()) for row in rows]
    return pa.table(cols, schema=LABELS_SCHEMA)


def write_labels(rows: Sequence[Mapping], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(labels_table(rows), path, compression="zstd")
    return path


def _parquet_files(src: str | Path) -> list[Path]:
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.exists():
        return []
    return sorted(p for p in src.rglob("*.parquet") if p.is_file())


def read_labels(src: str | Path, columns: Sequence[str] | None = None) -> list[dict]:
    """All label rows of a Parquet file or directory (recursively), probabilities as dicts."""
    rows: list[dict] = []
    for path in _parquet_files(src):
        table = pq.read_table(path, columns=list(columns) if columns else None)
        for row in table.to_pylist():
            if "probabilities" in row and row["probabilities"] is not None:
                row["probabilities"] = dict(row["probabilities"])
            rows.append(row)
    return rows


def labelled_keys(src: str | Path) -> set[LabelKey]:
    """(text_hash, rubric, model) of every label already in `src`; empty if it is absent.

    Rows flagged `judge_error` do not count: the judge never answered, so a rerun tries
    them again.
    """
    keys: set[LabelKey] = set()
    for path in _parquet_files(src):
        table = pq.read_table(path, columns=["text_hash", "rubric", "model", "flag"])
        for digest, rubric, model, flag in zip(
            table.column("text_hash").to_pylist(),
            table.column("rubric").to_pylist(),
            table.column("model").to_pylist(),
            table.column("flag").to_pylist(),
        ):
            if flag != JUDGE_ERROR:
                keys.add((digest, rubric, model))
    return keys
