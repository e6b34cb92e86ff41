"""The mixture plan's arithmetic: shares, size, rates, token-exact thresholds."""

import numpy as np
import pytest

from classifiers.mixture import (
    BINS,
    BucketStats,
    add_deltas,
    bin_of,
    merge_stats,
    plan_mixture,
    resolve_shares,
    sampling_key,
)


def stats_from(docs):
    """docs: list of (bucket, id, tokens)."""
    st = {}
    add_deltas(st, [(b, sampling_key(i, 0), 1, t, 4 * t) for b, i, t in docs])
    return st


def achieved(plan, docs):
    tot = {}
    for b, i, t in docs:
        r = plan.buckets[b].repeats(sampling_key(i, 0))
        tot[b] = tot.get(b, 0) + r * t
    return tot


def test_resolve_shares_alpha_and_rest():
    avail = {"en": 1000, "code": 500, "de": 400, "fr": 100}
    s = resolve_shares({"code": 0.2, "multilingual": 0.1}, avail, ["en", "de", "fr"], 1.0)
    assert s["code"] == 0.2 and s["de"] == pytest.approx(0.08) and s["fr"] == pytest.approx(0.02)
    assert s["en"] == pytest.approx(0.7)
    s3 = resolve_shares({"code": 0.2, "multilingual": 0.1}, avail, ["en", "de", "fr"], 0.3)
    assert s3["fr"] > 0.02 and s3["de"] + s3["fr"] == pytest.approx(0.1)  # low-resource boosted


def test_plan_hits_targets_token_exactly():
    rng = np.random.default_rng(0)
    docs = [("en", f"e{i}", int(rng.integers(50, 2000))) for i in range(4000)]
    docs += [("code", f"c{i}", int(rng.integers(50, 5000))) for i in range(2000)]
    docs += [("de", f"d{i}", int(rng.integers(50, 1000))) for i in range(1500)]
    docs += [("fr", f"f{i}", int(rng.integers(50, 1000))) for i in range(1200)]
    plan = plan_mixture(
        stats_from(docs),
        {"code": 0.17, "multilingual": 0.08},
        ["en", "de", "fr"],
        0.3,
        max_repeats=1.0,
        total_tokens=None,
        shard_bytes=1 << 20,
    )
    got = achieved(plan, docs)
    total = sum(got.values())
    assert got["code"] / total == pytest.approx(0.17, abs=0.005)
    assert (got["de"] + got["fr"]) / total == pytest.approx(0.08, abs=0.005)
    # no bucket used more than once, and the binding bucket is used whole
    assert all(p.rate <= 1.0 + 1e-9 for p in plan.buckets.values())
    assert plan.buckets[plan.limited_by].rate == pytest.approx(1.0)
    assert not plan.unmet


def test_upsampling_within_max_repeats_and_total_cap():
    docs = [("en", f"e{i}", 100) for i in range(3000)] + [("code", f"c{i}", 100) for i in range(1000)]
    plan = plan_mixture(
        stats_from(docs), {"code": 0.5}, ["en"], 1.0, max_repeats=2.0, total_tokens=None, shard_bytes=1 << 20
    )
    got = achieved(plan, docs)
    assert plan.buckets["code"].rate == pytest.approx(2.0)
    assert got["code"] / sum(got.values()) == pytest.approx(0.5, abs=0.005)
    capped = plan_mixture(stats_from(docs), {"code": 0.5}, ["en"], 1.0, 2.0, total_tokens=100_000, shard_bytes=1 << 20)
    assert capped.limited_by == "total_tokens"
    assert sum(achieved(capped, docs).values()) == pytest.approx(100_000, rel=0.01)


def test_empty_bucket_is_reported_unmet():
    docs = [("en", f"e{i}", 100) for i in range(100)]
    plan = plan_mixture(stats_from(docs), {"code": 0.2}, ["en"], 1.0, 1.0, None, 1 << 20)
    assert [u["bucket"] for u in plan.unmet] == ["code"]
    assert "no documents" in plan.unmet[0]["why"]
    assert plan.buckets["en"].rate == pytest.approx(1.0)


def test_bins_cover_unit_interval():
    assert bin_of(0.0) == 0 and bin_of(0.999999999) == BINS - 1
    assert isinstance(BucketStats().docs, np.ndarray)


def _group_shares(plan, docs, langs):
    got = achieved(plan, docs)
    total = sum(got.values())
    return got["code"] / total, sum(got.get(lang, 0) for lang in langs) / total, got, total


