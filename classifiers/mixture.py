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

Sampling is deterministic: every document gets a 64-bit key H(id, seed) (u = key / 2**64 in
[0, 1)); it is used floor(r_b) times plus once more when it is chosen. Which documents are
chosen, at document granularity:
- every bucket keeps the SAMPLE_DOCS documents with the smallest keys individually (key, tokens;
  exact under dedup removals, see `add_deltas`); a bucket whose extra uses fit in that sample
  (every small bucket, whole) chooses them by name: in key order, a document is taken when it
  fits the bucket's remaining tokens and skipped when it would overshoot and a later one fits;
- then per group (`multilingual`: the languages it was split over; `code`; the rest: en, und)
  the group's own target is filled: the documents that still fit go to the member with the
  largest remainder (its target minus what it got), then one more document when that lands
  nearer the group's target than stopping short. So the group's total misses by a fraction of
  its smallest leftover document, and each language is as near its share as documents allow;
- a bucket too large for its sample uses a threshold t_b read off its token-weighted histogram
  of u (BINS bins, linear inside the boundary bin): used once more when u < t_b, within one
  document's tokens of its target (one document of thousands).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from classifiers.decisions import Drop
from classifiers.text import stable_hash64

BINS = 4096
BIN_SHIFT = 64 - 12  # bin of a 64-bit key: its top 12 bits (BINS = 2**12)
KEY_SPACE = 1 << 64
# Documents per bucket kept individually (the smallest keys): the plan chooses documents by
# name within them. Up to 2x this many are held before pruning.
SAMPLE_DOCS = 1024
CODE = "code"
REST_BUCKETS = ("en", "und")  # share them "the rest", split by available tokens
MULTILINGUAL = "multilingual"
# Assumed zstd compression ratio of text in Parquet, to turn a compressed shard-size target
# into uncompressed bytes per shard (zstd level 3 gives about 3-4x on web text and code).
COMPRESSION_RATIO_ESTIMATE = 3.0
NO_SHARE = Drop("mixture", "mixture/no_share")
DOWNSAMPLED = Drop("mixture", "mixture/downsampled")


@dataclass
class BucketStats:
    """Per-bucket histograms over u bins: documents, tokens, bytes (after every filter), and the
    documents with the smallest keys one by one: `sample` key -> [docs, tokens, bytes], exact for
    every key below `cutoff` (KEY_SPACE: the bucket is complete)."""

    docs: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))
    tokens: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))
    bytes: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))
    sample: dict = field(default_factory=dict)
    cutoff: int = KEY_SPACE

    def prune(self) -> None:
        """Keep the SAMPLE_DOCS smallest keys; `cutoff` drops to the first key let go. Every
        increment of a key below the cutoff stays, wherever it was counted, so merged samples are
        exact below the smallest cutoff (removals and additions of a document always meet)."""
        if len(self.sample) > 2 * SAMPLE_DOCS:
            keys = sorted(self.sample)
            self.cutoff = min(self.cutoff, keys[SAMPLE_DOCS])
            for k in keys[SAMPLE_DOCS:]:
                del self.sample[k]


def sampling_key(doc_id: str, seed: int) -> int:
    """A document's 64-bit sampling key (u = key / 2**64 is `text.unit_interval`)."""
    return stable_hash64(f"{seed}\x1f{doc_id}")


def bin_of(u: float) -> int:
    return min(int(u * BINS), BINS - 1)


def bin_of_key(key: int) -> int:
    return key >> BIN_SHIFT


def _add_entry(s: BucketStats, key: int, d: int, t: int, n: int) -> None:
    e = s.sample.get(key)
    if e is None:
        s.sample[key] = [d, t, n]
        return
    e[0] += d
    e[1] += t
    e[2] += n
    if not (e[0] or e[1] or e[2]):
        del s.sample[key]


