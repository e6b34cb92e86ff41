"""Mixture stages: token counts per document, the per-bucket histograms (a combine), and the
plan (sampling rates and shard counts) that the last pass reads as a side input."""

from __future__ import annotations

import os

import apache_beam as beam

from classifiers.mixture import COMPRESSION_RATIO_ESTIMATE, BucketStats, add_deltas, merge_stats, plan_mixture
from classifiers.tokens import TokenCounter, TokenizerError, TokenizerSpec, resolve
from pipeline.config import Config, ConfigError, TokenizerConfig
from pipeline.stages.base import BatchStage, Doc

# Pseudo-bucket in the statistics counting every document read (the ledger's independent count).
READ = "*read*"
# Bytes a rejected/ row takes without its text (id, source, stage, rule, detail), for sharding,
# and at most this many rows per rejected/ shard (its writer holds one shard's rows in memory).
REJECTED_ROW_BYTES = 120
REJECTED_ROWS_PER_SHARD = 200_000


_SPECS: dict[tuple, TokenizerSpec] = {}


def tokenizer_spec(tokenizer: TokenizerConfig) -> TokenizerSpec:
    """The run's tokenizer (classifiers/tokens.py), resolved once per process: Llama 3's is built
    into the cache on first use. A tokenizer that cannot be had is a ConfigError (one line)."""
    from classifiers.artifacts import default_cache

    stat = os.stat(tokenizer.path) if tokenizer.path and os.path.isfile(tokenizer.path) else None
    key = (tokenizer.kind, tokenizer.path, str(default_cache()), stat and (stat.st_size, stat.st_mtime_ns))
    if key not in _SPECS:
        try:
            _SPECS[key] = resolve(tokenizer.kind, tokenizer.path)
        except TokenizerError as e:
            raise ConfigError(str(e)) from None
    return _SPECS[key]


class TokenCount(BatchStage):
    """n_tokens, exact with the run's tokenizer (params: its TokenizerSpec), counted for the
    documents that survived the filters (every document in annotate mode), one encode_batch per
    batch; the approximation only when tokenizer.kind is approx."""

    name = "tokens"
    models = ("counter",)

    def setup(self) -> None:
        self.counter = TokenCounter.load(self.params)

    def apply(self, docs: list[Doc]) -> list[Doc]:
        counts = self.counter.count_bytes([d["text"] for d in docs], [d["n_bytes"] for d in docs])
        return [{**d, "n_tokens": n} for d, n in zip(docs, counts)]


class SumStats(beam.CombineFn):
    """Lists of (bucket, sampling key, docs, tokens, bytes) deltas -> {bucket: BucketStats}."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, deltas):
        add_deltas(acc, deltas)
        return acc

    def merge_accumulators(self, accs):
        out: dict = {}
        for acc in accs:
            merge_stats(out, acc)
        return out

    def extract_output(self, acc):
        return acc


def make_plan(stats: dict[str, BucketStats], config: Config) -> dict:
    """The side input of the last pass: the mixture plan and every output's shard count."""
    out = config.output
    per_shard = out.shard_bytes * COMPRESSION_RATIO_ESTIMATE
    live = {b: s for b, s in stats.items() if b != READ}
    read = stats.get(READ)
    all_docs = int(read.docs.sum()) if read else 0
    all_bytes = int(read.bytes.sum()) if read else 0
    mix = config.stages.mixture
    plan = plan_mixture(
        live,
        mix.targets if mix.enabled else {},
        list(config.stages.langid.languages),
        mix.alpha,
        mix.max_repeats,
        mix.total_tokens,
        out.shard_bytes,
    )
    if not mix.enabled:  # everything that survived is kept once
        for p in plan.buckets.values():
            p.rate, p.whole_repeats, p.threshold, p.chosen = 1.0, 1, 0.0, None
            p.planned_tokens, p.planned_docs = float(p.available_tokens), float(p.available_docs)
            p.planned_bytes = float(live[p.bucket].bytes.sum())
            p.shards = max(1, -(-int(p.planned_bytes) // int(per_shard)))
    kept_docs = sum(p.planned_docs for p in plan.buckets.values())
    kept_bytes = sum(p.planned_bytes for p in plan.buckets.values())
    rejected_docs = max(0.0, all_docs - kept_docs)
    rejected_bytes = rejected_docs * REJECTED_ROW_BYTES + (max(0.0, all_bytes - kept_bytes) if out.rejected_text else 0)
    return {
        "mixture": plan,
        "annotated_shards": max(1, -(-all_bytes // int(per_shard))),
        "rejected_shards": max(
            1, int(-(-rejected_bytes // per_shard)), int(-(-rejected_docs // REJECTED_ROWS_PER_SHARD))
        ),
        "all_docs": all_docs,
    }


class PlanMixture(beam.PTransform):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config

    def expand(self, deltas):
        config = self.config
        return deltas | "SumStats" >> beam.CombineGlobally(SumStats()) | "Plan" >> beam.Map(make_plan, config)


def quarantine_shards(count: int) -> int:
    return max(1, -(-count // 1_000_000))


def unfed_targets(config: Config) -> list[str]:
    """Mixture targets that no configured source can feed, each with why (for a warning at start)."""
    from classifiers.langid import normalize_label

    mix, lid = config.stages.mixture, config.stages.langid
    if not mix.enabled:
        return []
    text = any(s.kind == "text" for s in config.sources)
    code = any(s.kind == "code" for s in config.sources)
    languages = set(lid.languages) if lid.enabled else set()
    out = []
    for name, share in mix.targets.items():
        if share <= 0:
            continue
        if name == "code":
            if not code and not (text and lid.enabled and lid.detect_code):
                out.append("code (no `kind: code` source or --code, and no text source whose code is detected)")
        elif name == "multilingual":
            if not text:
                out.append("multilingual (no text source)")
            elif not languages - {"en"}:
                out.append("multilingual (language ID is off or lists no language but English)")
        elif not text:
            out.append(f"{name} (no text source)")
        elif normalize_label(name) not in languages:
            out.append(f"{name} (not a language of stages.langid.languages, or language ID is off)")
    return out