def test_group_shares_hold_when_most_languages_have_under_one_document_of_target():
    """English limits the mixture to a few hundred documents; 40 languages with a few documents
    each (most far below one document of target): the multilingual and code groups still land
    within a fraction of a document of their shares."""
    rng = np.random.default_rng(1)
    langs = [f"l{i:02d}" for i in range(40)]
    docs = [("en", f"e{i}", int(rng.integers(200, 3000))) for i in range(300)]
    docs += [("code", f"c{i}", int(rng.integers(100, 8000))) for i in range(400)]
    for lang in langs:
        docs += [(lang, f"{lang}-{i}", int(rng.integers(100, 1500))) for i in range(int(rng.integers(1, 6)))]
    plan = plan_mixture(
        stats_from(docs),
        {"code": 0.17, "multilingual": 0.08},
        ["en", *langs],
        0.3,
        max_repeats=2.0,
        total_tokens=None,
        shard_bytes=1 << 20,
    )
    code, multi, got, total = _group_shares(plan, docs, langs)
    assert plan.limited_by == "en"  # no single language bounds it: the group does
    one_doc = 1500 / total
    assert one_doc > 0.001  # a document is a sizeable part of the mixture
    assert abs(code - 0.17) < 0.25 * one_doc + 1e-4
    assert abs(multi - 0.08) < 0.5 * one_doc, (multi, one_doc)
    assert plan.groups["multilingual"]["target"] == 0.08 and len(plan.groups["multilingual"]["buckets"]) == 40
    # every language as near its own share as documents allow: off by less than its largest document
    for lang in langs:
        biggest = max(t for b, _, t in docs if b == lang)
        assert abs(got.get(lang, 0) - plan.buckets[lang].target_share * total) <= biggest * 1.01, lang
    # deterministic: the same statistics give the same documents
    again = plan_mixture(
        stats_from(list(reversed(docs))), {"code": 0.17, "multilingual": 0.08}, ["en", *langs], 0.3, 2.0, None, 1 << 20
    )
    assert all(again.buckets[b].chosen == p.chosen for b, p in plan.buckets.items())


def test_a_document_that_overshoots_is_skipped_when_a_later_one_fits():
    docs = [("en", f"e{i}", 1000) for i in range(50)]
    # code: the first document in key order is huge, the later ones small
    code_ids = sorted((f"c{i}" for i in range(200)), key=lambda i: sampling_key(i, 0))
    docs += [("code", code_ids[0], 40_000)] + [("code", i, 500) for i in code_ids[1:]]
    plan = plan_mixture(stats_from(docs), {"code": 0.2}, ["en"], 1.0, 1.0, None, 1 << 20)
    got = achieved(plan, docs)
    assert sampling_key(code_ids[0], 0) not in plan.buckets["code"].chosen
    assert got["code"] / sum(got.values()) == pytest.approx(0.2, abs=0.002)


def test_samples_stay_exact_under_removals_merges_and_pruning():
    """Statistics summed in any order, across accumulators, with dedup removals and line-dedup
    token edits, keep every document below the cutoff exactly."""
    rng = np.random.default_rng(2)
    n = 5000
    ids = [f"d{i}" for i in range(n)]
    toks = rng.integers(10, 1000, n)
    deltas = [("x", sampling_key(i, 0), 1, int(t), int(t) * 4) for i, t in zip(ids, toks)]
    removed = set(rng.choice(n, 1500, replace=False).tolist())
    deltas += [("x", sampling_key(ids[j], 0), -1, -int(toks[j]), -int(toks[j]) * 4) for j in removed]
    edited = [j for j in range(n) if j not in removed][:300]
    deltas += [("x", sampling_key(ids[j], 0), 0, -5, -20) for j in edited]
    order = rng.permutation(len(deltas))
    accs = [{} for _ in range(7)]
    for a, chunk in enumerate(np.array_split(order, 7)):
        add_deltas(accs[a], [deltas[k] for k in chunk])
    merged = {}
    for a in accs:
        merge_stats(merged, a)
    s = merged["x"]
    truth = {sampling_key(ids[j], 0): int(toks[j]) - (5 if j in edited else 0) for j in range(n) if j not in removed}
    below = {k: t for k, t in truth.items() if k < s.cutoff}
    assert len(below) >= 1024
    assert {k: e[1] for k, e in s.sample.items() if e[0] > 0} == below
    assert int(s.tokens.sum()) == sum(truth.values()) and int(s.docs.sum()) == len(truth)