def add_deltas(stats: dict[str, BucketStats], deltas) -> None:
    """deltas: iterable of (bucket, key, docs, tokens, bytes) increments (negative to remove),
    key being the document's sampling key."""
    touched = set()
    for bucket, key, d, t, n in deltas:
        s = stats.get(bucket)
        if s is None:
            s = stats[bucket] = BucketStats()
        b = key >> BIN_SHIFT
        s.docs[b] += d
        s.tokens[b] += t
        s.bytes[b] += n
        if key < s.cutoff:
            _add_entry(s, key, d, t, n)
            touched.add(bucket)
    for bucket in touched:
        stats[bucket].prune()


def merge_stats(into: dict[str, BucketStats], other: dict[str, BucketStats]) -> dict[str, BucketStats]:
    for b, s in other.items():
        o = into.get(b)
        if o is None:
            o = into[b] = BucketStats(s.docs.copy(), s.tokens.copy(), s.bytes.copy(), {}, s.cutoff)
            o.sample = {k: list(v) for k, v in s.sample.items()}
            continue
        o.docs += s.docs
        o.tokens += s.tokens
        o.bytes += s.bytes
        o.cutoff = min(o.cutoff, s.cutoff)
        for k in [k for k in o.sample if k >= o.cutoff]:
            del o.sample[k]
        for k, (d, t, n) in s.sample.items():
            if k < o.cutoff:
                _add_entry(o, k, d, t, n)
        o.prune()
    return into


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
    group: str | None = None  # "multilingual" or "code": the group share this bucket is part of
    # keys of the documents used once more than whole_repeats, when chosen by name (else the
    # threshold decides)
    chosen: frozenset | None = None

    def repeats(self, key: int) -> int:
        """Uses of the document with this sampling key."""
        if self.chosen is not None:
            return self.whole_repeats + (1 if key in self.chosen else 0)
        return self.whole_repeats + (1 if key / KEY_SPACE < self.threshold else 0)


@dataclass
class MixturePlan:
    buckets: dict[str, BucketPlan]
    total_tokens: float
    limited_by: str  # which bucket (or "total_tokens") bounds the mixture's size
    unmet: list[dict]  # buckets whose share could not be met: bucket, asked, achieved, why
    groups: dict[str, dict] = field(default_factory=dict)  # group -> {"target", "buckets"}

    def uses(self, bucket: str, doc_id: str, seed: int) -> tuple[int, Drop | None]:
        """How many times the mixture uses a document that survived every filter: (repeats,
        None), or (0, the drop): `mixture/no_share` for a bucket the plan gives no share (or does
        not know), `mixture/downsampled` for one the sampling left out."""
        plan = self.buckets.get(bucket)
        repeats = plan.repeats(sampling_key(doc_id, seed)) if plan is not None else 0
        if repeats:
            return repeats, None
        return 0, NO_SHARE if plan is None or not plan.target_share else DOWNSAMPLED


def resolve_shares(
    targets: dict[str, float], available: dict[str, int], languages: list[str], alpha: float
) -> dict[str, float]:
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


def group_of(bucket: str, targets: dict[str, float]) -> str:
    """The group whose share a bucket's share is part of: `code`, `multilingual` (a language
    without an explicit share), the rest (`en`, `und`), or the bucket itself (explicit share)."""
    if bucket == CODE:
        return CODE
    if bucket in REST_BUCKETS:
        return "rest"
    if bucket in targets or bucket == MULTILINGUAL:
        return bucket
    return MULTILINGUAL


