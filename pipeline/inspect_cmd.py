"""`curate inspect`: what an output holds, and whether its files are the ones its manifest lists.

  curate inspect OUT [--json] [--plot FILE.png] [--verify]

OUT is a curate output directory (its `manifest.json` says which shards it wrote), the
`mixture/` or `annotated/` directory inside one, or any Parquet file or directory whose rows have
the contract's columns (at least `n_tokens`; see pipeline/schema.py; the bucket is the `bucket`
column or, as in outputs of the earlier hive layout, the partition directory `bucket=<b>/`): that is inspected as
plain Parquet, without targets and without a manifest to check against. A directory
holding `mixture/`, `annotated/`, `rejected/` or `quarantine/` but no `manifest.json` is a run
that did not finish (the manifest is written last) and is rejected.

What it reports, per bucket and per language inside a bucket: documents (rows), tokens
(n_tokens x repeats, the tokens a trainer sees), unique tokens (n_tokens), the token share and
the manifest's target share; per bucket and overall, quantiles of quality_score (documents
without a score counted as nulls), of dup_cluster_size (with the share of documents that stood
for more than one near-duplicate) and of document length; per shard, rows, bytes and row groups.

Document length is measured in tokens (quantiles of the `n_tokens` column), not in text
bytes: reading the `text` column would mean reading and decompressing nearly the whole output,
while `n_tokens` is a few MB for a million documents. The mean characters per document come
from the manifest's per-shard `text_chars` (exact); the mean text bytes per document is
approximated from the Parquet footers (the `text` column chunks' uncompressed size, which
also counts the encoding's length prefixes, a few bytes per document), so plain Parquet gets
a figure too.

Checks against the manifest (any failure: one line per problem on stderr, naming the shard, and
exit code 1): every listed shard exists, has the listed size in bytes (a shorter file is
reported as truncated), a readable footer and the listed row count; a mixture shard's tokens
match; no file under the shard directories is missing from the manifest (an extra file would be
read by anyone globbing the directory); the ledger is recounted from the files: kept from the
mixture (annotated) shards' rows, rejected per rule from the rejected shards' `rule` column,
quarantined per reason from the quarantine shards' `reason` column, each compared with the
manifest's figures, and input must equal their sum. `--verify` also recomputes every shard's
sha256 ("checksums verified" only when every one matched). Only footers, the statistics columns
and those two small columns are read (files in parallel).

Exit codes: 0 all good, 1 a mismatch or an incomplete output, 2 a path that cannot be
inspected (missing, no Parquet files, not the contract's columns), as `curate run`'s setup errors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import posixpath
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline import schema

INSPECT_FORMAT = "curate-inspect/1"
# manifest.json's "format" family (any version of it)
MANIFEST_FORMAT_PREFIX = schema.MANIFEST_FORMAT.rsplit("/", 1)[0] + "/"
SHARD_DIRS = (schema.MIXTURE_DIR, schema.ANNOTATED_DIR, schema.REJECTED_DIR, schema.QUARANTINE_DIR)
# The columns statistics are computed from (cast to these types; a missing optional one is null).
STAT_COLUMNS = {
    "bucket": pa.string(),
    "language": pa.string(),
    "quality_score": pa.float64(),
    "n_tokens": pa.int64(),
    "dup_cluster_size": pa.int64(),
    "repeats": pa.int64(),
    "drop_rule": pa.string(),
}
REQUIRED_COLUMNS = ("n_tokens",)
NO_VALUE = "(none)"  # bucket or language of a row where it is null
QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
QUALITY_RANGE, QUALITY_BINS = (0.0, 5.0), 20  # quality_score is 0..5 (DESIGN.md, output contract)
SHARDS_SHOWN = 50  # the terminal lists shards one by one up to this many; --json lists all
READ_THREADS = 8
HASH_CHUNK = 8 << 20


class InspectError(Exception):
    """A path that cannot be inspected: one line for the user, and the exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------------------------------- locating


@dataclass
class Target:
    fs: pafs.FileSystem
    root: str  # the output directory (curate output) or the path given (plain Parquet)
    kind: str  # "mixture", "annotated" or "parquet"
    manifest: dict | None
    files: dict[str, int] = field(default_factory=dict)  # path relative to root -> size on disk


def open_fs(path: str) -> tuple[pafs.FileSystem, str]:
    """Local paths and any URI pyarrow has a filesystem for (gs://, s3://, hdfs://)."""
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(path)


def read_manifest(fs: pafs.FileSystem, out_dir: str) -> dict | None:
    path = posixpath.join(out_dir, schema.MANIFEST_NAME)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        raw = f.read()
    try:
        manifest = json.loads(raw)
    except ValueError as e:
        raise InspectError(f"{path}: not valid JSON ({e})", 1) from None
    fmt = manifest.get("format", "") if isinstance(manifest, dict) else ""
    if not fmt.startswith(MANIFEST_FORMAT_PREFIX):
        raise InspectError(f"{path}: not a curate manifest (format {fmt!r})", 2)
    return manifest


