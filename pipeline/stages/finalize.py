"""The last pass: per chunk of an input file, merge every decision made about its documents
(first-pass info, dedup events, the mixture plan), re-read the chunk's text once, and emit the
rows of every output keyed by the shard they go to. The ledger (kept, rejected per rule) is
counted here, where each document's fate is final. The fate is decided in classifiers
(`decisions.settle`, then `MixturePlan.uses`); this stage gathers what they need and writes."""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Iterable

import apache_beam as beam
import pyarrow as pa

from classifiers.decisions import Fate, settle
from classifiers.text import stable_hash64
from pipeline import schema
from pipeline.config import Config
from pipeline.records import Info, make_uid, read_event, split_uid, unpack
from pipeline.schema import REJECTED_SAMPLE_SALT, SIGNAL_PREFIX
from pipeline.sources import FileSpec, read_file
from pipeline.stages.base import Counters
from pipeline.stages.line_dedup import ApplyLineDedup

LEDGER_TAG = "ledger"
SAMPLE_TAG = "rejected_sample"  # (rule, sample key): candidates for the rejected-text sample
MIXTURE, ANNOTATED, REJECTED, QUARANTINE = "mixture", "annotated", "rejected", "quarantine"


def _needs_text(fates: dict, sampled: dict, all_text: bool, rec: int) -> bool:
    """Whether the last pass needs a record's text: a WARC page no output row takes is not
    extracted again, a JSONL line of one not decoded (~2/3 of the race corpus's lines; their ids
    are then not compared with the first pass's, the kept documents' are). Fate None:
    quarantined in the first pass, read as then."""
    fate = fates.get(rec)
    return fate is None or all_text or fate.drop is None or rec in sampled


def sample_key(doc_id: str, uid: int) -> tuple[int, int]:
    """Order of the rejected-text sample (output.rejected_text_sample): per rule, the documents
    with the smallest keys keep their text; the id's hash, then the uid for ids held twice, so
    that every runner and worker count chooses the same documents."""
    return (stable_hash64(doc_id, salt=REJECTED_SAMPLE_SALT), uid)


def sample_candidates(infos: dict[int, Info], fates: dict[int, Fate], file_idx: int, k: int) -> dict[int, tuple]:
    """Per rule, the `k` dropped documents of this chunk with the smallest sample keys (only
    those can be among the run's `k` smallest): record -> (rule, key)."""
    per_rule: dict[str, list] = defaultdict(list)
    for rec, fate in fates.items():
        if fate.drop is not None:
            per_rule[fate.drop.rule].append((sample_key(infos[rec].id, make_uid(file_idx, rec)), rec))
    out = {}
    for rule, keys in per_rule.items():
        for key, rec in sorted(keys)[:k]:
            out[rec] = (rule, key)
    return out


def schema_for(kind: str, signal_names: tuple[str, ...]) -> pa.Schema:
    return {MIXTURE: schema.MIXTURE_SCHEMA, REJECTED: schema.REJECTED_SCHEMA, QUARANTINE: schema.QUARANTINE_SCHEMA}.get(
        kind
    ) or schema.annotate_schema(signal_names)


# The last pass hands each shard its rows of one input chunk as one Arrow
# record batch (IPC stream bytes) with the shard's schema and the rows' uids (UID_COLUMN): a few
# objects per batch through the shuffle instead of a dict per row (the rows of a whole run sit in
# the in-process runner's shuffle buffers at once). Quarantine rows come one per element as dicts.
UID_COLUMN = "_uid"
# zstd-compressed buffers: the rows' text (the mixture's, and the rejected-text sample's candidates,
# k per rule per chunk) crosses the shuffle and waits in its buffers at ~1/3 of its size
IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def row_schema(kind: str, signal_names: tuple[str, ...]) -> pa.Schema:
    return schema_for(kind, signal_names).append(pa.field(UID_COLUMN, pa.int64(), nullable=False))


def pack_rows(kind: str, rows: list[dict], signal_names: tuple[str, ...]) -> bytes:
    batch = pa.RecordBatch.from_pylist(rows, schema=row_schema(kind, signal_names))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=IPC_OPTIONS) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


def unpack_rows(blobs: Iterable[bytes]) -> pa.Table:
    return pa.concat_tables([pa.ipc.open_stream(b).read_all() for b in blobs])


class InputChanged(RuntimeError):
    pass


def shard_of(uid: int, n: int) -> int:
    return stable_hash64(uid.to_bytes(8, "little")) % n


