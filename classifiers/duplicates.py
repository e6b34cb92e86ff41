"""Which document of a group of duplicates survives, and what the others become.

Every dedup level (URL, exact, MinHash; pipeline/stages/dedup.py groups the documents) ends
in `resolve`: the group in order of preference, the first survives, each other is dropped as
`<stage>/<rule>` with the survivor's id as the detail, and the survivor stands for the sum of
the group's weights (a weight: the input documents a member already stands for, i.e. the
size of the group it survived at an earlier level).

The preference is a *node*, a tuple ordered by the survivor policy and ending with the
document's uid (so ties are impossible and the choice does not depend on arrival order):
(id, uid) for `lowest_id`, (-quality, id, uid) for `highest_quality` (a missing quality
counts as -1, below every score). URL dedup first prefers the latest timestamp
(`timestamp_key`) or the first document read (smallest uid), by `UrlDedupParams.keep`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, NamedTuple, TypeVar

from classifiers.decisions import Cluster, Drop

T = TypeVar("T")
Node = tuple  # (id, uid) or (-quality, id, uid): see the module docstring

# the rule a duplicate is dropped with, per dedup stage
DUPLICATE_RULES = {
    "url_dedup": "url_dedup/duplicate",
    "exact_dedup": "exact_dedup/duplicate",
    "minhash_dedup": "minhash_dedup/near_duplicate",
}
MISSING_QUALITY = -1.0  # ranks a document without a quality score below every scored one


def node_of(doc_id: str, uid: int, quality: float | None, survivor: str) -> Node:
    """A document's node under the survivor policy (`lowest_id` or `highest_quality`)."""
    if survivor == "highest_quality":
        return (-(quality if quality is not None else MISSING_QUALITY), doc_id, uid)
    return (doc_id, uid)


def node_uid(node: Node) -> int:
    return node[-1]


def node_id(node: Node) -> str:
    return node[-2]


def timestamp_key(ts: str | None) -> tuple:
    """Orders timestamps: missing < numbers (epoch) < strings (ISO 8601 sorts as text)."""
    if ts is None or ts == "":
        return (0,)
    try:
        return (1, float(ts))
    except ValueError:
        return (2, ts)


def by_node(members: Sequence[T], node: Callable[[T], Node]) -> list[T]:
    """Exact and MinHash dedup: the smallest node first."""
    return sorted(members, key=node)


def by_url_policy(
    members: Sequence[T], keep: str, node: Callable[[T], Node], timestamp: Callable[[T], tuple]
) -> list[T]:
    """URL dedup: `first`, the first document read (smallest uid) first; `latest`, the latest
    timestamp first, the smallest node among equal timestamps."""
    if keep == "first":
        return sorted(members, key=lambda m: node_uid(node(m)))
    # stable sorts (reverse=True keeps equal elements in order): node order within a timestamp
    return sorted(sorted(members, key=node), key=timestamp, reverse=True)


class Resolution(NamedTuple, Generic[T]):
    survivor: T
    duplicates: list[T]  # dropped in the survivor's favour
    drop: Drop  # what each duplicate gets
    cluster: Cluster  # what the survivor gets: the group's total weight


def resolve(preferred: Sequence[T], stage: str, node: Callable[[T], Node], weight: Callable[[T], int]) -> Resolution[T]:
    """A group of duplicates, in order of preference (`by_node`, `by_url_policy`) -> the
    survivor, the duplicates, the drop they get and the survivor's cluster."""
    survivor = preferred[0]
    sid = node_id(node(survivor))
    return Resolution(
        survivor,
        list(preferred[1:]),
        Drop(stage, DUPLICATE_RULES[stage], sid),
        Cluster(sum(weight(m) for m in preferred), sid),
    )