def list_files(fs: pafs.FileSystem, base: str) -> dict[str, int]:
    """Every file under `base` (recursively): path relative to `base` -> size in bytes."""
    sel = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    prefix = base.rstrip("/") + "/"
    return {i.path[len(prefix) :]: i.size for i in fs.get_file_info(sel) if i.type == pafs.FileType.File}


def _is_data_file(rel: str) -> bool:
    """What pyarrow.dataset would read from a directory: no hidden or underscore names."""
    return rel.endswith(".parquet") and not any(p.startswith((".", "_")) for p in rel.split("/"))


def locate(path: str) -> Target:
    fs, root = open_fs(path)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise InspectError(f"{path}: no such file or directory", 2)
    if info.type == pafs.FileType.File:
        return Target(fs, posixpath.dirname(root), "parquet", None, {posixpath.basename(root): info.size})
    root = root.rstrip("/")
    manifest = read_manifest(fs, root)
    if manifest is not None:
        kind = schema.ANNOTATED_DIR if manifest.get("mode") == "annotate" else schema.MIXTURE_DIR
        return Target(fs, root, kind, manifest, _shard_files(fs, root))
    parent, name = posixpath.split(root)
    if name in (schema.MIXTURE_DIR, schema.ANNOTATED_DIR):
        manifest = read_manifest(fs, parent)
        if manifest is not None:
            return Target(fs, parent, name, manifest, _shard_files(fs, parent))
    if name in SHARD_DIRS and read_manifest(fs, parent) is not None:
        raise InspectError(
            f"{path}: not a curate output: the {name}/ directory of the output {parent}; inspect that", 2
        )
    subdirs = [d for d in SHARD_DIRS if fs.get_file_info(posixpath.join(root, d)).type == pafs.FileType.Directory]
    if subdirs:
        raise InspectError(
            f"{path}: no {schema.MANIFEST_NAME}: not a complete curate output"
            f" (it has {subdirs[0]}/, but a run writes the manifest last)",
            1,
        )
    try:
        listing = list_files(fs, root)
    except (OSError, UnicodeDecodeError, pa.ArrowException) as e:
        raise InspectError(f"{path}: not a curate output, and it cannot be listed ({type(e).__name__})", 2) from None
    files = {rel: size for rel, size in listing.items() if _is_data_file(rel)}
    outputs = _outputs_inside(listing)
    if outputs:  # a folder holding outputs is none: its files belong to them
        more = f" and {len(outputs) - 3} more" if len(outputs) > 3 else ""
        raise InspectError(
            f"{path}: not a curate output (no {schema.MANIFEST_NAME}); it holds the curate"
            f" output{'s' if len(outputs) > 1 else ''} {', '.join(outputs[:3])}{more}:"
            " inspect one of them",
            2,
        )
    if not files:
        raise InspectError(f"{path}: not a curate output (no {schema.MANIFEST_NAME}) and no Parquet files", 2)
    return Target(fs, root, "parquet", None, files)


def _outputs_inside(listing: dict[str, int]) -> list[str]:
    """Subdirectories (relative) that hold a manifest beside curate's shard directories."""
    tops = {posixpath.dirname(rel) for rel in listing if posixpath.basename(rel) == schema.MANIFEST_NAME}
    holders = set()  # directories that hold a shard directory
    for rel in listing:
        parts = rel.split("/")
        holders.update("/".join(parts[:i]) for i, p in enumerate(parts[:-1]) if p in SHARD_DIRS)
    return sorted(t for t in tops & holders if t)


def _shard_files(fs: pafs.FileSystem, out_dir: str) -> dict[str, int]:
    out = {}
    for d in SHARD_DIRS:
        out.update({f"{d}/{rel}": size for rel, size in list_files(fs, posixpath.join(out_dir, d)).items()})
    return out


# ---------------------------------------------------------------------------------------- reading


@dataclass
class FileScan:
    path: str  # relative to the target's root
    rows: int | None = None
    row_groups: int | None = None
    text_bytes_approx: int | None = None  # uncompressed size of the text column chunks
    table: pa.Table | None = None  # STAT_COLUMNS, when asked for
    missing_columns: tuple[str, ...] = ()
    error: str | None = None
    value_counts: dict[str, int] | None = None  # rows per value of LEDGER_COLUMNS[kind], when asked for


def scan_file(fs: pafs.FileSystem, root: str, rel: str, stats: bool, count_column: str | None = None) -> FileScan:
    """Footer facts of one Parquet file and, with `stats`, its statistics columns; with
    `count_column`, how many rows hold each value of that column (the ledger's recount)."""
    out = FileScan(rel)
    try:
        with fs.open_input_file(posixpath.join(root, rel)) as f:
            pf = pq.ParquetFile(f)
            md = pf.metadata
            out.rows, out.row_groups = md.num_rows, md.num_row_groups
            names = pf.schema_arrow.names
            if "text" in names:
                i = pf.schema_arrow.get_field_index("text")
                out.text_bytes_approx = sum(
                    md.row_group(g).column(i).total_uncompressed_size for g in range(md.num_row_groups)
                )
            if stats:
                out.missing_columns = tuple(c for c in REQUIRED_COLUMNS if c not in names)
                if not out.missing_columns:
                    present = [c for c in STAT_COLUMNS if c in names]
                    out.table = _normalize(
                        pf.read(columns=present, use_threads=True), hive_bucket(posixpath.join(root, rel))
                    )
            if count_column is not None:
                if count_column in names:
                    col = pf.read(columns=[count_column]).column(count_column)
                    out.value_counts = {str(v["values"]): int(v["counts"]) for v in pc.value_counts(col).to_pylist()}
                else:
                    out.missing_columns = (count_column,)
    except (OSError, pa.ArrowException) as e:
        out.error = str(e).splitlines()[0] if str(e) else type(e).__name__
    return out


