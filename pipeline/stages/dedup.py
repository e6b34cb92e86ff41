"""Dedup stages: exact (normalised-text hash) then MinHash near-dedup, deciding on small
keyed records only (ids, hashes, token counts), never on document text.

Shuffle layout. Every level partitions its keys into `P` partitions and ships each batch's
items as one list per partition, so Beam's per-element overhead is paid per batch, not per
document or band. A partition's worker groups equal keys in a dict:
- URL (documents of sources with a url_field): equal normalised URL -> the latest (by the
  source's timestamp_field) or the first read survives, the rest are `url_dedup/duplicate`;
- exact: equal `exact_key` -> one survivor (lowest id, or highest quality), the rest are
  `exact_dedup/duplicate`; the survivor's weight is the group size.
- MinHash: a band item is 16 bytes, (band key, uid), packed as a uint64 array per batch and
  partition; what else a document brings (its node and payload, below) is shuffled once, keyed
  by its uid's partition, not once per band. Equal (scope, band, band hash) -> edges linking the
  group's uids as a tree of stars of fan-out at most `max_bucket_size`
  (`classifiers.minhash.bucket_edges`: linear in the group, never quadratic; groups over
  `max_bucket_size` are counted).
Connected components over those uid edges run as unrolled large-star / small-star rounds
(Kiveris et al., "Connected Components in MapReduce and Beyond", SoCC 2014), each round two
GroupByKeys over the edges only; each component is labelled by its smallest uid. The labels
then meet the nodes of their partition (AttachNodes), each component's members are grouped by
label, and the smallest node (the survivor policy's order) survives; the others are
`minhash_dedup/near_duplicate`, and the survivor's `dup_cluster_size` is the sum of the
weights of its component.

Which document of a group survives, and what the others become, is decided in
`classifiers.duplicates` (nodes: the survivor policy's ordering tuples); the records shuffled
here are named in pipeline/records.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindows

from classifiers.duplicates import by_node, by_url_policy, node_uid, resolve
from classifiers.minhash import MinHasher, bucket_edges
from classifiers.text import dedup_key_text, stable_hash64
from pipeline.records import (
    ExactItem,
    NodeRecord,
    Payload,
    UrlItem,
    event,
    pack_records,
    split_uid,
    stat_delta,
    unpack_records,
)
from pipeline.stages.base import BatchStage, Counters, Doc

EVENTS_TAG = "events"
DEDUP_TAG = "dedup"  # the route's output of dedup items (exact items, or band items with exact off)
NODES_TAG = "nodes"  # (partition of uid, ("nodes", packed [NodeRecord])): MinHash's documents
# Dedup keys are 63-bit: Beam's coder writes a Python int >= 2**63 in 24 bytes instead of <= 10.
KEY_SHIFT = 1
STATS_TAG = "stats"  # lists of StatDelta tuples, from the route, dedup and line dedup

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


def _events_by_chunk(events: list[tuple], chunk: int) -> Iterable:
    """(uid, decision) -> ((file_idx, chunk), ("events", packed [records.event])), the last pass's keys."""
    per_chunk: dict[tuple, list] = defaultdict(list)
    for uid, decision in events:
        f, rec = split_uid(uid)
        per_chunk[(f, rec // chunk)].append(event(rec, decision))
    for key, evs in per_chunk.items():
        yield beam.pvalue.TaggedOutput(EVENTS_TAG, (key, ("events", pack_records(evs))))


def _group(blobs, record: type) -> dict:
    """A partition's packed records grouped by their first field (the dedup key)."""
    groups: dict = defaultdict(list)
    for blob in blobs:
        for item in unpack_records(blob, record):
            groups[item[0]].append(item)
    return groups


def _node(item) -> tuple:
    return item.node


def _weight(item) -> int:
    return item.payload.weight


def _timestamp(item: UrlItem) -> tuple:
    return item.timestamp


def _resolve_group(resolution, events: list, deltas: list, counters: Counters):
    """A group's decisions: each duplicate's drop and stat delta, the survivor's cluster; ->
    the survivor, its payload's weight now the group's."""
    survivor = resolution.survivor
    if not resolution.duplicates:
        return survivor
    for m in resolution.duplicates:
        events.append((node_uid(m.node), resolution.drop))
        deltas.append(stat_delta(m.payload, -1))
    counters.inc(resolution.drop.rule, len(resolution.duplicates))
    events.append((node_uid(survivor.node), resolution.cluster))
    return survivor._replace(payload=survivor.payload._replace(weight=resolution.cluster.size))


class UrlDedupPartition(beam.DoFn):
    """(partition, [packed lists of UrlItems]) -> exact items (or band items and nodes) of the
    survivors (main), events, stat deltas. The survivor: `classifiers.duplicates.by_url_policy`."""

    def __init__(self, keep: str, partitions: int, exact_enabled: bool, minhash_enabled: bool, chunk: int):
        self.keep = keep
        self.partitions, self.exact, self.minhash, self.chunk = partitions, exact_enabled, minhash_enabled, chunk
        self.counters = Counters()

    def process(self, kv) -> Iterable:
        _, lists = kv
        events, deltas, survivors = [], [], []
        for members in _group(lists, UrlItem).values():
            preferred = by_url_policy(members, self.keep, _node, _timestamp)
            survivors.append(
                _resolve_group(resolve(preferred, "url_dedup", _node, _weight), events, deltas, self.counters)
            )
        yield from _events_by_chunk(events, self.chunk)
        if deltas:
            yield beam.pvalue.TaggedOutput(STATS_TAG, deltas)
        if self.exact:
            per_part: dict[int, list] = defaultdict(list)
            for s in survivors:
                per_part[s.exact_key % self.partitions].append(ExactItem(s.exact_key, s.node, s.payload, s.bands))
            for part, lst in per_part.items():
                yield part, pack_records(lst)
        elif self.minhash:
            yield from band_items(((s.node, s.payload, s.bands) for s in survivors), self.partitions, main=True)


class ExactDedupPartition(beam.DoFn):
    """(partition, [packed lists of ExactItems]) -> band items (main) and nodes of the survivors,
    events, stat deltas. The survivor: the smallest node."""

    def __init__(self, partitions: int, minhash_enabled: bool, chunk: int):
        self.partitions, self.minhash_enabled, self.chunk = partitions, minhash_enabled, chunk
        self.counters = Counters()

    def process(self, kv) -> Iterable:
        _, lists = kv
        events, deltas, survivors = [], [], []
        for members in _group(lists, ExactItem).values():
            if len(members) == 1:
                survivors.append(members[0])
                continue
            survivors.append(
                _resolve_group(
                    resolve(by_node(members, _node), "exact_dedup", _node, _weight), events, deltas, self.counters
                )
            )
        yield from _events_by_chunk(events, self.chunk)
        if deltas:
            yield beam.pvalue.TaggedOutput(STATS_TAG, deltas)
        if self.minhash_enabled:
            yield from band_items(((s.node, s.payload, s.bands) for s in survivors), self.partitions, main=True)


def band_items(nodes: Iterable[tuple], partitions: int, main: bool) -> Iterable:
    """(node, payload, band keys' bytes) -> band items (partition, uint64 [(band_key, uid)] bytes)
    and nodes (tagged NODES_TAG: (partition of uid, ("nodes", packed [NodeRecord]))).
    Band items are the main output when `main`, else tagged DEDUP_TAG (the route's tag)."""
    keys: dict[int, list] = defaultdict(list)
    infos: dict[int, list] = defaultdict(list)
    for node, payload, bands in nodes:
        uid = node_uid(node)
        infos[uid % partitions].append(NodeRecord(uid, node, payload))
        for key in np.frombuffer(bands, dtype=np.uint64).tolist():
            keys[key % partitions] += (key, uid)
    for part, flat in keys.items():
        item = (part, np.array(flat, dtype=np.uint64).tobytes())
        yield item if main else beam.pvalue.TaggedOutput(DEDUP_TAG, item)
    for part, lst in infos.items():
        yield beam.pvalue.TaggedOutput(NODES_TAG, (part, ("nodes", pack_records(lst))))


def band_records(blobs) -> np.ndarray:
    """The (band_key, uid) rows of a partition's band blobs, as an (n, 2) uint64 array."""
    return np.frombuffer(b"".join(blobs), dtype=np.uint64).reshape(-1, 2)


# MinHashPartition holds at most this many distinct edges across the partitions of a bundle
# before it emits them (a bounded cache, like a combiner's): a near-duplicate pair collides in
# up to `bands` bands, which land in different partitions, and every copy of its edge would be
# one more element in the first connected-components shuffle.
PENDING_EDGES = 200_000


class MinHashPartition(beam.DoFn):
    """(partition, [band blobs]) -> uid edges (u, v), u < v, each once per flush of the bundle's
    pending set (`PENDING_EDGES`)."""

    def __init__(self, max_bucket_size: int):
        self.max_bucket_size = max_bucket_size
        self.counters = Counters()

    def start_bundle(self) -> None:
        self.edges: set[tuple] = set()

    def process(self, kv) -> Iterable:
        _, blobs = kv
        rows = band_records(blobs)
        order = np.argsort(rows[:, 0], kind="stable")
        keys, uids = rows[order, 0], rows[order, 1]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        sizes = np.diff(np.r_[starts, len(keys)])
        for s, n in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            members = np.unique(uids[s : s + n]).tolist()
            if len(members) > self.max_bucket_size:
                self.counters.inc("minhash_dedup/giant_bucket")
            self.edges.update(bucket_edges(members, self.max_bucket_size))
        if len(self.edges) >= PENDING_EDGES:
            yield from self.edges
            self.edges = set()

    def finish_bundle(self) -> Iterable:
        for e in self.edges:
            yield GlobalWindows.windowed_value(e)
        self.edges = set()


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


def _large_star_oriented(kv) -> Iterable[tuple]:
    return map(_larger_first, _large_star(kv))


def _small_star_oriented(kv) -> Iterable[tuple]:
    return map(_larger_first, _small_star(kv))


def _small_star_both(kv) -> Iterable[tuple]:
    for e in _small_star(kv):
        yield from _both_directions(e)


class ConnectedComponents(beam.PTransform):
    """Undirected edges (u, v) -> labels (node, smallest node of its component) for every node
    but the components' smallest, after `rounds` large-star/small-star rounds. Unconverged
    nodes (possible only past the round budget) are counted; they can leave a component with
    more than one survivor (less dedup), never merge two components."""

    def __init__(self, rounds: int):
        super().__init__()
        self.rounds = rounds

    def expand(self, edges):
        # Each step's emit is fused into the step before it (one ParDo, not two: 21 instead of
        # 41 for 10 rounds, each with Beam's construction and per-element cost): a large star's
        # edges go out larger end first, a small star's in both directions for the next round,
        # or larger end first after the last.
        edges = edges | "LargeStarEmit0" >> beam.FlatMap(_both_directions)
        for r in range(self.rounds):
            last = r == self.rounds - 1
            edges = (
                edges
                | f"LargeStarGroup{r}" >> beam.GroupByKey()
                | f"LargeStar{r}" >> beam.FlatMap(_large_star_oriented)
                | f"SmallStarGroup{r}" >> beam.GroupByKey()
                | f"SmallStar{r}" >> beam.FlatMap(_small_star_oriented if last else _small_star_both)
            )
        return edges | "SmallestNeighbour" >> beam.CombinePerKey(min)


class CountUnconverged(beam.DoFn):
    """A node that is some node's label yet has a label itself means a chain: not converged."""

    def __init__(self):
        self.counters = Counters()

    def process(self, kv) -> Iterable:
        _, roles = kv
        if roles["label"] and roles["target"]:
            self.counters.inc("minhash_dedup/cc_unconverged")
        return ()


def label_keys(kv, partitions: int) -> Iterable[tuple]:
    """(uid, root uid) -> the label for the uid's partition and the root's own (root -> root)."""
    uid, root = kv
    yield (uid % partitions, ("label", (uid, root)))
    yield (root % partitions, ("label", (root, root)))


class AttachNodes(beam.DoFn):
    """(partition, [("label", (uid, root)) ..., ("nodes", packed [NodeRecord]) ...])
    -> (root, (node, payload)) for every uid of the partition in a component (plain tuples: they
    cross GroupComponents unpacked)."""

    def process(self, kv) -> Iterable:
        _, parts = kv
        labels = [uid_root for tag, uid_root in parts if tag == "label"]
        if not labels:
            return
        # a node's own label wins over its root self-label: they differ only for a node left
        # unconverged (a label of others that has a label itself), whatever the values' order
        root_of = {uid: root for uid, root in labels if uid != root}
        for uid, _ in labels:
            root_of.setdefault(uid, uid)
        for tag, blob in parts:
            if tag == "nodes":
                for r in unpack_records(blob, NodeRecord):
                    root = root_of.get(r.uid)
                    if root is not None:
                        yield (root, (r.node, tuple(r.payload)))


class ResolveClusters(beam.DoFn):
    """(root uid, [(node, payload) of the component's members]) -> near-duplicate drops and the
    survivor's cluster event (events), stat deltas. The survivor is the smallest node."""

    def __init__(self, chunk: int):
        self.chunk = chunk
        self.counters = Counters()

    def process(self, kv) -> Iterable:
        _, members = kv
        members = [NodeRecord(node_uid(node), node, Payload._make(p)) for node, p in members]
        res = resolve(by_node(members, _node), "minhash_dedup", _node, _weight)
        events = [(r.uid, res.drop) for r in res.duplicates]
        events.append((res.survivor.uid, res.cluster))
        self.counters.inc(res.drop.rule, len(res.duplicates))
        yield from _events_by_chunk(events, self.chunk)
        yield beam.pvalue.TaggedOutput(STATS_TAG, [stat_delta(r.payload, -1) for r in res.duplicates])


class Deduplicate(beam.PTransform):
    """(url items, items, nodes): url items go through URL dedup first; items are exact items
    (partition, [packed item lists]) or, with exact dedup off, band items, and nodes the
    MinHash nodes of those band items ->
    (lists of event PCollections keyed like the last pass, lists of stat-delta PCollections)."""

    def __init__(self, url, exact, minhash, partitions: int, chunk: int):
        super().__init__()
        self.url, self.exact, self.minhash = url, exact, minhash
        self.partitions, self.chunk = partitions, chunk

    @classmethod
    def for_config(cls, config, partitions: int) -> Deduplicate:
        """URL dedup only where a source names a url_field or is WARC: with none, its shuffle (and the
        flatten that re-reads every exact item after it) would carry nothing."""
        st = config.stages
        url = st.url_dedup
        if url.enabled and not any(s.has_urls() for s in config.sources):
            url = url.model_copy(update={"enabled": False})
        return cls(url, st.exact_dedup, st.minhash_dedup, partitions, config.runner.records_per_chunk)

    def expand(self, pcolls):
        url_items, items, route_nodes = pcolls
        nodes, events, deltas = [route_nodes], [], []
        if self.url.enabled:
            ud = (
                url_items
                | "GroupUrls" >> beam.GroupByKey()
                | "UrlDedup"
                >> beam.ParDo(
                    UrlDedupPartition(
                        self.url.keep, self.partitions, self.exact.enabled, self.minhash.enabled, self.chunk
                    )
                ).with_outputs(EVENTS_TAG, STATS_TAG, NODES_TAG, main="next")
            )
            events.append(ud[EVENTS_TAG])
            deltas.append(ud[STATS_TAG])
            nodes.append(ud[NODES_TAG])
            items = (items, ud.next) | "AfterUrls" >> beam.Flatten()
        if self.exact.enabled:
            ex = (
                items
                | "GroupExact" >> beam.GroupByKey()
                | "ExactDedup"
                >> beam.ParDo(ExactDedupPartition(self.partitions, self.minhash.enabled, self.chunk)).with_outputs(
                    EVENTS_TAG, STATS_TAG, NODES_TAG, main="bands"
                )
            )
            events.append(ex[EVENTS_TAG])
            deltas.append(ex[STATS_TAG])
            nodes.append(ex[NODES_TAG])
            bands = ex.bands
        else:
            bands = items
        if self.minhash.enabled:
            edges = (
                bands
                | "GroupBands" >> beam.GroupByKey()
                | "BandCollisions" >> beam.ParDo(MinHashPartition(self.minhash.max_bucket_size))
            )
            labels = edges | "Components" >> ConnectedComponents(self.minhash.max_cc_rounds)
            targets = labels | "LabelTargets" >> beam.Map(lambda kv: (kv[1], None))
            (
                {"label": labels, "target": targets}
                | "GroupRoles" >> beam.CoGroupByKey()
                | "CheckConverged" >> beam.ParDo(CountUnconverged())
            )
            keyed_labels = labels | "LabelPartitions" >> beam.FlatMap(label_keys, self.partitions)
            resolved = (
                (keyed_labels, *nodes)
                | "FlattenNodes" >> beam.Flatten()
                | "GroupNodes" >> beam.GroupByKey()
                | "AttachNodes" >> beam.ParDo(AttachNodes())
                | "GroupComponents" >> beam.GroupByKey()
                | "ResolveClusters"
                >> beam.ParDo(ResolveClusters(self.chunk)).with_outputs(EVENTS_TAG, STATS_TAG, main="none")
            )
            events.append(resolved[EVENTS_TAG])
            deltas.append(resolved[STATS_TAG])
        return events, deltas
