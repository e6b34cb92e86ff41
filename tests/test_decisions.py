"""The decisions the Beam stages only map (classifiers/decisions.py, classifiers/duplicates.py,
MixturePlan.uses, line_dedup.emptied), without Beam; and the named records' packing."""

from __future__ import annotations

import pickle
import random

import pytest

from classifiers.decisions import EMPTY, LINES_EMPTIED, Cluster, Drop, LinesRemoved, empty_document, settle
from classifiers.duplicates import by_node, by_url_policy, node_id, node_of, node_uid, resolve, timestamp_key
from classifiers.line_dedup import emptied
from classifiers.mixture import DOWNSAMPLED, NO_SHARE, add_deltas, plan_mixture, sampling_key
from pipeline.records import (
    ExactItem,
    Info,
    NodeRecord,
    Payload,
    UrlItem,
    event,
    pack,
    pack_records,
    read_event,
    unpack_records,
)

# ------------------------------------------------------------------ empty documents


def test_empty_document_is_shorter_than_min_chars():
    assert empty_document("", 1) == EMPTY == Drop("normalize", "normalize/empty", None)
    assert empty_document("ab", 3) == EMPTY
    assert empty_document("abc", 3) is None
    assert empty_document("x", 1) is None


# ------------------------------------------------------------------ which duplicate survives


def test_survivor_policy_orders_nodes():
    docs = [("b", 2, 4.5), ("a", 1, 1.0), ("c", 3, None)]
    assert node_id(min(node_of(i, u, q, "lowest_id") for i, u, q in docs)) == "a"
    assert node_id(min(node_of(i, u, q, "highest_quality") for i, u, q in docs)) == "b"
    # no score ranks below every score, even 0; equal scores fall back to the id
    assert node_id(min(node_of("a", 1, None, "highest_quality"), node_of("z", 2, 0.0, "highest_quality"))) == "z"
    assert node_id(min(node_of("b", 1, 3.0, "highest_quality"), node_of("a", 2, 3.0, "highest_quality"))) == "a"
    assert node_uid(node_of("a", 7, 1.0, "highest_quality")) == node_uid(node_of("a", 7, None, "lowest_id")) == 7


def test_timestamps_order_missing_then_numbers_then_text():
    keys = [timestamp_key(t) for t in ("2024-05-01T00:00:00Z", None, "1700000000", "", "2023-01-01", "12.5")]
    assert sorted(keys) == [(0,), (0,), (1, 12.5), (1, 1.7e9), (2, "2023-01-01"), (2, "2024-05-01T00:00:00Z")]


def _members(rows):
    """rows: (id, uid, timestamp, weight) -> (node, timestamp key, weight) members."""
    return [(node_of(i, u, None, "lowest_id"), timestamp_key(t), w) for i, u, t, w in rows]


def _node(m):
    return m[0]


def test_url_policy_latest_then_smallest_node_or_first_read():
    rows = [("c", 5, "2024-01-02", 1), ("b", 9, "2024-01-03", 1), ("a", 7, "2024-01-03", 2), ("d", 1, None, 1)]
    for seed in range(5):  # whatever order the shuffle delivered them in
        members = _members(rows)
        random.Random(seed).shuffle(members)
        latest = by_url_policy(members, "latest", _node, lambda m: m[1])
        assert [node_id(m[0]) for m in latest] == ["a", "b", "c", "d"]
        first = by_url_policy(members, "first", _node, lambda m: m[1])
        assert [node_uid(m[0]) for m in first] == [1, 5, 7, 9]


def test_resolve_drops_the_rest_for_the_survivor_and_sums_weights():
    members = _members([("b", 2, None, 3), ("a", 9, None, 1), ("c", 1, None, 2)])
    res = resolve(by_node(members, _node), "exact_dedup", _node, lambda m: m[2])
    assert node_id(res.survivor[0]) == "a"
    assert [node_id(m[0]) for m in res.duplicates] == ["b", "c"]
    assert res.drop == Drop("exact_dedup", "exact_dedup/duplicate", "a")
    assert res.cluster == Cluster(6, "a")
    near = resolve(by_node(members[:2], _node), "minhash_dedup", _node, lambda m: m[2])
    assert near.drop.rule == "minhash_dedup/near_duplicate" and near.cluster == Cluster(4, "a")
    single = resolve(members[:1], "url_dedup", _node, lambda m: m[2])
    assert single.duplicates == [] and single.cluster == Cluster(3, "b")


# ------------------------------------------------------------------ a document's fate


def test_settle_first_drop_stands_and_dedup_names_the_survivor():
    heur = Drop("heuristics", "heuristics/gopher_short", None)
    dup = Drop("exact_dedup", "exact_dedup/duplicate", "doc-a")
    assert settle("doc-b", None, []) == (None, 1, "doc-b", None, 0)
    assert settle("doc-b", None, [dup]) == (dup, 1, "doc-a", None, 0)
    assert settle("doc-b", heur, [dup]).drop == heur  # the first pass decided first
    assert settle("doc-a", None, [Cluster(3, "doc-a"), Cluster(5, "doc-a")]).size == 5