@dataclass
class _Choice:
    """Documents chosen by name in one bucket: its sample in key order, what it got, its goal."""

    goal: float  # tokens wanted from the extra use (the remainder over whole repeats)
    docs: list  # (key, tokens, bytes, docs) in key order
    taken: list = field(default_factory=list)
    got: float = 0.0
    pos: int = 0  # group fill: documents before this one are taken or never fit again

    def first_fit(self) -> None:
        """In key order, take each document that still fits the goal; skip one that would
        overshoot (a later, smaller one may fit)."""
        for i, (_, t, _, _) in enumerate(self.docs):
            if self.got + t <= self.goal:
                self.taken.append(i)
                self.got += t
        self.taken_set = set(self.taken)

    def next_fitting(self, room: float):
        while self.pos < len(self.docs) and (self.pos in self.taken_set or self.docs[self.pos][1] > room):
            self.pos += 1
        return self.pos if self.pos < len(self.docs) else None

    def take(self, i: int) -> float:
        self.taken.append(i)
        self.taken_set.add(i)
        t = self.docs[i][1]
        self.got += t
        return t


def _exact_docs(st: BucketStats, need: float) -> list | None:
    """The bucket's documents in key order when the extra use can be chosen by name among them."""
    docs = sorted((k, e[1], e[2], e[0]) for k, e in st.sample.items() if e[0] > 0)
    if st.cutoff >= KEY_SPACE:
        return docs
    return docs if need <= 0.9 * sum(d[1] for d in docs) else None


def _fill_group(members: dict[str, _Choice], goals: dict[str, float], room: float) -> None:
    """Fill `room` tokens of a group with documents of its members chosen by name: each
    document that fits goes to the member furthest below its goal; then one more document
    when it overshoots by less than the room left."""
    while room > 0:
        best, best_gap = None, None
        for b, c in members.items():
            i = c.next_fitting(room)
            if i is None:
                continue
            gap = goals[b] - c.got
            if best_gap is None or gap > best_gap:
                best, best_gap = (b, i), gap
        if best is None:
            break
        room -= members[best[0]].take(best[1])
    if room <= 0:
        return
    over = None  # (tokens, -gap, bucket, index): the smallest document left, furthest-behind member first
    for b, c in members.items():
        for i, d in enumerate(c.docs):
            if i not in c.taken_set:
                cand = (d[1], -(goals[b] - c.got), b, i)
                if over is None or cand < over:
                    over = cand
    if over is not None and over[0] - room < room:
        members[over[2]].take(over[3])


def _water_fill(shares: dict[str, float], caps: dict[str, float]) -> dict[str, float]:
    """Shares with the same total, none above its cap: capped members give their excess to the
    others in proportion to their shares."""
    out: dict[str, float] = {}
    free = dict(shares)
    total = sum(shares.values())
    while free:
        left = total - sum(out.values())
        wsum = sum(free.values())
        over = [b for b, w in free.items() if left * w / wsum > caps[b] * (1 + 1e-12)]
        if not over:
            out.update({b: left * w / wsum for b, w in free.items()})
            break
        for b in over:
            out[b] = caps[b]
            del free[b]
    return out


