"""The Beam side of dedup: connected components by large-star/small-star rounds agree with a
union-find on real-shaped graphs (chains, stars, trees of stars, many small clusters)."""
from __future__ import annotations

import random

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from classifiers.minhash import bucket_edges, connected_components
from pipeline.runner import in_process_runner, local_options
from pipeline.stages import dedup
from pipeline.stages.dedup import ConnectedComponents


def check_labels(edges, rounds, expected):
    with beam.Pipeline(runner=in_process_runner(), options=local_options(1)) as p:
        labels = p | beam.Create(edges) | ConnectedComponents(rounds)
        assert_that(labels, equal_to(sorted(expected.items())))


def expected_labels(edges):
    roots = connected_components(edges)
    return {n: r for n, r in roots.items() if n != r}


@pytest.mark.parametrize("name,edges", [
    ("chain", [(i, i + 1) for i in range(64)]),
    ("reversed chain", [(i + 1, i) for i in range(64)]),
    ("star", [(0, i) for i in range(1, 50)]),
    ("tree of stars", list(bucket_edges(range(500), 8))),
    ("random clusters", [(a, b) for a, b in ((random.Random(i).randrange(300), random.Random(i + 7).randrange(300))
                                             for i in range(400)) if a != b]),
])
def test_components_match_union_find(name, edges):
    check_labels(edges, 10, expected_labels(edges))


def test_tuple_nodes_pick_the_smallest_id_as_survivor():
    a, b, c = ("doc-a", 7), ("doc-b", 3), ("doc-c", 1)
    check_labels([(c, b), (b, a)], 4, {b: a, c: a})


def test_survivor_policy_orders_nodes():
    from pipeline.stages.dedup import node_id, node_of
    docs = [("b", 2, 4.5), ("a", 1, 1.0), ("c", 3, None)]
    assert node_id(min(node_of(i, u, q, "lowest_id") for i, u, q in docs)) == "a"
    assert node_id(min(node_of(i, u, q, "highest_quality") for i, u, q in docs)) == "b"


def _minhash_partition_outputs(blobs_by_part, pending_edges, monkeypatch):
    """Every partition through one bundle of MinHashPartition: (edges, payloads) as emitted,
    duplicates included, finish_bundle's windowed values unwrapped."""
    monkeypatch.setattr(dedup, "PENDING_EDGES", pending_edges)
    fn = dedup.MinHashPartition(max_bucket_size=64)
    fn.start_bundle()
    outs = [o for part, blobs in sorted(blobs_by_part.items()) for o in fn.process((part, blobs))]
    outs += list(fn.finish_bundle())
    edges, payloads = [], []
    for o in outs:
        tag = getattr(o, "tag", None)
        value = o.value if tag is not None else o
        value = getattr(value, "value", value)  # finish_bundle: WindowedValue
        (payloads if tag == "payloads" else edges).append(value)
    return edges, payloads


def test_minhash_partition_emits_each_edge_once_per_flush(monkeypatch):
    """A near-duplicate pair collides in several bands, which land in different partitions: the
    bundle's pending set emits its edge once (not once per band), and flushing early (a small
    cache) loses no edge and no payload."""
    rng = random.Random(5)
    nodes = [(f"doc-{i:03d}", i) for i in range(60)]
    payload = lambda i: ("en", i % 7, 100 + i, 400 + i, 1)  # noqa: E731
    # 20 clusters of 3 documents sharing 6 of 14 band keys; every other key unique
    bands = {}
    for i, node in enumerate(nodes):
        keys = [rng.getrandbits(62) for _ in range(14)]
        if i % 3:
            keys[:6] = bands[nodes[i - i % 3]][:6]
        bands[node] = keys
    by_part: dict[int, list] = {}
    for i, node in enumerate(nodes):
        arr = np.array(bands[node], dtype=np.uint64).tobytes()
        for part, blob in dedup.band_items([(node, payload(i), arr)], 5):
            by_part.setdefault(part, []).append(blob)
    edges, payloads = _minhash_partition_outputs(by_part, 10**6, monkeypatch)
    assert len(edges) == len(set(edges)) == 40  # 2 star edges per 3-document cluster
    assert sorted(payloads) == sorted((n, payload(i)) for i, n in enumerate(nodes))
    few, few_payloads = _minhash_partition_outputs(by_part, 1, monkeypatch)
    assert set(few) == set(edges) and len(few) > len(edges)  # flushed per partition: copies, none lost
    assert dict(few_payloads) == dict(payloads)


def test_shuffle_partitions_follow_estimated_text_bytes():
    from pipeline.config import Config
    from pipeline.graph import MIN_PARTITIONS, PARTITION_TEXT_BYTES, shuffle_partitions
    from pipeline.sources import FileSpec

    mb = 1 << 20
    plain = [FileSpec(i, "s", f"f{i}.jsonl", "jsonl", "none", 64 * mb) for i in range(4)]  # 256 MiB of text
    zstd = [FileSpec(i, "s", f"f{i}.jsonl.zst", "jsonl", "zstd", 64 * mb) for i in range(4)]  # ~1 GiB
    config = Config()
    assert shuffle_partitions(config, plain) == 256 * mb // PARTITION_TEXT_BYTES
    assert shuffle_partitions(config, zstd) == 4 * shuffle_partitions(config, plain)
    assert shuffle_partitions(config, []) == MIN_PARTITIONS
    config.runner.shuffle_partitions = 3
    assert shuffle_partitions(config, zstd) == 3
