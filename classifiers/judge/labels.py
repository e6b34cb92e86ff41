"""Judge labels: rows for distillation, their Parquet files, and what is already done.

A label row records who judged what, by how much:

    id, text, text_hash (sha256 of the UTF-8 text), bucket, rubric (`name@vN`), model,
    score (None when flagged), candidate_mass, probabilities (label -> P), flag

A rerun of `curate judge` skips every (text_hash, rubric, model) already present in the
labels directory, so labelling a sample can be resumed and extended; changing the
rubric's version or the model labels again.

One directory can therefore hold labels of several (rubric, model) groups, which must not
be mixed: `select_labels` picks one group (by default the newest: the group of the most
recent labels file, `labels-YYYYmmddTHHMMSS.parquet` names sort by time) and one label per
text within it (the newest), and says which other groups it ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from classifiers.scorer import JUDGE_ERROR, QualityResult, Scorer

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


def label_row(record: Mapping, result: QualityResult, *, rubric: str, model: str) -> dict:
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
    # Oldest first: `curate judge` names its files labels-YYYYmmddTHHMMSS.parquet, so the
    # file name (then the full path) orders them by time, in whichever folder they lie.
    return sorted((p for p in src.rglob("*.parquet") if p.is_file()), key=lambda p: (p.name, str(p)))


def read_labels(src: str | Path, columns: Sequence[str] | None = None) -> list[dict]:
    """All label rows of a Parquet file or directory (recursively), probabilities as dicts;
    files oldest first (by name, see `_parquet_files`), rows in file order."""
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


# ----------------------------------------------------------------------- selection


@dataclass
class LabelGroup:
    rubric: str | None
    model: str | None
    n_rows: int = 0  # label rows of this group (all of them, flagged or not)
    n_scored: int = 0  # rows with a score
    flags: dict[str, int] = field(default_factory=dict)  # flag -> rows
    last_seen: int = -1  # index of its newest row (rows oldest first)

    @property
    def name(self) -> str:
        return f"{self.rubric} / {self.model}"


@dataclass
class LabelSelection:
    """Which labels distillation uses, and what it left aside."""

    rubric: str | None
    model: str | None
    how: str  # "newest" (picked automatically) or "asked" (distill.rubric / distill.model)
    n_rows: int  # rows of the chosen group
    n_used: int  # one scored label per text
    n_flagged: int  # texts of the group with no score (flagged by the judge), not used
    n_repeats: int  # older labels of a text labelled again in the group, not used
    flags: dict[str, int]  # flag -> rows of the chosen group
    ignored: list[dict]  # other groups: {rubric, model, labels, scored}

    def describe(self) -> str:
        how = "the newest group" if self.how == "newest" else "as asked"
        text = (
            f"labels used: {self.n_used} of rubric {self.rubric}, model {self.model} ({how}"
            f"; {self.n_rows} rows: {self.n_flagged} flagged, {self.n_repeats} older repeats)"
        )
        if self.ignored:
            text += "; ignored other groups: " + ", ".join(
                f"{g['rubric']} / {g['model']} ({g['labels']} labels)" for g in self.ignored
            )
        return text


def label_groups(rows: Sequence[Mapping]) -> list[LabelGroup]:
    """(rubric, model) groups of label rows (oldest first), newest group first."""
    groups: dict[tuple, LabelGroup] = {}
    for i, row in enumerate(rows):
        key = (row.get("rubric"), row.get("model"))
        g = groups.get(key)
        if g is None:
            g = groups[key] = LabelGroup(*key)
        g.n_rows += 1
        g.last_seen = i
        if row.get("score") is not None:
            g.n_scored += 1
        elif row.get("flag"):
            g.flags[row["flag"]] = g.flags.get(row["flag"], 0) + 1
    return sorted(groups.values(), key=lambda g: -g.last_seen)


def select_labels(
    rows: Sequence[Mapping], *, rubric: str | None = None, model: str | None = None
) -> tuple[list[Mapping], LabelSelection]:
    """One (rubric, model) group of label rows (given oldest first), one label per text.

    `rubric`/`model` None: the newest group matching the other one (the group whose
    newest row is the latest). A rubric given without a version (`fineweb_edu`) matches
    every version of it (`fineweb_edu@v2`). Within the group each text keeps its newest
    scored label; texts with no scored label are counted as flagged. Raises ValueError
    (no prefix) when nothing matches, naming the groups present.
    """
    groups = label_groups(rows)

    def matches(g: LabelGroup) -> bool:
        if model is not None and g.model != model:
            return False
        if rubric is not None:
            r = g.rubric or ""
            return r == rubric if "@" in rubric else r.split("@", 1)[0] == rubric
        return True

    chosen = next((g for g in groups if matches(g)), None)
    if chosen is None:
        present = ", ".join(f"{g.name} ({g.n_rows} labels)" for g in groups) or "none"
        asked = " and ".join(f"{k} {v!r}" for k, v in (("rubric", rubric), ("model", model)) if v is not None)
        raise ValueError(f"no labels of {asked}; the labels hold: {present}")
    by_text: dict[str, Mapping] = {}
    texts: set[str] = set()
    for row in rows:
        if (row.get("rubric"), row.get("model")) != (chosen.rubric, chosen.model) or row.get("text") is None:
            continue
        digest = row.get("text_hash") or text_hash(row["text"])
        texts.add(digest)
        if row.get("score") is not None:
            by_text[digest] = row  # rows are oldest first: the newest label wins
    used = [by_text[d] for d in sorted(by_text)]
    selection = LabelSelection(
        rubric=chosen.rubric,
        model=chosen.model,
        how="newest" if rubric is None and model is None else "asked",
        n_rows=chosen.n_rows,
        n_used=len(used),
        n_flagged=len(texts) - len(by_text),
        n_repeats=chosen.n_scored - len(by_text),
        flags=dict(sorted(chosen.flags.items())),
        ignored=[
            {"rubric": g.rubric, "model": g.model, "labels": g.n_rows, "scored": g.n_scored}
            for g in groups
            if g is not chosen
        ],
    )
    return used, selection