def test_settle_line_removal_empties_only_a_kept_document():
    assert settle("d", None, [LinesRemoved((0, 2), False)]) == (None, 1, "d", (0, 2), 0)
    assert settle("d", None, [LinesRemoved((0,), True)]).drop == LINES_EMPTIED
    dup = Drop("minhash_dedup", "minhash_dedup/near_duplicate", "e")
    assert settle("d", None, [dup, LinesRemoved((0,), True)]).drop == dup
    with pytest.raises(TypeError):
        settle("d", None, [("drop", "x", "x/y", None)])


def test_line_dedup_empties_below_min_chars_after():
    assert emptied(0, 1) and emptied(49, 50)
    assert not emptied(50, 50)


# ------------------------------------------------------------------ the mixture's keep/drop


def test_mixture_uses_and_drops_with_the_rule_why():
    docs = [("en", f"en-{i}", 100) for i in range(200)] + [("de", f"de-{i}", 100) for i in range(200)]
    stats: dict = {}
    add_deltas(stats, [(b, sampling_key(i, 0), 1, t, 4 * t) for b, i, t in docs])
    plan = plan_mixture(stats, {"de": 0.1}, ["en", "de"], 0.3, 1.0, None, 1 << 20)
    uses = {i: plan.uses(b, i, 0) for b, i, _ in docs}
    assert all(r == 1 and d is None for r, d in (uses[i] for b, i, _ in docs if b == "en"))
    de = [uses[i] for b, i, _ in docs if b == "de"]
    kept = sum(r for r, _ in de)
    # 10% of the mixture: 20,000 English tokens -> 2,222 German ones, i.e. 22 of 200 documents
    assert kept == 22 and all(d == DOWNSAMPLED for r, d in de if r == 0)
    assert all(plan.buckets["de"].repeats(sampling_key(i, 0)) == uses[i][0] for b, i, _ in docs if b == "de")
    assert plan.uses("fr", "fr-1", 0) == (0, NO_SHARE)  # a bucket the plan does not know


def test_mixture_gives_no_share_to_a_bucket_not_asked_for():
    stats: dict = {}
    add_deltas(stats, [("en", sampling_key("a", 0), 1, 10, 40), ("code", sampling_key("b", 0), 1, 10, 40)])
    plan = plan_mixture(stats, {}, ["en"], 0.3, 1.0, None, 1 << 20)
    assert plan.uses("code", "b", 0) == (0, NO_SHARE)
    assert plan.uses("en", "a", 0) == (1, None)


# ------------------------------------------------------------------ records on the wire


def test_records_cross_shuffles_as_plain_tuples():
    payload = Payload("en", 2**63 + 5, 120, 480, 3)
    items = [ExactItem(7, ("doc", 11), payload, b"\x00" * 16), UrlItem(1, (1, 5.0), ("doc", 11), payload, None, None)]
    blob = pack_records(items[:1])
    assert blob == pack([(7, ("doc", 11), ("en", 2**63 + 5, 120, 480, 3), b"\x00" * 16)])
    back = unpack_records(blob, ExactItem)
    assert back == items[:1] and back[0].payload.weight == 3 and type(back[0].payload) is Payload
    url = unpack_records(pack_records(items[1:]), UrlItem)[0]
    assert url.payload.bucket == "en" and url.timestamp == (1, 5.0)
    node = unpack_records(pack_records([NodeRecord(11, ("doc", 11), payload)]), NodeRecord)[0]
    assert node.payload.tokens == 120
    assert len(pack_records(items[:1])) < len(pickle.dumps(items[:1], protocol=pickle.HIGHEST_PROTOCOL))


def test_info_and_events_round_trip():
    doc = {
        "id": "x",
        "source": "web",
        "bucket": "en",
        "language": "en",
        "language_score": 0.9,
        "n_tokens": 5,
        "n_bytes": 20,
        "drop": Drop("langid", "langid/low_score"),
        "text": "not kept",
        "uid": 3,
    }
    info = Info.of(doc)
    assert info.quality_score is None and info.signals is None and not hasattr(info, "text")
    back = Info.read(pickle.loads(pack_records([info]))[0])
    assert back == info and back.drop.rule == "langid/low_score"
    for decision in (Drop("exact_dedup", "exact_dedup/duplicate", "a"), Cluster(4, "a"), LinesRemoved((1, 3), True)):
        wire = event(9, decision)
        assert type(wire) is tuple and read_event(wire) == (9, decision)
        assert type(read_event(wire)[1]) is type(decision)
    assert event(9, Drop("minhash_dedup", "minhash_dedup/near_duplicate", "a")) == (
        9,
        "drop",
        "minhash_dedup",
        "minhash_dedup/near_duplicate",
        "a",
    )