class Finalize(beam.DoFn):
    def __init__(self, config: Config, specs: list[FileSpec], signal_names: tuple[str, ...], tokenizer=None):
        self.config = config
        self.specs = {s.file_idx: s for s in specs}
        self.sources = {s.name: s for s in config.sources}
        self.annotate = config.mode == "annotate"
        self.signal_names = signal_names
        self.counters = Counters()
        # tokenizer: the run's TokenizerSpec, for the tokens of a document that loses lines
        self.lines = ApplyLineDedup(config, tokenizer) if config.stages.line_dedup.enabled else None

    def process(self, kv, plan) -> Iterable:
        (file_idx, chunk), parts = kv
        infos: dict[int, Info] = {}
        events: dict[int, list] = defaultdict(list)
        for tag, blob in parts:
            if tag == "info":
                infos.update((rec, Info.read(fields)) for rec, fields in unpack(blob))
            else:
                for rec, decision in map(read_event, unpack(blob)):
                    events[rec].append(decision)
        seed = self.config.stages.mixture.seed
        ledger: Counter = Counter()
        fates: dict[int, Fate] = {}
        for rec in sorted(infos):
            info = infos[rec]
            fate = settle(info.id, info.drop, events.get(rec, ()))
            if fate.drop is None:
                repeats, drop = plan["mixture"].uses(info.bucket, info.id, seed)
                fate = fate._replace(drop=drop, repeats=repeats)
                if drop is not None:
                    self.counters.inc(drop.rule)
            drop = fate.drop
            if drop is not None:  # annotate mode writes it anyway, with the rule that would drop it
                ledger[f"{'would_reject' if self.annotate else 'rejected'}:{drop.rule}"] += 1
            if drop is None or self.annotate:
                ledger["kept"] += 1
                self.counters.inc("output/kept")
            fates[rec] = fate
            if info.language_model:  # manifest: stages.langid.models
                ledger[f"language_model:{info.language_model}"] += 1
            # text bytes and tokens (where counted) per rule, and of everything (manifest: volume)
            ledger["volume:bytes"] += info.n_bytes or 0
            ledger["volume:tokens"] += info.n_tokens or 0
            if drop is not None:
                ledger[f"dropped_bytes:{drop.rule}"] += info.n_bytes or 0
                if info.n_tokens is not None:
                    ledger[f"dropped_tokens:{drop.rule}"] += info.n_tokens
        yield beam.pvalue.TaggedOutput(LEDGER_TAG, ledger)
        out = self.config.output
        sample = {}
        if not self.annotate and not out.rejected_text and out.rejected_text_sample:
            sample = sample_candidates(infos, fates, file_idx, out.rejected_text_sample)
            for rule, key in sample.values():
                yield beam.pvalue.TaggedOutput(SAMPLE_TAG, (rule, key))

        need_text = self.annotate or ledger["kept"] > 0 or self.config.output.rejected_text or bool(sample)
        rows: dict[tuple, list] = defaultdict(list)
        if need_text:
            spec = self.specs[file_idx]
            per = self.config.runner.records_per_chunk
            seen = 0
            all_text = self.annotate or self.config.output.rejected_text

            need = functools.partial(_needs_text, fates, sample, all_text)
            for kind, doc in read_file(
                spec,
                self.sources[spec.source],
                self.config.stages.normalize,
                0,
                chunk * per,
                (chunk + 1) * per,
                self.config.stages.extract,
                need,
            ):
                if kind == "unread":  # a rejected record that no row takes the text of (_needs_text)
                    seen += 1
                    self.route(make_uid(file_idx, doc), infos[doc], fates[doc], None, plan, rows)
                    continue
                if kind != "doc":
                    continue
                rec = split_uid(doc["uid"])[1]
                info = infos.get(rec)
                if info is None or info.id != doc["id"]:
                    raise InputChanged(
                        f"{spec.path}: record {rec} differs from the first pass's read;"
                        " the input changed during the run"
                    )
                seen += 1
                self.route(
                    doc["uid"],
                    info,
                    fates[rec],
                    doc["text"],
                    plan,
                    rows,
                    rec in sample,
                    doc.get("url"),
                    doc.get("timestamp"),
                )
            if seen != len(infos):
                raise InputChanged(
                    f"{spec.path}: {len(infos) - seen} records of chunk {chunk} missing on re-read;"
                    " the input changed during the run"
                )
        else:
            for rec, info in infos.items():
                self.route(make_uid(file_idx, rec), info, fates[rec], None, plan, rows, rec in sample)
        for key, lst in rows.items():
            yield (key, pack_rows(key[0], lst, self.signal_names))

    def route(
        self,
        uid: int,
        info: Info,
        fate: Fate,
        text: str | None,
        plan: dict,
        rows: dict,
        sampled: bool = False,
        url: str | None = None,
        timestamp: str | None = None,
    ) -> None:
        """`sampled`: a rejected document of the rejected-text sample's candidates (keeps its text).
        `url`, `timestamp`: the re-read document's (WARC-Target-URI / WARC-Date, or the source's
        url_field / timestamp_field); rows without a re-read (nothing kept) take no mixture row."""
        drop = fate.drop
        n_tokens, line_fraction = info.n_tokens, None
        if self.lines is not None:  # removes the frequent lines (filter) or reports their share (annotate)
            text, n_tokens, line_fraction = self.lines.apply(text, info, fate.lines, drop, self.annotate)
        if self.annotate or drop is None:
            row = {
                "_uid": uid,
                "id": info.id,
                "text": text,
                "source": info.source,
                "bucket": info.bucket,
                "language": info.language,
                "language_score": info.language_score,
                "quality_score": info.quality_score,
                "n_tokens": n_tokens,
                "dup_cluster_size": fate.size,
                "repeats": fate.repeats,
                "url": url,
                "timestamp": timestamp,
            }
        if self.annotate:
            n = plan["annotated_shards"]
            row.update(
                drop_stage=drop.stage if drop else None,
                drop_rule=drop.rule if drop else None,
                dup_cluster=fate.cluster,
                quality_flag=info.quality_flag,
                language_model=info.language_model,
                line_dedup_fraction=line_fraction,
            )
            signals = info.signals or {}
            for name in self.signal_names:
                row[SIGNAL_PREFIX + name] = signals.get(name)
            rows[(ANNOTATED, "", shard_of(uid, n), n)].append(row)
        elif drop is None:
            n = plan["mixture"].buckets[info.bucket].shards
            rows[(MIXTURE, info.bucket, shard_of(uid, n), n)].append(row)
        else:
            n = plan["rejected_shards"]
            rows[(REJECTED, "", shard_of(uid, n), n)].append(
                {
                    "_uid": uid,
                    "id": info.id,
                    "source": info.source,
                    "stage": drop.stage,
                    "rule": drop.rule,
                    "detail": drop.detail,
                    # the sample's candidates carry it to the writer, which keeps the run's sample only
                    "text": text if self.config.output.rejected_text or sampled else None,
                }
            )
