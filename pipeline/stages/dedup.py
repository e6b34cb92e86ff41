"""Dedup stages: exact (normalised-text hash) then MinHash near-dedup, deciding on small
keyed records only (ids, hashes, token counts), never on document text.

Shuffle layout. Every level partitions its keys into `P` partitions and ships each batch's
items as one list per partition, so Beam's per-element overhead is paid per batch, not per
document or band. A partition's worker groups equal keys in a dict:
- URL (documents of sources with a url_field): equal normalised URL -> the latest (by the
  source's timestamp_field) or the first read survives, the rest are `url_dedup/duplicate`;
- exact: equal `exact_key` -> one survivor (lowest id, or highest quality), the rest are
  `exact_dedup/duplicate`; the survivor's weight is the group size.
- MinHash: equal (scope, band, band hash) -> edges linking the group as a tree of stars of
  fan-out at most `max_bucket_size` around its smallest node (`classifiers.minhash.bucket_edges`:
  linear in the group, never quadratic; groups over `max_bucket_size` are counted).
Connected components over those edges run as unrolled large-star / small-star rounds (Kiveris
et al., "Connected Components in MapReduce and Beyond", SoCC 2014), each round two
GroupByKeys over the edges only. The smallest node of a component survives, the others are
`minhash_dedup/near_duplicate`; its `dup_cluster_size` is the sum of the weights of its
component.

A node is a tuple ordered by the survivor policy, ending with the document's uid:
(id, uid) for lowest_id, (-quality, id, uid) for highest_quality.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindows

from classifiers.minhash import MinHasher, bucket_edges
from classifiers.text import dedup_key_text, stable_hash64
from pipeline.sources import split_uid
from pipeline.stages.base import BatchStage, Counters, Doc, pack, unpack

EVENTS_TAG = "events"
# Dedup keys are 63-bit: Beam's coder writes a Python int >= 2**63 in 24 bytes instead of <= 10.
KEY_SHIFT = 1
STATS_TAG = "stats"

# splitmix64 finaliser constants (Steele et al. 2014): mixes band hashes with scope and band index
_M1, _M2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64, copy=True)
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def scope_value(doc: Doc, scope: str) -> str:
    if scope == "global":
        return ""
    if scope == "bucket":
        return doc.get("bucket") or ""
    return doc.get("language") or doc.get("bucket") or ""


def node_of(doc_id: str, uid: int, quality: float | None, survivor: str) -> tuple:
    if survivor == "highest_quality":
        return (-(quality if quality is not None else -1.0), doc_id, uid)
    return (doc_id, uid)


def node_uid(node: tuple) -> int:
    return node[-1]


def node_id(node: tuple) -> str:
    return node[-2]


class DedupKeys(BatchStage):
    """Per document: the scoped exact-dedup key and the scoped MinHash band keys."""
    name = "dedup_keys"

    def __init__(self, exact, minhash, annotate: bool):
        super().__init__(None, annotate)
        self.exact, self.minhash = exact, minhash

    def setup(self) -> None:
        self.hasher = MinHasher(self.minhash) if self.minhash.enabled else None

    def apply(self, docs: list[Doc]) -> list[Doc]:
        out = [dict(d) for d in docs]
        if self.exact.enabled:
            for d in out:
                scope = scope_value(d, self.exact.scope)
                d["exact_key"] = stable_hash64(f"{scope}\x1f{dedup_key_text(d['text'])}") >> KEY_SHIFT
        if self.hasher is not None:
            char_level = self.hasher.char_level_for([d.get("language") for d in out])
            bands = self.hasher.band_keys(self.hasher.signatures([d["text"] for d in out], char_level))
            n_bands = bands.shape[1]
            salt = np.array([stable_hash64(scope_value(d, self.minhash.scope)) for d in out], dtype=np.uint64)
            with np.errstate(over="ignore"):
                keyed = mix64(bands ^ mix64(salt[:, None] + np.arange(n_bands, dtype=np.uint64)[None, :] * _GOLD))
            keyed >>= np.uint64(KEY_SHIFT)
            for d, row in zip(out, keyed):
                d["band_keys"] = row
        return out


def _events_by_chunk(events: list[tuple[int, tuple]], chunk: int) -> Iterable:
    """(uid, event) -> ((file_idx, chunk), ("events", [(rec, *event)])), the last pass's keys."""
    per_chunk: dict[tuple, list] = defaultdict(list)
    for uid, ev in events:
        f, rec = split_uid(uid)
        per_chunk[(f, rec // chunk)].append((rec, *ev))
    for key, evs in per_chunk.items():
        yield beam.pvalue.TaggedOutput(EVENTS_TAG, (key, ("events", pack(evs))))


# A document's payload in dedup, for the mixture's accounting, is a plain tuple (it is shuffled
# once per band): (bucket, sampling-hash bin, tokens, bytes, weight), weight being the number of
# input documents it stands for (its exact-duplicate group's size).
PAYLOAD_WEIGHT = 4


def stat_delta(payload: tuple, sign: int) -> tuple:
    bucket, b, tokens, nbytes, _ = payload
    return (bucket, b, sign, sign * tokens, sign * nbytes)


def _group(blobs) -> dict:
    groups: dict = defaultdict(list)
    for blob in blobs:
        for item in unpack(blob):
            groups[item[0]].append(item)
    return groups


def _merge(root_payload: tuple, members_payloads) -> tuple:
    """The survivor's payload, standing for the weights of every member of its group."""
    return (*root_payload[:PAYLOAD_WEIGHT], sum(p[PAYLOAD_WEIGHT] for p in members_payloads))


def timestamp_key(ts: str | None) -> tuple:
    """Orders timestamps: missing < numbers (epoch) < strings (ISO 8601 sorts as text)."""
    if ts is None or ts == "":
        return (0,)
    try:
        return (1, float(ts))
    except ValueError:
        return (2, ts)


class UrlDedupPartition(beam.DoFn):
    """(partition, [packed lists of url items]) -> exact items (or band items) of the survivors (main),
    events, stat deltas. url item = (url_key, timestamp_key, node, payload, exact_key,
    band_keys); the survivor is the latest (ties: the smallest node) or the first read."""

    def __init__(self, keep: str, partitions: int, exact_enabled: bool, minhash_enabled: bool, chunk: int):
        self.keep = keep
        self.partitions, self.exact, self.minhash, self.chunk = partitions, exact_enabled, minhash_enabled, chunk
        self.counters = Counters()

    def process(self, kv) -> Iterable:
        _, lists = kv
        events, deltas, survivors = [], [], []
        for members in _group(lists).values():
            if self.keep == "first":
                members.sort(key=lambda it: node_uid(it[2]))
            else:  # stable sorts: latest first, then the smallest node among equal timestamps
                members.sort(key=lambda it: it[2])
                members.sort(key=lambda it: it[1], reverse=True)
            root = members[0]
            for _, _, node, payload, _, _ in members[1:]:
                events.append((node_uid(node), ("drop", "url_dedup", "url_dedup/duplicate", node_id(root[2]))))
                deltas.append(stat_delta(payload, -1))
            if len(members) > 1:
                self.counters.inc("url_dedup/duplicate", len(members) - 1)
                root = (*root[:3], _merge(root[3], (m[3] for m in members)), *root[4:])
                events.append((node_uid(root[2]), ("cluster", root[3][PAYLOAD_WEIGHT], node_id(root[2]))))
            survivors.append(root)
        yield from _events_by_chunk(events, self.chunk)
        if deltas:
            yield beam.pvalue.TaggedOutput(STATS_TAG, deltas)
        if self.exact:
            per_part: dict[int, list] = defaultdict(list)
            for _, _, node, payload, exact_key, bands in survivors:
                per_part[exact_key % self.partitions].append((exact_key, node, payload, bands))
            for part, lst in per_part.items():
                yield part, pack(lst)
        elif self.minhash:
            yield from band_items(((node, payload, bands) for _, _, node, payload, _, bands in survivors),
                                  self.partitions)


class ExactDedupPartition(beam.DoFn):
    """(partition, [packed lists of items]) -> band items of survivors (main), events, stat deltas.
    item = (exact_key, node, payload, band_keys)."""

    def __init__(self, partitions: int, minhash_enabled: bool, chunk: int):
        self.partitions, self.minhash_enabled, self.chunk = partitions, minhash_enabled, chunk
        self.counters = Counters()

    def process(self, kv) -> Iterable:
        _, lists = kv
        events, deltas, survivors = [], [], []
        for members in _group(lists).values():
            if len(members) > 1:
                members.sort(key=lambda it: it[1])
                root = members[0]
                for _, node, payload, _ in members[1:]:
                    events.append((node_uid(node), ("drop", "exact_dedup", "exact_dedup/duplicate", node_id(root[1]))))
                    deltas.append(stat_delta(payload, -1))
                self.counters.inc("exact_dedup/duplicate", len(members) - 1)
                merged = _merge(root[2], (m[2] for m in members))
                events.append((node_uid(root[1]), ("cluster", merged[PAYLOAD_WEIGHT], node_id(root[1]))))
                survivors.append((root[0], root[1], merged, root[3]))
            else:
                survivors.append(members[0])
        yield from _events_by_chunk(events, self.chunk)
        if deltas:
            yield beam.pvalue.TaggedOutput(STATS_TAG, deltas)
        if self.minhash_enabled:
            yield from band_items(((node, payload, bands) for _, node, payload, bands in survivors), self.partitions)


def band_items(nodes: Iterable[tuple], partitions: int) -> Iterable[tuple]:
    """(node, payload, band keys' bytes) -> (partition, packed [(band_key, node, payload)])."""
    per_part: dict[int, list] = defaultdict(list)
    for node, payload, bands in nodes:
        for key in np.frombuffer(bands, dtype=np.uint64).tolist():
            per_part[key % partitions].append((key, node, payload))
    for part, lst in per_part.items():
        yield part, pack(lst)


# MinHashPartition holds at most this many distinct edges across the partitions of a bundle
# before it emits them (a bounded cache, like a combiner's): a near-duplicate pair collides in
# up to `bands` bands, which land in different partitions, and every copy of its edge would be
# one more element in the first connected-components shuffle.
PENDING_EDGES = 200_000


class MinHashPartition(beam.DoFn):
    """(partition, [packed lists of (band_key, node, payload)]) -> star edges (main) and the
    payload of every node that has an edge (tagged 'payloads'), each once per flush of the
    bundle's pending set (`PENDING_EDGES`)."""

    def __init__(self, max_bucket_size: int):
        self.max_bucket_size = max_bucket_size
        self.counters = Counters()

    def start_bundle(self) -> None:
        self.edges: set[tuple] = set()
        self.payloads: dict[tuple, tuple] = {}

    def process(self, kv) -> Iterable:
        _, blobs = kv
        groups: dict[int, list] = defaultdict(list)
        for blob in blobs:
            for key, node, payload in unpack(blob):
                groups[key].append((node, payload))
        for members in groups.values():
            if len(members) < 2:
                continue
            if len(members) > self.max_bucket_size:
                self.counters.inc("minhash_dedup/giant_bucket")
            for node, payload in members:
                self.payloads[node] = payload
            self.edges.update(bucket_edges(sorted(m[0] for m in members), self.max_bucket_size))
        if len(self.edges) >= PENDING_EDGES:
            yield from self._flush(lambda v: v)

    def finish_bundle(self) -> Iterable:
        yield from self._flush(GlobalWindows.windowed_value)

    def _flush(self, wrap) -> Iterable:
        for e in self.edges:
            yield wrap(e)
        for node_payload in self.payloads.items():
            yield beam.pvalue.TaggedOutput("payloads", wrap(node_payload))
        self.edges, self.payloads = set(), {}


def _large_star(kv) -> Iterable[tuple]:
    u, neigh = kv
    neigh = set(neigh)
    m = min(min(neigh), u)
    for v in neigh:
        if v > u:
            yield (v, m)


def _small_star(kv) -> Iterable[tuple]:
    u, neigh = kv
    neigh = set(neigh)
    m = min(min(neigh), u)
    for v in neigh | {u}:
        if v != m:
            yield (v, m)


def _both_directions(e: tuple) -> Iterable[tuple]:
    yield e
    yield (e[1], e[0])


def _larger_first(e: tuple) -> tuple:
    return (e[0], e[1]) if e[0] > e[1] else (e[1], e[0])


class ConnectedComponents(beam.PTransform):
    """Undirected edges (u, v) -> labels (node, smallest node of its component) for every node
    but the components' smallest, after `rounds` large-star/small-star rounds. Unconverged
    nodes (possible only past the round budget) are counted; they can leave a component with
    more than one survivor (less dedup), never merge two components."""

    def __init__(self, rounds: int):
        super().__init__()
        self.rounds = rounds

    def expand(self, edges):
        for r in range(self.rounds):
            edges = (edges
                     | f"LargeStarEmit{r}" >> beam.FlatMap(_both_directions)
                     | f"LargeStarGroup{r}" >> beam.GroupByKey()
                     | f"LargeStar{r}" >> beam.FlatMap(_large_star)
                     | f"SmallStarEmit{r}" >> beam.Map(_larger_first)
                     | f"SmallStarGroup{r}" >> beam.GroupByKey()
                     | f"SmallStar{r}" >> beam.FlatMap(_small_star))
        labels = (edges
                  | "OrientLabels" >> beam.Map(_larger_first)
                  | "SmallestNeighbour" >> beam.CombinePerKey(min))
        return labels


class CountUnconverged(beam.DoFn):
    """A node that is some node's label yet has a label itself means a chain: not converged."""

    def __init__(self):
        self.counters = Counters()

    def process(self, kv) -> Iterable:
        _, roles = kv
        if roles["label"] and roles["target"]:
            self.counters.inc("minhash_dedup/cc_unconverged")
        return ()


class ResolveClusters(beam.DoFn):
    """(node, {'label': [root]?, 'payload': [payload, ...]}) -> near-duplicate drops (events),
    stat deltas, and (root, weight) for cluster sizes (main)."""

    def __init__(self, chunk: int):
        self.chunk = chunk
        self.counters = Counters()

    def process(self, kv) -> Iterable:
        node, roles = kv
        payloads = list(roles["payload"])
        if not payloads:
            return
        payload = payloads[0]
        labels = list(roles["label"])
        if labels:
            root = labels[0]
            self.counters.inc("minhash_dedup/near_duplicate")
            yield from _events_by_chunk([(node_uid(node), ("drop", "minhash_dedup", "minhash_dedup/near_duplicate",
                                                           node_id(root)))], self.chunk)
            yield beam.pvalue.TaggedOutput(STATS_TAG, [stat_delta(payload, -1)])
            yield (root, payload[PAYLOAD_WEIGHT])
        else:
            yield (node, payload[PAYLOAD_WEIGHT])


def cluster_events(kv, chunk: int) -> Iterable:
    root, size = kv
    yield from (e.value for e in _events_by_chunk([(node_uid(root), ("cluster", size, node_id(root)))], chunk))


class Deduplicate(beam.PTransform):
    """(url items, items): url items go through URL dedup first; items are exact items
    (partition, [item lists]) or, with exact dedup off, band items ->
    (lists of event PCollections keyed like the last pass, lists of stat-delta PCollections)."""

    def __init__(self, url, exact, minhash, partitions: int, chunk: int):
        super().__init__()
        self.url, self.exact, self.minhash = url, exact, minhash
        self.partitions, self.chunk = partitions, chunk

    def expand(self, pcolls):
        url_items, items = pcolls
        events, deltas = [], []
        if self.url.enabled:
            ud = (url_items
                  | "GroupUrls" >> beam.GroupByKey()
                  | "UrlDedup" >> beam.ParDo(UrlDedupPartition(self.url.keep, self.partitions, self.exact.enabled,
                                                                 self.minhash.enabled, self.chunk))
                  .with_outputs(EVENTS_TAG, STATS_TAG, main="next"))
            events.append(ud[EVENTS_TAG])
            deltas.append(ud[STATS_TAG])
            items = (items, ud.next) | "AfterUrls" >> beam.Flatten()
        if self.exact.enabled:
            ex = (items
                  | "GroupExact" >> beam.GroupByKey()
                  | "ExactDedup" >> beam.ParDo(ExactDedupPartition(self.partitions, self.minhash.enabled, self.chunk))
                  .with_outputs(EVENTS_TAG, STATS_TAG, main="bands"))
            events.append(ex[EVENTS_TAG])
            deltas.append(ex[STATS_TAG])
            bands = ex.bands
        else:
            bands = items
        if self.minhash.enabled:
            mh = (bands
                  | "GroupBands" >> beam.GroupByKey()
                  | "BandCollisions" >> beam.ParDo(MinHashPartition(self.minhash.max_bucket_size))
                  .with_outputs("payloads", main="edges"))
            labels = mh.edges | "Components" >> ConnectedComponents(self.minhash.max_cc_rounds)
            targets = labels | "LabelTargets" >> beam.Map(lambda kv: (kv[1], None))
            ({"label": labels, "target": targets}
             | "GroupRoles" >> beam.CoGroupByKey()
             | "CheckConverged" >> beam.ParDo(CountUnconverged()))
            resolved = ({"label": labels, "payload": mh.payloads}
                        | "JoinLabels" >> beam.CoGroupByKey()
                        | "ResolveClusters" >> beam.ParDo(ResolveClusters(self.chunk)).with_outputs(EVENTS_TAG, STATS_TAG, main="sizes"))
            events.append(resolved[EVENTS_TAG])
            deltas.append(resolved[STATS_TAG])
            events.append(resolved.sizes
                          | "SumClusterWeights" >> beam.CombinePerKey(sum)
                          | "ClusterEvents" >> beam.FlatMap(cluster_events, self.chunk))
        return events, deltas