def hive_bucket(path: str) -> str | None:
    """The bucket a hive-partitioned path names (`.../bucket=<b>/part-...`), if any."""
    key = schema.PARTITION_KEY + "="
    parts = [p[len(key) :] for p in path.split("/") if p.startswith(key)]
    return parts[-1] if parts else None


def _normalize(t: pa.Table, bucket: str | None = None) -> pa.Table:
    """`t` with exactly STAT_COLUMNS; a file without a `bucket` column under a hive directory
    (schema.PARTITION_KEY; the mixture's layout before the flat one) gets it from the path."""
    cols = {}
    for name, typ in STAT_COLUMNS.items():
        if name in t.column_names:
            cols[name] = t.column(name).cast(typ)
        elif name == schema.PARTITION_KEY and bucket is not None:
            cols[name] = pa.repeat(pa.scalar(bucket, typ), t.num_rows)
        else:
            cols[name] = pa.nulls(t.num_rows, typ)
    return pa.table(cols)


def sha256_of(fs: pafs.FileSystem, path: str) -> str:
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _parallel(fn, items: list) -> list:
    if len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(min(READ_THREADS, len(items))) as ex:
        return list(ex.map(fn, items))


# ---------------------------------------------------------------------------------------- statistics


def token_sum(t: pa.Table) -> int:
    """Tokens a trainer sees: sum of n_tokens x repeats (a null repeats counts once)."""
    return int(
        pc.sum(pc.multiply(pc.fill_null(t.column("n_tokens"), 0), pc.fill_null(t.column("repeats"), 1))).as_py() or 0
    )


def distribution(x: np.ndarray, nulls: int = 0) -> dict:
    """count, nulls, mean, min, p10, p50, p90, max of the non-null values `x` (linear
    interpolation between order statistics, numpy's default)."""
    out = {"count": int(x.size), "nulls": int(nulls)}
    if x.size == 0:
        return {**out, "mean": None, "min": None, **{k: None for k in QUANTILES}, "max": None}
    qs = np.quantile(x, list(QUANTILES.values()))
    return {
        **out,
        "mean": float(x.mean()),
        "min": float(x.min()),
        **{k: float(v) for k, v in zip(QUANTILES, qs)},
        "max": float(x.max()),
    }


