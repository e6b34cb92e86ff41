"""The Beam side of dedup: connected components by large-star/small-star rounds agree with a
union-find on real-shaped graphs (chains, stars, trees of stars, many small clusters)."""
from __future__ import annotations

import random

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from classifiers.minhash import bucket_edges, connected_components
from pipeline.runner import in_process_runner, local_options
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
