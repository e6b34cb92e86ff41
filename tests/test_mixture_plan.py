"""The mixture plan's arithmetic: shares, size, rates, token-exact thresholds."""
import numpy as np
import pytest

from classifiers.mixture import BINS, BucketStats, add_deltas, bin_of, plan_mixture, resolve_shares
from classifiers.text import unit_interval


def stats_from(docs):
    """docs: list of (bucket, id, tokens)."""
    st = {}
    add_deltas(st, [(b, bin_of(unit_interval(i, 0)), 1, t, 4 * t) for b, i, t in docs])
    return st


def achieved(plan, docs):
    tot = {}
    for b, i, t in docs:
        r = plan.buckets[b].repeats(unit_interval(i, 0))
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
    plan = plan_mixture(stats_from(docs), {"code": 0.17, "multilingual": 0.08}, ["en", "de", "fr"], 0.3,
                        max_repeats=1.0, total_tokens=None, shard_bytes=1 << 20)
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
    plan = plan_mixture(stats_from(docs), {"code": 0.5}, ["en"], 1.0, max_repeats=2.0, total_tokens=None,
                        shard_bytes=1 << 20)
    got = achieved(plan, docs)
    assert plan.buckets["code"].rate == pytest.approx(2.0)
    assert got["code"] / sum(got.values()) == pytest.approx(0.5, abs=0.005)
    capped = plan_mixture(stats_from(docs), {"code": 0.5}, ["en"], 1.0, 2.0, total_tokens=100_000,
                          shard_bytes=1 << 20)
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