def quality_histogram(x: np.ndarray) -> dict:
    """Counts of quality scores in QUALITY_BINS equal bins over the contract's 0..5 range (scores
    outside it, which a judge should never give, land in the end bins)."""
    edges = np.linspace(QUALITY_RANGE[0], QUALITY_RANGE[1], QUALITY_BINS + 1)
    counts, _ = np.histogram(np.clip(x, *QUALITY_RANGE), bins=edges)
    return {"bin_edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def _values(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, int]:
    """Non-null values as float64, and the number of nulls (a NaN counts as a null)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    x = pc.drop_null(arr).to_numpy(zero_copy_only=False).astype(np.float64)
    nan = np.isnan(x)
    return (x[~nan], arr.null_count + int(nan.sum())) if nan.any() else (x, arr.null_count)


def _group_stats(t: pa.Table) -> dict:
    """Documents, tokens and distributions of one group of rows (STAT_COLUMNS)."""
    n_tokens = pc.fill_null(t.column("n_tokens"), 0)
    tokens = token_sum(t)
    dup, dup_nulls = _values(t.column("dup_cluster_size"))
    dup_dist = distribution(dup, dup_nulls)
    dup_dist["share_gt1"] = float((dup > 1).mean()) if dup.size else None
    out = {
        "documents": t.num_rows,
        "tokens": tokens,
        "unique_tokens": int(pc.sum(n_tokens).as_py() or 0),
        "quality_score": distribution(*_values(t.column("quality_score"))),
        "dup_cluster_size": dup_dist,
        "length_tokens": distribution(*_values(t.column("n_tokens"))),
    }
    if t.column("drop_rule").null_count < t.num_rows:  # annotated: what filter mode would drop
        out["would_drop"] = t.num_rows - t.column("drop_rule").null_count
    return out


def summarize(t: pa.Table, targets: dict[str, float | None]) -> dict:
    """Per bucket (and language inside it) and overall statistics of the rows `t` (STAT_COLUMNS).
    Shares are of tokens (n_tokens x repeats); `targets` are the manifest's per-bucket shares."""
    bucket = pc.fill_null(t.column("bucket"), NO_VALUE)
    language = pc.fill_null(t.column("language"), NO_VALUE)
    t = t.set_column(t.schema.get_field_index("bucket"), "bucket", bucket)
    t = t.set_column(t.schema.get_field_index("language"), "language", language)
    t = t.sort_by([("bucket", "ascending"), ("language", "ascending")])
    total = _group_stats(t)
    total_tokens = total["tokens"]
    share = lambda tok: tok / total_tokens if total_tokens else 0.0  # noqa: E731
    buckets: dict[str, dict] = {}
    for name, part in _groups(t, "bucket"):
        b = _group_stats(part)
        b["share"] = share(b["tokens"])
        b["target_share"] = targets.get(name)
        b["languages"] = {}
        for lang, lpart in _groups(part, "language"):
            toks = token_sum(lpart)
            b["languages"][lang] = {"documents": lpart.num_rows, "tokens": toks, "share": share(toks)}
        buckets[name] = b
    for name, target in targets.items():  # a targeted bucket that ended empty
        if name not in buckets:
            empty = _group_stats(t.slice(0, 0))
            buckets[name] = {**empty, "share": 0.0, "target_share": target, "languages": {}}
    for b in buckets.values():
        b["gap"] = b["share"] - b["target_share"] if b["target_share"] is not None else None
    total["share"] = 1.0 if total_tokens else 0.0
    return {"total": total, "buckets": dict(sorted(buckets.items()))}


def missed_targets(manifest: dict | None, buckets: dict) -> tuple[dict, list[dict]]:
    """Group targets (the manifest's `mixture.groups`) with the shares the shards hold, and every
    target further than schema.SHARE_TOLERANCE from what the shards hold: groups first, then
    buckets, each with the manifest's reason when it gave one."""
    mix = (manifest or {}).get("mixture") or {}
    if manifest is None or manifest.get("mode") == "annotate" or mix.get("enabled") is False:
        return {}, []
    why = {u.get("bucket"): u.get("why") for u in mix.get("unmet") or [] if isinstance(u, dict)}
    groups, missed = {}, []
    for g, v in (mix.get("groups") or {}).items():
        share = sum(buckets[b]["share"] for b in v.get("buckets", []) if b in buckets)
        groups[g] = {"target_share": v.get("target_share"), "share": share, "buckets": v.get("buckets", [])}
        if v.get("target_share") is not None and abs(share - v["target_share"]) > schema.SHARE_TOLERANCE:
            missed.append(
                {"target": g, "group": True, "asked": v["target_share"], "achieved": share, "why": why.get(g)}
            )
    for name, b in sorted(buckets.items()):
        if name in groups or not b.get("target_share") or b["gap"] is None:
            continue
        if abs(b["gap"]) > schema.SHARE_TOLERANCE:
            missed.append(
                {
                    "target": name,
                    "group": False,
                    "asked": b["target_share"],
                    "achieved": b["share"],
                    "why": why.get(name),
                }
            )
    return groups, missed


def _groups(t: pa.Table, key: str):
    """(value, rows) for each run of equal `key` in `t`, which is sorted by it."""
    if t.num_rows == 0:
        return
    col = t.column(key).combine_chunks()
    ends = np.flatnonzero(pc.not_equal(col[1:], col[:-1]).to_numpy(zero_copy_only=False)) + 1
    starts = [0, *ends.tolist()]
    stops = [*ends.tolist(), t.num_rows]
    for a, b in zip(starts, stops):
        yield col[a].as_py(), t.slice(a, b - a)


# ---------------------------------------------------------------------------------------- checking


def _problem(path: str, code: str, detail: str) -> dict:
    return {"path": path, "problem": code, "detail": detail}


def check_shard(
    rel: str, entry: dict | None, size: int | None, scan: FileScan | None, sha256: str | None
) -> tuple[dict, list[dict]]:
    """One shard's row in the report and its problems against its manifest `entry` (None for
    plain Parquet: only readability is checked). `size` is None when the file is not on disk."""
    listed = entry or {}
    row = {
        "path": rel,
        "kind": listed.get("kind", "parquet"),
        "bucket": listed.get("bucket"),
        "rows": scan.rows if scan else None,
        "bytes": size,
        "row_groups": scan.row_groups if scan else None,
        "tokens": None,
        "status": "ok",
    }
    says = f"{schema.MANIFEST_NAME} says"
    found: list[dict] = []
    if size is None:
        found.append(
            _problem(
                rel,
                "missing",
                f"listed in {schema.MANIFEST_NAME} ({listed.get('rows'):,} rows,"
                f" {listed.get('bytes'):,} bytes) but not on disk",
            )
        )
    else:
        if entry is not None and size != entry.get("bytes"):
            code = "truncated" if size < entry["bytes"] else "size"
            found.append(_problem(rel, code, f"{size:,} bytes on disk, {says} {entry['bytes']:,}"))
        if scan.error:
            found.append(_problem(rel, "unreadable", f"not a readable Parquet file: {scan.error}"))
        elif scan.missing_columns:
            found.append(_problem(rel, "schema", f"no column {scan.missing_columns[0]!r}"))
        elif entry is not None and scan.rows != entry.get("rows"):
            found.append(_problem(rel, "rows", f"{scan.rows:,} rows, {says} {entry.get('rows'):,}"))
        if scan.table is not None:
            row["tokens"] = token_sum(scan.table)
            if entry is not None and "tokens" in entry and row["tokens"] != entry["tokens"]:
                found.append(
                    _problem(
                        rel, "tokens", f"{row['tokens']:,} tokens (n_tokens x repeats), {says} {entry['tokens']:,}"
                    )
                )
        if sha256 is not None and entry is not None and sha256 != entry.get("sha256"):
            found.append(
                _problem(rel, "checksum", f"sha256 {sha256[:16]}..., {says} {str(entry.get('sha256'))[:16]}...")
            )
    if found:
        row["status"] = found[0]["problem"]
    return row, found


# The column each kind of shard is counted by in the ledger's recount (None: rows only).
LEDGER_COLUMNS = {"rejected": "rule", "quarantine": "reason"}


def _count(x) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def check_ledger(manifest: dict, kind: str, listed: dict, scans: dict, shard_problems: set[str]) -> list[dict]:
    """The manifest's ledger against the rows of its shards: kept = rows of the `kind` (mixture or
    annotated) shards, rejected per rule, quarantined per reason; and input = their sum. A kind
    whose shards already have a problem (missing, unreadable, ...) is not recounted: its figure
    cannot be known, and the problem is reported already."""
    led = manifest.get("ledger") if isinstance(manifest.get("ledger"), dict) else {}
    where = schema.MANIFEST_NAME
    found: list[dict] = []
    nums = {k: _count(led.get(k)) for k in ("input", "kept", "rejected", "quarantined")}
    bad = [k for k, v in nums.items() if v is None]
    if bad:
        return [_problem(where, "ledger", f"ledger has no count for {bad[0]!r}")]
    if nums["input"] != nums["kept"] + nums["rejected"] + nums["quarantined"] or led.get("balanced") is not True:
        found.append(
            _problem(
                where,
                "ledger",
                f"ledger does not balance: input {nums['input']} != kept {nums['kept']}"
                f" + rejected {nums['rejected']} + quarantined {nums['quarantined']}",
            )
        )
    by_kind = {kind: ("kept", None), "rejected": ("rejected", "rejected"), "quarantine": ("quarantined", "quarantined")}
    for k, (figure, per_key) in by_kind.items():
        paths = [p for p, e in listed.items() if e.get("kind") == k]
        if any(p in shard_problems or p not in scans for p in paths):
            continue
        rows = sum(scans[p].rows or 0 for p in paths)
        if rows != nums[figure]:
            found.append(
                _problem(
                    where,
                    "ledger",
                    f"{figure} is {nums[figure]:,} in the ledger, but the {k} shards hold {rows:,} rows",
                )
            )
            continue
        if per_key is None or (k == "rejected" and manifest.get("mode") == "annotate"):
            continue
        counts: dict[str, int] = {}
        for p in paths:
            for v, c in (scans[p].value_counts or {}).items():
                counts[v] = counts.get(v, 0) + c
        claimed = manifest.get(per_key) if isinstance(manifest.get(per_key), dict) else {}
        claimed = {str(r): c for r, c in claimed.items() if c}
        for r in sorted(set(counts) | set(claimed)):
            if counts.get(r, 0) != claimed.get(r, 0):
                found.append(
                    _problem(
                        where,
                        "ledger",
                        f"{per_key} {r!r} is {claimed.get(r, 0)!r} in the manifest,"
                        f" but the {k} shards hold {counts.get(r, 0):,} such rows",
                    )
                )
                break
    return found


def _only_checksum(rel: str, problems: list[dict]) -> bool:
    """A shard whose only problem is its checksum: its rows are still readable and counted."""
    return all(p["problem"] == "checksum" for p in problems if p["path"] == rel)


def inspect(path: str, verify: bool = False) -> dict:
    """The report `curate inspect` prints: a dict with stable keys (see cmd_inspect)."""
    target = locate(path)
    fs, root, manifest = target.fs, target.root, target.manifest
    problems: list[dict] = []
    if manifest is None:
        listed = {rel: {"path": rel, "kind": "parquet", "bucket": None} for rel in sorted(target.files)}
        stat_paths = set(listed)
    else:
        listed = {s["path"]: s for s in manifest.get("shards", [])}
        stat_paths = {p for p, s in listed.items() if s.get("kind") == target.kind}
    present = [p for p in listed if p in target.files]
    count_col = {p: LEDGER_COLUMNS.get(listed[p].get("kind")) if manifest is not None else None for p in present}
    scans = {s.path: s for s in _parallel(lambda p: scan_file(fs, root, p, p in stat_paths, count_col[p]), present)}
    hashes = (
        dict(zip(present, _parallel(lambda p: sha256_of(fs, posixpath.join(root, p)), present)))
        if verify and manifest is not None
        else {}
    )

    shards, tables = [], []
    shard_problems: set[str] = set()
    for rel, entry in listed.items():
        row, found = check_shard(
            rel, entry if manifest is not None else None, target.files.get(rel), scans.get(rel), hashes.get(rel)
        )
        problems += found
        shards.append(row)
        if found:
            shard_problems.add(rel)
        if rel in scans and scans[rel].table is not None:
            tables.append(scans[rel].table)
    if manifest is not None:
        problems += check_ledger(
            manifest, target.kind, listed, scans, {p for p in shard_problems if not _only_checksum(p, problems)}
        )
        for rel in sorted(set(target.files) - set(listed)):
            problems.append(
                _problem(rel, "extra", f"not listed in {schema.MANIFEST_NAME} ({target.files[rel]:,} bytes)")
            )
    if manifest is None and any(p["problem"] == "schema" for p in problems):
        bad = next(p for p in problems if p["problem"] == "schema")
        raise InspectError(
            f"{path}: not a curate output (no {schema.MANIFEST_NAME}) nor Parquet with the"
            f" contract's columns: {bad['path']}: {bad['detail']}",
            2,
        )

    table = pa.concat_tables(tables) if tables else pa.schema(STAT_COLUMNS).empty_table()
    targets = {}
    if manifest is not None:
        targets = {
            b: v.get("target_share")
            for b, v in manifest.get("buckets", {}).items()
            if v.get("target_share") is not None
        }
    stats = summarize(table, targets)
    stat_shards = [(listed[s.path], s) for s in scans.values() if s.table is not None]
    rows = sum(s.rows for _, s in stat_shards)
    approx = [s.text_bytes_approx for _, s in stat_shards]
    text_bytes_mean = sum(approx) / rows if rows and None not in approx else None
    chars = [e.get("text_chars") for e, _ in stat_shards]
    text_chars_mean = sum(chars) / rows if manifest is not None and rows and None not in chars else None
    for name, b in stats["buckets"].items():  # per bucket when shards are per bucket (the mixture)
        mine = [(e, s) for e, s in stat_shards if e.get("bucket") == name]
        n = sum(s.rows for _, s in mine)
        b["text_chars_mean"] = (
            sum(e["text_chars"] for e, _ in mine) / n
            if manifest is not None and n and all("text_chars" in e for e, _ in mine)
            else None
        )
    stats["groups"], stats["missed"] = missed_targets(manifest, stats["buckets"])
    stats["total"]["quality_histogram"] = quality_histogram(_values(table.column("quality_score"))[0])
    stats["total"]["text_chars_mean"] = text_chars_mean
    stats["total"]["text_bytes_mean_approx"] = text_bytes_mean

    ok_shards = [s for s in shards if s["bytes"] is not None]
    return {
        "format": INSPECT_FORMAT,
        "path": path,
        "root": root,
        "kind": target.kind,
        "manifest": None
        if manifest is None
        else {
            k: manifest.get(k)
            for k in (
                "format",
                "mode",
                "config_sha256",
                "runner",
                "workers",
                "tokenizer",
                "tokens_approximate",
                "ledger",
            )
        },
        # True only when every listed shard was hashed and matched its manifest entry
        "checksums_verified": bool(
            verify
            and manifest is not None
            and len(hashes) == len(listed)
            and not any(p["problem"] == "checksum" for p in problems)
        ),
        "ok": not problems,
        "problems": problems,
        "total": stats["total"],
        "buckets": stats["buckets"],
        "groups": stats["groups"],  # the manifest's group targets (code, multilingual) vs the shards
        "targets_missed": stats["missed"],  # groups first, then buckets
        "files": {
            "shards": len(shards),
            "present": len(ok_shards),
            "rows": sum(s["rows"] or 0 for s in ok_shards),
            "bytes": sum(s["bytes"] for s in ok_shards),
            "row_groups": sum(s["row_groups"] or 0 for s in ok_shards),
        },
        "shards": shards,
    }


# ---------------------------------------------------------------------------------------- output


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.2f}%"


