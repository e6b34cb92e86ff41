"""The Beam side of dedup: connected components by large-star/small-star rounds agree with a
union-find on real-shaped graphs (chains, stars, trees of stars, many small clusters)."""

from __future__ import annotations

import random

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from classifiers.minhash import bucket_edges, connected_components
from pipeline.records import pack, unpack
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


@pytest.mark.parametrize(
    "name,edges",
    [
        ("chain", [(i, i + 1) for i in range(64)]),
        ("reversed chain", [(i + 1, i) for i in range(64)]),
        ("star", [(0, i) for i in range(1, 50)]),
        ("tree of stars", list(bucket_edges(range(500), 8))),
        (
            "random clusters",
            [
                (a, b)
                for a, b in ((random.Random(i).randrange(300), random.Random(i + 7).randrange(300)) for i in range(400))
                if a != b
            ],
        ),
    ],
)
def test_components_match_union_find(name, edges):
    check_labels(edges, 10, expected_labels(edges))


def test_tuple_nodes_pick_the_smallest_id_as_survivor():
    a, b, c = ("doc-a", 7), ("doc-b", 3), ("doc-c", 1)
    check_labels([(c, b), (b, a)], 4, {b: a, c: a})


def test_survivor_policy_orders_nodes():
    from classifiers.duplicates import node_id, node_of

    docs = [("b", 2, 4.5), ("a", 1, 1.0), ("c", 3, None)]
    assert node_id(min(node_of(i, u, q, "lowest_id") for i, u, q in docs)) == "a"
    assert node_id(min(node_of(i, u, q, "highest_quality") for i, u, q in docs)) == "b"


def _minhash_partition_edges(blobs_by_part, pending_edges, monkeypatch):
    """Every partition through one bundle of MinHashPartition: the edges as emitted, duplicates
    included, finish_bundle's windowed values unwrapped."""
    monkeypatch.setattr(dedup, "PENDING_EDGES", pending_edges)
    fn = dedup.MinHashPartition(max_bucket_size=64)
    fn.start_bundle()
    outs = [o for part, blobs in sorted(blobs_by_part.items()) for o in fn.process((part, blobs))]
    outs += [wv.value for wv in fn.finish_bundle()]
    return outs


def _band_blobs(bands: dict, partitions: int):
    by_part: dict[int, list] = {}
    nodes: dict[int, list] = {}
    for node, keys in bands.items():
        payload = ("en", 1, 100, 400, 1)
        for o in dedup.band_items([(node, payload, np.array(keys, dtype=np.uint64).tobytes())], partitions, main=True):
            if getattr(o, "tag", None) == dedup.NODES_TAG:
                part, (_, blob) = o.value
                nodes.setdefault(part, []).extend(unpack(blob))
            else:
                by_part.setdefault(o[0], []).append(o[1])
    return by_part, nodes


def test_band_items_carry_uids_and_each_node_once():
    nodes = [(f"doc-{i}", 1000 + i) for i in range(3)]
    by_part, infos = _band_blobs({n: list(range(14 * i, 14 * i + 14)) for i, n in enumerate(nodes)}, 5)
    rows = np.concatenate([dedup.band_records(blobs) for blobs in by_part.values()])
    assert len(rows) == 42 and set(rows[:, 1].tolist()) == {1000, 1001, 1002}
    assert all(int(k) % 5 == p for p, blobs in by_part.items() for k in dedup.band_records(blobs)[:, 0])
    assert sorted(u for lst in infos.values() for u, _, _ in lst) == [1000, 1001, 1002]
    assert all(u % 5 == p for p, lst in infos.items() for u, _, _ in lst)


