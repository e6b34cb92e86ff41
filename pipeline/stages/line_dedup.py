"""Line-level dedup in Beam (the logic is `classifiers.line_dedup`): count every line of the
first pass's surviving documents, find the lines found in more than `max_line_repeats`
documents of a group, and tell the mixture plan and the last pass what removing them does.

  docs ─ LineItems ─┬─ (partition, [(line hash, uid, text key, index, bytes, chars)]) ─ GroupLines
                    │        ─ CountLines: frequent lines' occurrences, keyed by (file, chunk)
                    └─ ((file, chunk), [(record, payload, content chars)]) of each document
  both + the dedup events ─ GroupLineDocs ─ ResolveLines: per document, the lines to remove,
        emptied or not, stat deltas for the plan, a `lines` event for the last pass

Partitioned like dedup: a line's items all land in partition hash % P, so a partition's worker
sees every occurrence of its lines and counts them in a dict (two passes over the group: counts
first, occurrences only for the few frequent lines). Occurrences count per distinct document
text (the exact-dedup key), so exact copies of a page count once.

The per-document step must run before the plan (a removal changes the document's tokens and
bytes, an emptied document leaves the mixture), so it needs one grouping by document: keyed by
(file, chunk) like the last pass, it also receives the dedup events and leaves a document that
dedup drops to dedup (its whole size is already subtracted; subtracting the removed lines too
would count them twice).

Order relative to dedup: lines are counted over the first pass's survivors in parallel with
dedup, exact copies counting once, i.e. as if after exact dedup; near-duplicates that MinHash
removes still count. Counting after MinHash (Llama 3's order) would need the line items to
cross two more shuffles (by document to learn the fate, by line hash to recount); what this
costs instead is that the survivor of a cluster of more than `max_line_repeats` near-copies
loses the lines they share (ccNet, which runs no document-level dedup before its paragraph
dedup at all, is exposed to the same).

The last pass applies the removal to the re-read text (`ApplyLineDedup`), recounts its tokens,
and in annotate mode leaves the text whole and writes `line_dedup_fraction` instead.

What each of its shuffles carries per input document, measured by bench/line_dedup_bytes.py:
bench/results/line-dedup-bytes.md. The line hash is 56 bits and the text key 24 bits because
Beam's coder writes a Python int >= 2**63 in 24 bytes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import apache_beam as beam

from classifiers.decisions import LINES_EMPTIED, LinesRemoved
from classifiers.line_dedup import (
    after_removal,
    doc_lines,
    emptied,
    flatten_indices,
    group_salt,
    remove_lines,
    removed_fraction,
)
from classifiers.text import stable_hash64
from classifiers.tokens import TokenCounter, TokenizerSpec
from pipeline.config import Config
from pipeline.records import (
    DROP,
    Info,
    LineDoc,
    LineItem,
    LineOccurrence,
    event,
    pack_records,
    split_uid,
    stat_delta,
    unpack,
    unpack_records,
)
from pipeline.stages.base import Counters, Doc
from pipeline.stages.dedup import EVENTS_TAG, STATS_TAG, scope_value
from pipeline.stages.route import doc_payload

STAGE = LINES_EMPTIED.stage
ITEMS_TAG = "items"
# A document's text key for counting: 24 bits of its exact-dedup key. Two different documents
# sharing a line also share this key with probability 2**-24, which only undercounts that line
# by one.
TEXT_KEY_MASK = (1 << 24) - 1


class LineItems(beam.DoFn):
    """Document batches -> line items per partition (tagged `items`) and, per (file, chunk),
    the payload of each document with a counted line (main)."""

    def __init__(self, config: Config, partitions: int):
        self.params = config.stages.line_dedup
        self.partitions = partitions
        self.exact = config.stages.exact_dedup.enabled
        self.seed = config.stages.mixture.seed
        self.chunk = config.runner.records_per_chunk
        self.skip = frozenset(self.params.skip_buckets)
        self._salts: dict[tuple, bytes] = {}

    def salt(self, d: Doc) -> bytes:
        p = self.params
        group = stable_hash64(d["id"], salt=b"line_dedup") % p.groups if p.groups > 1 else 0
        key = (scope_value(d, p.scope), group)
        s = self._salts.get(key)
        if s is None:
            s = self._salts[key] = group_salt(*key)
        return s

    def process(self, batch: list[Doc]) -> Iterable:
        p = self.params
        items: dict[int, list] = defaultdict(list)
        docs: dict[tuple, list] = defaultdict(list)
        for d in batch:
            if d.get("drop") is not None or d["bucket"] in self.skip:
                continue
            lines, content = doc_lines(d["text"], self.salt(d), p.min_line_chars, p.max_lines)
            if not lines:
                continue
            uid = d["uid"]
            text_key = d["exact_key"] & TEXT_KEY_MASK if self.exact else None
            for h, ix, nbytes, nchars in lines:
                items[h % self.partitions].append(LineItem(h, uid, text_key, ix, nbytes, nchars))
            f, rec = split_uid(uid)
            docs[(f, rec // self.chunk)].append(LineDoc(rec, doc_payload(d, self.seed), content))
        for part, lst in items.items():
            yield beam.pvalue.TaggedOutput(ITEMS_TAG, (part, pack_records(lst)))
        for key, lst in docs.items():
            yield (key, ("docs", pack_records(lst)))


class CountLines(beam.DoFn):
    """(partition, [packed LineItem lists]) -> ((file, chunk), ("lines", packed [LineOccurrence]))
    for every occurrence of a line found in more than `max_line_repeats` distinct documents."""

    def __init__(self, max_line_repeats: int, chunk: int):
        self.max_repeats, self.chunk = max_line_repeats, chunk
        self.counters = Counters()

    def process(self, kv) -> Iterable:
        _, blobs = kv
        counts: dict[int, int] = defaultdict(int)
        for blob in blobs:
            for item in unpack(blob):  # plain tuples: the line hash first
                counts[item[0]] += 1
        candidates = {h for h, n in counts.items() if n > self.max_repeats}
        del counts
        if not candidates:
            return
        occurrences: dict[int, list] = defaultdict(list)
        for blob in blobs:  # unpacked again, one batch at a time
            for item in unpack(blob):
                if item[0] in candidates:
                    occurrences[item[0]].append(LineItem._make(item))
        per_chunk: dict[tuple, list] = defaultdict(list)
        frequent = 0
        for occ in occurrences.values():
            if len({it.uid if it.text_key is None else it.text_key for it in occ}) <= self.max_repeats:
                continue
            frequent += 1
            for it in occ:
                f, rec = split_uid(it.uid)
                per_chunk[(f, rec // self.chunk)].append(LineOccurrence(rec, it.index, it.nbytes, it.nchars))
        self.counters.inc(f"{STAGE}/frequent_lines", frequent)
        for key, lst in per_chunk.items():
            yield (key, ("lines", pack_records(lst)))


class ResolveLines(beam.DoFn):
    """Per (file, chunk): document payloads, frequent-line occurrences and dedup events ->
    `lines` events for the last pass (tagged events) and stat deltas (tagged stats)."""

    def __init__(self, config: Config):
        self.min_chars_after = config.stages.line_dedup.min_chars_after
        self.approx_tokens = config.tokenizer.kind == "approx"
        self.counters = Counters()

    def process(self, kv) -> Iterable:
        key, parts = kv
        docs: dict[int, LineDoc] = {}
        removed: dict[int, list[LineOccurrence]] = defaultdict(list)
        dropped: set[int] = set()
        for tag, blob in parts:
            if tag == "docs":
                docs.update((d.rec, d) for d in unpack_records(blob, LineDoc))
            elif tag == "lines":
                for occ in unpack_records(blob, LineOccurrence):
                    removed[occ.rec].append(occ)
            else:  # dedup events: only their drops matter here
                dropped.update(ev[0] for ev in unpack(blob) if ev[1] == DROP)
        events, deltas = [], []
        for rec in sorted(removed):
            occ = removed[rec]
            indices = tuple(flatten_indices(o.index for o in occ))
            if rec in dropped:  # dedup drops it whole; annotate mode still shows the fraction
                events.append(event(rec, LinesRemoved(indices, False)))
                continue
            payload, content = docs[rec].payload, docs[rec].content
            kept_bytes, tokens, kept_content = after_removal(
                payload.nbytes,
                payload.tokens,
                content,
                sum(o.nbytes for o in occ),
                sum(o.nchars for o in occ),
                self.approx_tokens,
            )
            gone = emptied(kept_content, self.min_chars_after)
            if gone:
                self.counters.inc(LINES_EMPTIED.rule)
                deltas.append(stat_delta(payload, -1))
            else:
                self.counters.inc(f"{STAGE}/lines_removed", len(indices))
                deltas.append((payload.bucket, payload.key, 0, tokens - payload.tokens, kept_bytes - payload.nbytes))
            events.append(event(rec, LinesRemoved(indices, gone)))
        if events:
            yield beam.pvalue.TaggedOutput(EVENTS_TAG, (key, ("events", pack_records(events))))
        if deltas:
            yield beam.pvalue.TaggedOutput(STATS_TAG, deltas)


class LineDedup(beam.PTransform):
    """(document batches after DedupKeys, *dedup event PCollections) -> ([events keyed like
    the last pass], [stat deltas]), as `Deduplicate` returns them."""

    def __init__(self, config: Config, partitions: int):
        super().__init__()
        self.config, self.partitions = config, partitions

    def expand(self, pcolls):
        docs, *dedup_events = pcolls
        config = self.config
        chunk = config.runner.records_per_chunk
        out = docs | "LineItems" >> beam.ParDo(LineItems(config, self.partitions)).with_outputs(ITEMS_TAG, main="docs")
        frequent = (
            out[ITEMS_TAG]
            | "GroupLines" >> beam.GroupByKey()
            | "CountLines" >> beam.ParDo(CountLines(config.stages.line_dedup.max_line_repeats, chunk))
        )
        resolved = (
            (out.docs, frequent, *dedup_events)
            | "FlattenLineDocs" >> beam.Flatten()
            | "GroupLineDocs" >> beam.GroupByKey()
            | "ResolveLines" >> beam.ParDo(ResolveLines(config)).with_outputs(EVENTS_TAG, STATS_TAG, main="none")
        )
        return [resolved[EVENTS_TAG]], [resolved[STATS_TAG]]


class ApplyLineDedup:
    """The last pass's side: the text, token count and annotate column of one document given
    its `lines` event (the line indices to remove), if any."""

    def __init__(self, config: Config, tokenizer: TokenizerSpec | None = None):
        self.skip = frozenset(config.stages.line_dedup.skip_buckets)
        self.tokenizer_config, self.tokenizer = config.tokenizer, tokenizer  # spec: resolved when None
        self._counter = None

    def n_tokens(self, text: str) -> int:
        if self._counter is None:
            if self.tokenizer is None:
                from pipeline.stages.mixture import tokenizer_spec

                self.tokenizer = tokenizer_spec(self.tokenizer_config)
            self._counter = TokenCounter.load(self.tokenizer)
        return self._counter.count([text])[0]

    def apply(
        self, text: str | None, info: Info, indices: tuple | None, drop, annotate: bool
    ) -> tuple[str | None, int, float | None]:
        """(text to write, its n_tokens, line_dedup_fraction for annotate mode): filter mode
        removes the lines from a kept document; annotate mode keeps the text and reports the
        fraction of characters the removal would take (0.0 for a document that took part
        without a frequent line, null for one that did not take part)."""
        n_tokens = info.n_tokens
        if annotate:
            if text is None or (indices is None and (info.drop is not None or info.bucket in self.skip)):
                return text, n_tokens, None
            return text, n_tokens, removed_fraction(text, indices) if indices else 0.0
        if drop is None and indices and text is not None:
            text = remove_lines(text, indices)
            n_tokens = self.n_tokens(text)
        return text, n_tokens, None