def plan_mixture(
    stats: dict[str, BucketStats],
    targets: dict[str, float],
    languages: list[str],
    alpha: float,
    max_repeats: float,
    total_tokens: int | None,
    shard_bytes: int,
) -> MixturePlan:
    available = {b: int(s.tokens.sum()) for b, s in stats.items()}
    shares = resolve_shares(targets, available, languages, alpha)
    unmet: list[dict] = []
    live = {}
    for b, s in shares.items():
        if s <= 0:
            continue
        if available.get(b, 0) <= 0:
            unmet.append(
                {"bucket": b, "asked": s, "achieved": 0.0, "why": "no documents left in this bucket after filtering"}
            )
        else:
            live[b] = s
    norm = sum(live.values())
    live = {b: s / norm for b, s in live.items()} if norm > 0 else {}
    # the size: the largest mixture whose groups' shares hold with no bucket used more than
    # max_repeats times; inside a group a scarce member is capped there and its share goes to the
    # others (by their own shares), so one small language does not shrink the whole mixture
    grouped: dict[str, list[str]] = {}
    for b in live:
        grouped.setdefault(group_of(b, targets), []).append(b)
    size, limited_by = math.inf, ""
    for g, bs in grouped.items():
        cap = max_repeats * sum(available[b] for b in bs) / sum(live[b] for b in bs)
        if cap < size:
            size, limited_by = cap, (g if len(bs) > 1 else bs[0])
    if total_tokens is not None and total_tokens < size:
        size, limited_by = float(total_tokens), "total_tokens"
    if not live:
        size = 0.0
    for bs in grouped.values():
        if len(bs) > 1 and size > 0:
            live.update(_water_fill({b: live[b] for b in bs}, {b: max_repeats * available[b] / size for b in bs}))
    rates, choices, thresholds, goals = {}, {}, {}, {}
    for b, st in stats.items():
        share = live.get(b, 0.0)
        avail = available.get(b, 0)
        rate = share * size / avail if avail > 0 and share > 0 else 0.0
        rate = min(rate, max_repeats)
        k = int(math.floor(rate + 1e-12))
        need = max(0.0, (rate - k) * avail)
        rates[b] = (rate, k)
        goals[b] = need
        docs = _exact_docs(st, need) if share > 0 else None
        if docs is not None:
            choices[b] = c = _Choice(need, docs)
            c.first_fit()
        else:
            thresholds[b] = _threshold(st.tokens, st.docs, need)
    # each group's own target, filled with the documents of its members chosen by name
    members: dict[str, list[str]] = {}
    for b in stats:
        if live.get(b, 0.0) > 0:
            members.setdefault(group_of(b, targets), []).append(b)
    for bs in members.values():
        want = sum(goals[b] for b in bs)
        got = sum(choices[b].got if b in choices else _below(stats[b].tokens, thresholds[b]) for b in bs)
        named = {b: choices[b] for b in bs if b in choices}
        if named and want - got > 0:
            _fill_group(named, goals, want - got)
    buckets: dict[str, BucketPlan] = {}
    for b, st in stats.items():
        share = live.get(b, 0.0)
        avail = available.get(b, 0)
        rate, k = rates[b]
        chosen = None
        if b in choices:
            c = choices[b]
            picked = [c.docs[i] for i in sorted(c.taken)]
            chosen = frozenset(d[0] for d in picked)
            t = max((d[0] for d in picked), default=0) / KEY_SPACE  # informative only
            extra_tokens = float(sum(d[1] for d in picked))
            extra_docs, extra_bytes = float(sum(d[3] for d in picked)), float(sum(d[2] for d in picked))
        else:
            t = thresholds[b]
            extra_tokens = _below(st.tokens, t)
            extra_docs, extra_bytes = _below(st.docs, t), _below(st.bytes, t)
        if k >= 1:
            docs, nbytes = float(st.docs.sum()), float(st.bytes.sum())
        else:
            docs, nbytes = extra_docs, extra_bytes
        planned_tokens = k * avail + extra_tokens
        shards = max(1, math.ceil(nbytes / (shard_bytes * COMPRESSION_RATIO_ESTIMATE)))
        note = ""
        if share == 0 and avail > 0:
            note = "no share asked for this bucket"
        g = group_of(b, targets)
        target = share * norm if share > 0 else shares.get(b)
        buckets[b] = BucketPlan(
            b,
            avail,
            int(st.docs.sum()),
            target,
            rate,
            k,
            t,
            planned_tokens,
            docs,
            nbytes,
            shards,
            note,
            g if g in (CODE, MULTILINGUAL) and g in targets else None,
            chosen,
        )
    for u in unmet:
        u["achieved"] = 0.0
    groups = {
        g: {"target": targets[g], "buckets": sorted(b for b, p in buckets.items() if p.group == g)}
        for g in (CODE, MULTILINGUAL)
        if targets.get(g)
    }
    return MixturePlan(buckets, float(sum(p.planned_tokens for p in buckets.values())), limited_by, unmet, groups)
