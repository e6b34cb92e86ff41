"""The mixture plan: from tokens available per bucket to per-bucket sampling rates that hit
the configured token shares. Pure arithmetic, no Beam.

Buckets: `code`, one per configured language, `en` (and `und`, text whose language was not
identified) taking the rest. A `multilingual` share is split over the languages without an
explicit share by available tokens ** alpha (temperature sampling as in XLM-R, Conneau et al.
2020, and mT5, Xue et al. 2021: alpha = 1 is proportional, alpha = 0.3 boosts low-resource
languages).

Size: the largest mixture M that honours every share with no bucket used more than
`max_repeats` times: M = min_b(max_repeats * T_b / s_b), capped by `total_tokens`. A bucket
asked for but empty cannot be met; its share goes to the others (renormalised), and the plan
says so. Rates r_b = s_b * M / T_b.

Sampling is deterministic and token-exact: every document gets u = H(id, seed) in [0, 1); it is
used floor(r_b) times plus once more when u < t_b, where t_b is read off a token-weighted
histogram of u (BINS bins, linear inside the boundary bin) so that the extra uses add
frac(r_b) * T_b tokens. The error is at most one document's tokens near t_b.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

BINS = 4096
CODE = "code"
REST_BUCKETS = ("en", "und")  # share them "the rest", split by available tokens
MULTILINGUAL = "multilingual"
# Assumed zstd compression ratio of text in Parquet, to turn a compressed shard-size target
# into uncompressed bytes per shard (zstd level 3 gives about 3-4x on web text and code).
COMPRESSION_RATIO_ESTIMATE = 3.0


@dataclass
class BucketStats:
    """Per-bucket histograms over u bins: documents, tokens, bytes (after every filter)."""
    docs: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))
    tokens: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))
    bytes: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))


def bin_of(u: float) -> int:
    return min(int(u * BINS), BINS - 1)


def add_deltas(stats: dict[str, BucketStats], deltas) -> None:
    """deltas: iterable of (bucket, bin, docs, tokens, bytes) increments (negative to remove)."""
    for bucket, b, d, t, n in deltas:
        s = stats.get(bucket)
        if s is None:
            s = stats[bucket] = BucketStats()
        s.docs[b] += d
        s.tokens[b] += t
        s.bytes[b] += n


@dataclass
class BucketPlan:
    bucket: str
    available_tokens: int
    available_docs: int
    target_share: float | None  # None: not asked for (share 0)
    rate: float
    whole_repeats: int  # every document used this many times ...
    threshold: float  # ... plus once more when u < threshold
    planned_tokens: float
    planned_docs: float
    planned_bytes: float
    shards: int
    note: str = ""

    def repeats(self, u: float) -> int:
        return self.whole_repeats + (1 if u < self.threshold else 0)


@dataclass
class MixturePlan:
    buckets: dict[str, BucketPlan]
    total_tokens: float
    limited_by: str  # which bucket (or "total_tokens") bounds the mixture's size
    unmet: list[dict]  # buckets whose share could not be met: bucket, asked, achieved, why

    def to_json(self) -> dict:
        return {
            "total_tokens": self.total_tokens, "limited_by": self.limited_by, "unmet": self.unmet,
            "buckets": {b: {k: v for k, v in vars(p).items()} for b, p in sorted(self.buckets.items())},
        }


def resolve_shares(targets: dict[str, float], available: dict[str, int], languages: list[str],
                   alpha: float) -> dict[str, float]:
    """Token share per bucket present in `available` (plus asked-for empty buckets)."""
    shares: dict[str, float] = {}
    explicit = {k: v for k, v in targets.items() if k != MULTILINGUAL}
    shares.update(explicit)
    multi = targets.get(MULTILINGUAL, 0.0)
    pool = [lang for lang in languages if lang not in REST_BUCKETS and lang not in explicit and lang != CODE]
    weights = {lang: available.get(lang, 0) ** alpha for lang in pool if available.get(lang, 0) > 0}
    wsum = sum(weights.values())
    if multi > 0:
        if wsum > 0:
            for lang, w in weights.items():
                shares[lang] = multi * w / wsum
        else:
            shares[MULTILINGUAL] = multi  # asked for, nothing available: reported unmet
    rest = max(0.0, 1.0 - sum(shares.values()))
    rest_avail = {b: available.get(b, 0) for b in REST_BUCKETS if available.get(b, 0) > 0}
    rsum = sum(rest_avail.values())
    if rsum > 0:
        for b, t in rest_avail.items():
            shares[b] = rest * t / rsum
    elif rest > 1e-12:
        shares["en"] = rest
    return shares


def _threshold(tokens: np.ndarray, docs: np.ndarray, need: float) -> float:
    """t such that the tokens of documents with u < t come closest to `need`: linear inside the
    boundary bin when it holds several documents; a bin of one document is taken or left
    whole, whichever is nearer, so the error is at most half of one document's tokens."""
    if need <= 0:
        return 0.0
    cum = np.cumsum(tokens)
    if need >= cum[-1]:
        return 1.0
    j = int(np.searchsorted(cum, need, side="left"))
    before = cum[j - 1] if j else 0
    frac = (need - before) / tokens[j] if tokens[j] else 0.0
    if docs[j] <= 1:
        frac = 1.0 if frac >= 0.5 else 0.0
    return (j + frac) / BINS


