"""What a stage decides about one document, as values every stage and the last pass share.

- `Drop`: the document leaves the mixture (it goes to rejected/ with the stage and rule), the
  first-pass filters' drops and dedup's alike; a dedup drop's detail is the id of the document
  that survived in its place.
- `Cluster`: the survivor of a group of duplicates stands for `size` input documents
  (`dup_cluster_size`).
- `LinesRemoved`: line dedup removes these lines of the document (`emptied`: nothing worth
  keeping is left, so the document is dropped as `line_dedup/emptied`).

The decisions themselves are pure functions next to their tests: `classifiers.duplicates`
(which duplicate survives), `classifiers.mixture.MixturePlan.uses` (the mixture's keep/drop),
`empty_document` below, the filters in `classifiers.heuristics`, `classifiers.langid`.
"""

from __future__ import annotations

from typing import NamedTuple


class Drop(NamedTuple):
    stage: str  # the stage that decided, e.g. "exact_dedup"
    rule: str  # its `stage/rule` name, e.g. "exact_dedup/duplicate" (also the Beam counter's name)
    detail: str | None = None  # e.g. the surviving duplicate's id, a low quality score


class Cluster(NamedTuple):
    size: int  # input documents the survivor stands for (the sum of its group's weights)
    survivor: str  # its id


class LinesRemoved(NamedTuple):
    indices: tuple  # line indices to remove, as `classifiers.line_dedup.flatten_indices` lists them
    emptied: bool  # too little text is left: the document is dropped (LINES_EMPTIED)


EMPTY = Drop("normalize", "normalize/empty")
LINES_EMPTIED = Drop("line_dedup", "line_dedup/emptied")


def empty_document(text: str, min_chars: int) -> Drop | None:
    """`normalize/empty`: a document whose (normalised) text is shorter than `min_chars`
    characters carries nothing to train on."""
    return EMPTY if len(text) < min_chars else None


class Fate(NamedTuple):
    """Where a document ends, all decisions about it merged (the last pass writes it so)."""

    drop: Drop | None  # None: kept
    size: int  # dup_cluster_size: input documents it stands for
    cluster: str  # dup_cluster: the survivor it was deduplicated against (itself when none)
    lines: tuple | None  # line indices line dedup removes (LinesRemoved.indices), if any
    repeats: int = 0  # uses in the mixture (classifiers.mixture.MixturePlan.uses)


def settle(doc_id: str, first_drop: Drop | None, decisions) -> Fate:
    """A document's fate before the mixture: the first pass's drop stands over any later one; a
    dedup drop names the cluster's survivor; an emptied document (line dedup) is dropped unless
    something dropped it before (line dedup never empties a document that dedup dropped)."""
    drop, size, cluster, lines = first_drop, 1, doc_id, None
    for d in decisions:
        if isinstance(d, Drop):
            if drop is None:
                drop = d
            cluster = d.detail
        elif isinstance(d, Cluster):
            size = max(size, d.size)
        elif isinstance(d, LinesRemoved):
            lines = d.indices
            if d.emptied and drop is None:
                drop = LINES_EMPTIED
        else:
            raise TypeError(f"not a decision: {d!r}")
    return Fate(drop, size, cluster, lines)