def _num(x, fmt: str = ",.0f") -> str:
    return "" if x is None else format(x, fmt)


def render(report: dict, console) -> None:
    from rich.table import Table

    from classifiers.tokens import label as tokenizer_label

    m = report["manifest"]
    head = f"[bold]{report['path']}[/]: {report['kind']}"
    if m:
        head += (
            f" — {m.get('mode')} mode, config {str(m.get('config_sha256'))[:12]},"
            f" tokenizer {tokenizer_label(m.get('tokenizer'))}, {m.get('runner')}"
        )
    else:
        head += " — plain Parquet, no manifest (no targets, nothing to verify against)"
    console.print(head)
    annotated = any("would_drop" in b for b in report["buckets"].values())
    t = Table(title="tokens by bucket (tokens = n_tokens x repeats)", title_justify="left")
    cols = ["bucket", "language", "documents", "tokens", "share", "target", "gap"]
    for c in cols + (["would drop"] if annotated else []):
        t.add_column(c, justify="left" if c in ("bucket", "language") else "right")
    order = sorted(
        report["buckets"].items(),
        key=lambda kv: (-kv[1]["tokens"], -(kv[1]["target_share"] or 0), -kv[1]["documents"], kv[0]),
    )
    for name, b in order:
        extra = [_num(b.get("would_drop", 0))] if annotated else []
        langs = b["languages"]
        one = len(langs) == 1 and next(iter(langs)) == name
        t.add_row(
            name,
            "" if one or not langs else "(all)",
            f"{b['documents']:,}",
            f"{b['tokens']:,}",
            _pct(b["share"]),
            _pct(b["target_share"]),
            "" if b["gap"] is None else f"{100 * b['gap']:+.2f}",
            *extra,
        )
        if not one:
            for lang, v in langs.items():
                t.add_row(
                    "",
                    lang,
                    f"{v['documents']:,}",
                    f"{v['tokens']:,}",
                    _pct(v["share"]),
                    "",
                    "",
                    *([""] if annotated else []),
                )
    tot = report["total"]
    t.add_row(
        "[bold]total[/]",
        "",
        f"{tot['documents']:,}",
        f"{tot['tokens']:,}",
        _pct(tot["share"]),
        "",
        "",
        *([_num(tot.get("would_drop", 0))] if annotated else []),
    )
    console.print(t)
    if annotated:
        console.print(
            "annotated: repeats is 0 where filter mode drops a document, so tokens and shares are"
            " those of the mixture filter mode would write"
        )
    for g, v in report.get("groups", {}).items():
        console.print(f"group {g}: {_pct(v['share'])} (target {_pct(v['target_share'])}, {len(v['buckets'])} buckets)")
    for u in report.get("targets_missed", []):
        what = f"{u['target']} (group)" if u["group"] else u["target"]
        console.print(
            f"[yellow]target not met[/]: {what}: asked {_pct(u['asked'])}, achieved {_pct(u['achieved'])}"
            + (f" — {u['why']}" if u.get("why") else "")
        )

    d = Table(title="documents by bucket", title_justify="left")
    for c in (
        "bucket",
        "quality p10",
        "p50",
        "p90",
        "no score",
        "dup mean",
        "dup max",
        "dup >1",
        "tokens/doc p10",
        "p50",
        "p90",
        "max",
        "chars/doc",
    ):
        d.add_column(c, justify="left" if c == "bucket" else "right")

    def qrow(name, b):
        q, du, ln = b["quality_score"], b["dup_cluster_size"], b["length_tokens"]
        return (
            name,
            _num(q["p10"], ".2f"),
            _num(q["p50"], ".2f"),
            _num(q["p90"], ".2f"),
            f"{q['nulls']:,}",
            _num(du["mean"], ".2f"),
            _num(du["max"]),
            _pct(du["share_gt1"]),
            _num(ln["p10"]),
            _num(ln["p50"]),
            _num(ln["p90"]),
            _num(ln["max"]),
            _num(b.get("text_chars_mean")),
        )

    for name, b in order:
        if b["documents"]:
            d.add_row(*qrow(name, b))
    d.add_row(*qrow("[bold]total[/]", tot))
    console.print(d)
    if tot.get("text_bytes_mean_approx") is not None:
        console.print(f"text: about {tot['text_bytes_mean_approx']:,.0f} bytes per document (from the Parquet footers)")

    f = report["files"]
    shards = report["shards"]
    s = Table(
        title=f"shards: {f['present']:,} of {f['shards']:,} present, {f['rows']:,} rows, {f['bytes']:,} bytes,"
        f" {f['row_groups']:,} row groups",
        title_justify="left",
    )
    for c in ("path", "rows", "bytes", "row groups", "tokens", "status"):
        s.add_column(c, justify="left" if c in ("path", "status") else "right")
    bad = [x for x in shards if x["status"] != "ok"]
    shown = shards if len(shards) <= SHARDS_SHOWN else bad[:SHARDS_SHOWN]
    for x in shown:
        status = x["status"] if x["status"] == "ok" else f"[red]{x['status']}[/]"
        s.add_row(x["path"], _num(x["rows"]), _num(x["bytes"]), _num(x["row_groups"]), _num(x["tokens"]), status)
    if shown or not shards:
        console.print(s)
    else:
        console.print(s.title)
    if len(shards) > len(shown):
        console.print(f"({len(shards) - len(shown):,} more shards, all ok; --json lists every one)")
    if report["checksums_verified"]:
        console.print("sha256 checksums verified")
    if report["ok"]:
        console.print("[green]ok[/]: every file matches the manifest" if m else "[green]ok[/]")