def _below(hist: np.ndarray, t: float) -> float:
    """Estimated sum of hist over u < t (linear inside the boundary bin)."""
    if t >= 1.0:
        return float(hist.sum())
    j = int(t * BINS)
    return float(hist[:j].sum() + hist[j] * (t * BINS - j))


def plan_mixture(stats: dict[str, BucketStats], targets: dict[str, float], languages: list[str],
                 alpha: float, max_repeats: float, total_tokens: int | None,
                 shard_bytes: int) -> MixturePlan:
    available = {b: int(s.tokens.sum()) for b, s in stats.items()}
    shares = resolve_shares(targets, available, languages, alpha)
    unmet: list[dict] = []
    live = {}
    for b, s in shares.items():
        if s <= 0:
            continue
        if available.get(b, 0) <= 0:
            unmet.append({"bucket": b, "asked": s, "achieved": 0.0,
                          "why": "no documents left in this bucket after filtering"})
        else:
            live[b] = s
    norm = sum(live.values())
    live = {b: s / norm for b, s in live.items()} if norm > 0 else {}
    size, limited_by = math.inf, ""
    for b, s in live.items():
        cap = max_repeats * available[b] / s
        if cap < size:
            size, limited_by = cap, b
    if total_tokens is not None and total_tokens < size:
        size, limited_by = float(total_tokens), "total_tokens"
    if not live:
        size = 0.0
    buckets: dict[str, BucketPlan] = {}
    for b, st in stats.items():
        share = live.get(b, 0.0)
        avail = available.get(b, 0)
        rate = share * size / avail if avail > 0 and share > 0 else 0.0
        rate = min(rate, max_repeats)
        k = int(math.floor(rate + 1e-12))
        t = _threshold(st.tokens, st.docs, (rate - k) * avail)
        if k >= 1:
            docs, nbytes = float(st.docs.sum()), float(st.bytes.sum())
        else:
            docs, nbytes = _below(st.docs, t), _below(st.bytes, t)
        planned_tokens = k * avail + _below(st.tokens, t)
        shards = max(1, math.ceil(nbytes / (shard_bytes * COMPRESSION_RATIO_ESTIMATE)))
        note = ""
        if share == 0 and avail > 0:
            note = "no share asked for this bucket"
        buckets[b] = BucketPlan(b, avail, int(st.docs.sum()), shares.get(b), rate, k, t,
                                planned_tokens, docs, nbytes, shards, note)
    for u in unmet:
        u["achieved"] = 0.0
    return MixturePlan(buckets, float(sum(p.planned_tokens for p in buckets.values())), limited_by, unmet)