def test_minhash_partition_emits_each_edge_once_per_flush(monkeypatch):
    """A near-duplicate pair collides in several bands, which land in different partitions: the
    bundle's pending set emits its edge once (not once per band), and flushing early (a small
    cache) loses no edge."""
    rng = random.Random(5)
    nodes = [(f"doc-{i:03d}", i) for i in range(60)]
    # 20 clusters of 3 documents sharing 6 of 14 band keys; every other key unique
    bands: dict = {}
    for i, node in enumerate(nodes):
        keys = [rng.getrandbits(62) for _ in range(14)]
        if i % 3:
            keys[:6] = bands[nodes[i - i % 3]][:6]
        bands[node] = keys
    by_part, _ = _band_blobs(bands, 5)
    edges = _minhash_partition_edges(by_part, 10**6, monkeypatch)
    assert len(edges) == len(set(edges)) == 40  # 2 star edges (smaller uid first) per 3-document cluster
    assert set(edges) == {(i - i % 3, i) for i in range(60) if i % 3}
    few = _minhash_partition_edges(by_part, 1, monkeypatch)
    assert set(few) == set(edges) and len(few) > len(edges)  # flushed per partition: copies, none lost


def test_resolve_clusters_survivor_weights_and_drops():
    a, b, c = (
        (("doc-a", 7), ("en", 1, 10, 40, 2)),
        (("doc-b", 3), ("en", 2, 20, 80, 1)),
        (("doc-c", 9), ("de", 3, 5, 9, 1)),
    )
    outs = list(dedup.ResolveClusters(chunk=100).process((3, [c, b, a])))
    events = [ev for o in outs if o.tag == dedup.EVENTS_TAG for ev in unpack(o.value[1][1])]
    stats = [d for o in outs if o.tag == dedup.STATS_TAG for d in o.value]
    assert sorted(events) == sorted(
        [
            (3, "drop", "minhash_dedup", "minhash_dedup/near_duplicate", "doc-a"),
            (9, "drop", "minhash_dedup", "minhash_dedup/near_duplicate", "doc-a"),
            (7, "cluster", 4, "doc-a"),
        ]
    )
    assert sorted(stats) == sorted([("en", 2, -1, -20, -80), ("de", 3, -1, -5, -9)])


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


def test_attach_nodes_is_deterministic_for_an_unconverged_chain():
    """Labels 5 -> 3 and 3 -> 1 (a chain the round budget left): 3 joins 1's component and 5
    stays in 3's group whatever order the values arrive in."""
    nodes = pack([(u, (f"d{u}", u), ("en", 0, 1, 1, 1)) for u in (1, 3, 5, 7)])
    parts = [("label", (5, 3)), ("label", (3, 3)), ("label", (3, 1)), ("label", (1, 1)), ("nodes", nodes)]
    results = set()
    for seed in range(8):
        shuffled = parts[:]
        random.Random(seed).shuffle(shuffled)
        results.add(tuple(sorted(dedup.AttachNodes().process((0, shuffled)))))
    assert results == {
        (
            (1, (("d1", 1), ("en", 0, 1, 1, 1))),
            (1, (("d3", 3), ("en", 0, 1, 1, 1))),
            (3, (("d5", 5), ("en", 0, 1, 1, 1))),
        )
    }


def test_exact_key_text_collapses_white_space_as_the_regex_did():
    """dedup_key_text splits and joins: the same text as substituting re's \\s+ with one space
    and stripping, on real text and code and on every kind of white space str.split() knows
    (U+001C..U+001F, U+0085, U+2028, U+3000 among them)."""
    import re
    import unicodedata

    from classifiers.text import dedup_key_text
    from tests.corpus import bench_docs

    spaces = "".join(ch for ch in map(chr, range(0x3001)) if ch.isspace())
    assert {"\x1c", "\x85", "\u2028", "\u3000"} <= set(spaces)
    rng = random.Random(3)
    texts = [d["text"] for d in bench_docs(20)]
    texts += ["".join(rng.choice(["a", "B", "ß", "ﬁ", "Ⅻ", *spaces]) for _ in range(60)) for _ in range(300)]
    ws = re.compile(r"\s+")
    for text in texts:
        assert dedup_key_text(text) == ws.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