def plot(report: dict, dest: str) -> None:
    """Achieved vs target token shares per bucket, the quality score histogram and the spread of
    document lengths per bucket, into a PNG (matplotlib's Agg canvas: no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    buckets = sorted(report["buckets"].items(), key=lambda kv: (-(kv[1]["target_share"] or 0), -kv[1]["share"], kv[0]))
    groups = [(f"{g} (group)", v) for g, v in report.get("groups", {}).items()]
    names = [n for n, _ in groups] + [n for n, _ in buckets]
    fig = Figure(figsize=(14, max(4.5, 0.26 * len(names) + 1.5)), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 3, width_ratios=[2, 1.2, 1.2])
    ax1 = fig.add_subplot(grid[0])
    ax3 = fig.add_subplot(grid[2], sharey=ax1)
    ax2 = fig.add_subplot(grid[1])
    y = np.arange(len(names))
    rows_ = groups + buckets
    achieved = np.array([100 * b["share"] for _, b in rows_])
    target = np.array([100 * b["target_share"] if b["target_share"] is not None else np.nan for _, b in rows_])
    ax1.barh(y - 0.2, achieved, height=0.4, label="achieved", color="tab:blue")
    ax1.barh(y + 0.2, target, height=0.4, label="target", color="tab:orange")
    ax1.set_yticks(y, names)
    ax1.set_ylim(len(names) - 0.5, -0.5)
    positive = np.concatenate([achieved[achieved > 0], target[target > 0]])
    if positive.size and positive.max() / positive.min() > 20:
        ax1.set_xscale("log")
    # a bucket that got nothing has no bar (none at all on a log axis): mark it at the axis' start
    zero = np.flatnonzero(achieved <= 0)
    if zero.size:
        left = positive.min() / 2 if ax1.get_xscale() == "log" and positive.size else 0.0
        ax1.set_xlim(left=left)
        ax1.scatter(
            np.full(zero.size, left),
            y[zero] - 0.2,
            marker="x",
            color="tab:red",
            zorder=3,
            clip_on=False,
            label="achieved 0",
        )
        for i in zero:
            ax1.annotate(
                "0",
                (left, y[i] - 0.2),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
                color="tab:red",
            )
    ax1.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    ax1.set_xlabel("token share (n_tokens x repeats)")
    ax1.set_title("token share by bucket: achieved vs target")
    ax1.legend(loc="best")

    q = report["total"]["quality_score"]
    hist = report["total"]["quality_histogram"]
    if q["count"]:
        edges = np.array(hist["bin_edges"])
        ax2.bar(edges[:-1], hist["counts"], width=np.diff(edges), align="edge", color="tab:green", edgecolor="white")
        ax2.set_xlabel("quality_score")
        ax2.set_ylabel("documents")
    else:
        ax2.text(0.5, 0.5, "no quality scores", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_xticks([])
        ax2.set_yticks([])
    ax2.set_title(f"quality score ({q['count']:,} scored, {q['nulls']:,} without)")

    rows = [
        (i, b["length_tokens"]) for i, (_, b) in enumerate(buckets, start=len(groups)) if b["length_tokens"]["count"]
    ]
    if rows:
        yy = np.array([i for i, _ in rows])
        p10, p50, p90 = (np.array([d[k] for _, d in rows]) for k in ("p10", "p50", "p90"))
        ax3.hlines(yy, p10, p90, color="tab:gray", lw=3, label="p10-p90")
        ax3.plot(p50, yy, "o", color="tab:red", label="median")
        if p10.min() > 0 and p90.max() / p10.min() > 20:
            ax3.set_xscale("log")
        ax3.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax3.legend(loc="best", fontsize="small")
    ax3.tick_params(labelleft=False)
    ax3.set_xlabel("tokens per document")
    ax3.set_title("document length by bucket")
    fig.suptitle(
        f"{report['path']} ({report['kind']}, {report['total']['documents']:,} documents,"
        f" {report['total']['tokens']:,} tokens)"
    )
    fig.savefig(dest, format="png", dpi=100)


# ---------------------------------------------------------------------------------------- CLI


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "inspect",
        help="report what an output holds and check its files against its manifest",
        description="Per bucket and language: documents, tokens (n_tokens x repeats) and share vs target;"
        " quality score, duplicate cluster size and length distributions; rows, bytes and row groups"
        " per shard. Checks every shard against manifest.json (missing, truncated, extra, rows,"
        " tokens; sha256 with --verify) and exits 1 on a mismatch. Reads footers and a few small"
        " columns only.",
    )
    p.add_argument(
        "path",
        metavar="OUT",
        help="a curate output directory, its mixture/ or annotated/ directory,"
        " or any Parquet file or directory with the contract's columns",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw achieved vs target shares and the quality and length distributions into a PNG",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="also recompute every shard's sha256 against the manifest (reads every byte)",
    )
    return p


def cmd_inspect(args) -> int:
    try:
        report = inspect(args.path, verify=args.verify)
    except InspectError as e:
        print(f"inspect: {e}", file=sys.stderr)
        return e.exit_code
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        from rich.console import Console

        render(report, Console(width=None if Console().is_terminal else 140))
    for p in report["problems"]:
        print(f"mismatch: {p['path']}: {p['problem']}: {p['detail']}", file=sys.stderr)
    if report["problems"]:
        print(
            f"inspect: {len(report['problems'])} problem(s): {report['path']} does not match its"
            f" {schema.MANIFEST_NAME}",
            file=sys.stderr,
        )
    if args.plot:
        try:
            plot(report, args.plot)
        except ImportError:
            print("inspect: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"inspect: --plot {args.plot}: {e.strerror or e}", file=sys.stderr)
            return 2
    return 1 if report["problems"] else 0


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.inspect_cmd OUT ...`, the same as `curate inspect OUT ...`."""
    ap = argparse.ArgumentParser(prog="curate")
    add_parser(ap.add_subparsers(dest="cmd", required=True))
    return cmd_inspect(ap.parse_args(["inspect", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
