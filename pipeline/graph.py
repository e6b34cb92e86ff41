"""The pipeline graph. `build()` reads like the data flow:

read -> normalize/validate -> langid -> heuristics -> quality -> tokens -> dedup keys
     -> route (text let go: small records only from here)
     -> URL dedup -> exact dedup -> MinHash bands -> connected components (ids and hashes)
     -> mixture plan (token histograms, a combine)                  (side input)
     -> last pass: merge decisions per input chunk, re-read its text, route rows to shards
     -> write shards (the only shuffle that carries text) -> manifest, last
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import apache_beam as beam

from classifiers.heuristics import SIGNAL_NAMES
from classifiers.text import stable_hash64
from pipeline.config import Config
from pipeline.sources import FileSpec
from pipeline.stages.dedup import DEDUP_TAG, NODES_TAG, STATS_TAG, DedupKeys, Deduplicate
from pipeline.stages.finalize import LEDGER_TAG, QUARANTINE, SAMPLE_TAG, Finalize
from pipeline.stages.mixture import PlanMixture, TokenCount, quarantine_shards, tokenizer_spec
from pipeline.stages.read import ReadDocuments
from pipeline.stages.route import URL_TAG, RouteDocuments
from pipeline.stages.write import WriteManifest, WriteShard

# Automatic shuffle partitions: one per this much text, so that the largest group a dedup worker
# holds (a partition's keys: ~8k documents' exact items or band items) does not grow with the
# corpus (bench/dedup_scale.py measures it).
PARTITION_TEXT_BYTES = 32 << 20
MIN_PARTITIONS = 4
# Input bytes -> text bytes, before the documents are read: typical expansions of compressed JSONL
# (the benchmark corpus: zstd -3 3.5x) and of Parquet's compressed pages. Too many partitions
# cost little (smaller lists per batch), too few cost worker memory, so these lean high.
JSONL_EXPANSION = {"none": 1.0, "gzip": 4.0, "zstd": 4.0}  # by FileSpec.compression
PARQUET_EXPANSION = 3.0
# WARC: the main text is a small share of a crawl's bytes (HTTP headers, markup, request and
# metadata records): ~1/10 of a plain WARC's, ~1/2 of a per-record compressed one's
WARC_TEXT_SHARE = {"none": 0.1, "gzip": 0.5, "zstd": 0.5}


def estimated_text_bytes(spec: FileSpec) -> float:
    if spec.format == "parquet":
        return spec.size * PARQUET_EXPANSION
    if spec.format == "warc":
        return spec.size * WARC_TEXT_SHARE[spec.compression]
    return spec.size * JSONL_EXPANSION[spec.compression]


def shuffle_partitions(config: Config, specs: list[FileSpec]) -> int:
    if config.runner.shuffle_partitions:
        return config.runner.shuffle_partitions
    total = sum(estimated_text_bytes(s) for s in specs)
    return max(MIN_PARTITIONS, math.ceil(total / PARTITION_TEXT_BYTES))


def input_info(config: Config, specs: list[FileSpec]) -> dict:
    """What the manifest records about the run's input and tokenizer, whatever the runner. The
    tokenizer is resolved here, before the pipeline starts (Llama 3's built on first use; one
    that cannot be had stops the run with one line)."""
    spec = tokenizer_spec(config.tokenizer)
    return {
        "input_files": len(specs),
        "input_bytes": sum(s.size for s in specs),
        "tokenizer": spec.manifest(),
        "tokens_approximate": spec.approximate,
    }


class SumLedger(beam.CombineFn):
    def create_accumulator(self):
        return {}

    def add_input(self, acc, counts):
        for k, v in counts.items():
            acc[k] = acc.get(k, 0) + v
        return acc

    def merge_accumulators(self, accs):
        out: dict = {}
        for a in accs:
            self.add_input(out, a)
        return out

    def extract_output(self, acc):
        return acc


ID_DIGEST = 16  # bytes of an id's blake2b digest


def _id_digests(batch: list[dict], partitions: int):
    """Per partition of this batch: (partition, its documents' id digests, joined). An id is
    counted by value, so `42` and `"42"` (both the id "42") are one id; its 128-bit hash keeps a
    hostile multi-megabyte id out of the shuffle, and the batch's digests cross it as one value
    per partition, not one element per document."""
    parts: dict[int, list[bytes]] = {}
    for d in batch:
        h = hashlib.blake2b(d["id"].encode("utf-8"), digest_size=ID_DIGEST).digest()
        parts.setdefault(int.from_bytes(h[:8], "big") % partitions, []).append(h)
    for part, hs in parts.items():
        yield part, b"".join(hs)


def _shared_ids(kv) -> list[dict]:
    """The ledger entry of the ids that more than one document holds, in one partition (manifest:
    duplicate_ids)."""
    _, blobs = kv
    counts = Counter(blob[i : i + ID_DIGEST] for blob in blobs for i in range(0, len(blob), ID_DIGEST))
    shared = [n for n in counts.values() if n > 1]
    return [{"duplicate_ids:ids": len(shared), "duplicate_ids:documents": sum(shared)}] if shared else []


def _quarantine_row_key(row: dict, counts: dict) -> tuple:
    n = quarantine_shards(sum(counts.values()))
    return ((QUARANTINE, "", stable_hash64(f"{row['file']}\x1f{row['record']}") % n, n), [row])


def first_pass(p: beam.Pipeline, config: Config, specs: list[FileSpec], partitions: int, release_models: bool = False):
    """Read and the per-document stages, up to the route that lets the text go:
    -> (docs, routed outputs (infos, URL_TAG, DEDUP_TAG, NODES_TAG, STATS_TAG), quarantined records,
    skipped-record counts (WARC records that are not documents)). `release_models`: the stages
    let their models go at the end of their bundle (stages/base.py BatchStage)."""
    st = config.stages

    def stage(dofn):
        dofn.release_models = release_models
        return beam.ParDo(dofn)

    annotate = config.mode == "annotate"
    # Read spreads the files over the workers itself (SpreadFiles): Create's own reshuffle would
    # be a second one
    files = p | "Files" >> beam.Create(specs, reshuffle=False)
    docs, quarantined, skipped = files | "Read" >> ReadDocuments(config)

    if st.langid.enabled:
        from pipeline.stages.langid import LanguageIdStage

        docs = docs | "LanguageId" >> stage(LanguageIdStage(st.langid, annotate))
    else:
        from pipeline.stages.langid import NoLanguageId

        docs = docs | "NoLanguageId" >> beam.ParDo(NoLanguageId(None, annotate))
    if st.heuristics.enabled:
        from pipeline.stages.heuristics import HeuristicsStage

        docs = docs | "Heuristics" >> beam.ParDo(HeuristicsStage(st.heuristics, annotate))
    if st.quality.enabled:
        from pipeline.stages.quality import QualityStage

        docs = docs | "Quality" >> stage(QualityStage(st.quality, annotate))
    docs = docs | "Tokens" >> stage(TokenCount(tokenizer_spec(config.tokenizer), annotate))
    if st.exact_dedup.enabled or st.minhash_dedup.enabled:
        docs = docs | "DedupKeys" >> beam.ParDo(DedupKeys(st.exact_dedup, st.minhash_dedup, False))

    routed = docs | "Route" >> beam.ParDo(RouteDocuments(config, partitions)).with_outputs(
        URL_TAG, DEDUP_TAG, NODES_TAG, STATS_TAG, main="infos"
    )
    return docs, routed, quarantined, skipped


def build(
    p: beam.Pipeline,
    config: Config,
    specs: list[FileSpec],
    run_info: dict,
    write_root: str | None = None,
    release_models: bool = False,
) -> None:
    """The graph; shards and manifest are written under `write_root` (default output.path).
    `release_models`: for a runner that gives each first-pass stage one bundle (in process, one
    worker), the stages' models are let go after it (first_pass)."""
    st = config.stages
    partitions = shuffle_partitions(config, specs)
    signals = SIGNAL_NAMES if st.heuristics.enabled else ()
    dedup = st.url_dedup.enabled or st.exact_dedup.enabled or st.minhash_dedup.enabled
    docs, routed, quarantined, skipped = first_pass(p, config, specs, partitions, release_models)
    events, deltas = [], [routed[STATS_TAG]]
    if dedup:
        ev, dl = (routed[URL_TAG], routed[DEDUP_TAG], routed[NODES_TAG]) | "Dedup" >> Deduplicate.for_config(
            config, partitions
        )
        events += ev
        deltas += dl
    if st.line_dedup.enabled:  # needs the dedup events: a document dedup drops keeps its lines
        from pipeline.stages.line_dedup import LineDedup

        ev, dl = (docs, *events) | "LineDedup" >> LineDedup(config, partitions)
        events += ev
        deltas += dl
    plan = (deltas | "FlattenStats" >> beam.Flatten()) | "Mixture" >> PlanMixture(config)
    plan_si = beam.pvalue.AsSingleton(plan)

    final = (
        ([routed.infos] + events)
        | "FlattenDecisions" >> beam.Flatten()
        | "GroupByChunk" >> beam.GroupByKey()
        | "Finalize"
        >> beam.ParDo(Finalize(config, specs, signals, tokenizer_spec(config.tokenizer)), plan_si).with_outputs(
            LEDGER_TAG, SAMPLE_TAG, main="rows"
        )
    )
    # the rejected-text sample: per rule, the keys of the output.rejected_text_sample documents
    # whose text rejected/ keeps (combined per bundle first: a few keys per rule cross the shuffle)
    sample = beam.pvalue.AsDict(
        final[SAMPLE_TAG]
        | "RejectedSample" >> beam.combiners.Top.SmallestPerKey(max(1, config.output.rejected_text_sample))
    )
    shared_ids = (
        docs
        | "IdDigests" >> beam.FlatMap(_id_digests, partitions)
        | "GroupIds" >> beam.GroupByKey()
        | "SharedIds" >> beam.FlatMap(_shared_ids)
    )
    ledger = (
        (final[LEDGER_TAG], shared_ids, skipped)
        | "FlattenLedger" >> beam.Flatten()
        | "SumLedger" >> beam.CombineGlobally(SumLedger())
    )

    q_counts = (
        quarantined
        | "QuarantineReason" >> beam.Map(lambda r: {r["reason"]: 1})
        | "SumQuarantine" >> beam.CombineGlobally(SumLedger())
    )
    q_rows = quarantined | "QuarantineShard" >> beam.Map(_quarantine_row_key, beam.pvalue.AsSingleton(q_counts))

    shards = (
        (final.rows, q_rows)
        | "FlattenRows" >> beam.Flatten()
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(WriteShard(config, signals, write_root), sample)
    )
    (
        p
        | "Once" >> beam.Create([None])
        | "WriteManifest"
        >> beam.ParDo(
            WriteManifest(config, run_info, signals, write_root),
            beam.pvalue.AsList(shards),
            plan_si,
            beam.pvalue.AsSingleton(ledger),
            beam.pvalue.AsSingleton(q_counts),
            sample,
        )
    )
