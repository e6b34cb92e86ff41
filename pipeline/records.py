"""The records that cross the pipeline's shuffles, by name.

After the route (pipeline/stages/route.py) the text is let go and only these small records
travel: each is a NamedTuple here, and crosses a shuffle as the plain tuple of its fields
(`pack_records`/`unpack_records`), because names on the wire cost bytes and time: about 4
bytes more per record and 3x the unpickling time (pickle writes a class reference and a
constructor call per NamedTuple), measured by bench/shuffle_bytes.py.

  uid                    file_idx << REC_BITS | record index: every input record's 64-bit key
  Info                   what the last pass needs of a document (its text is re-read there)
  Payload                a surviving document in the mixture's accounting, through dedup
  UrlItem / ExactItem    a document in URL dedup / exact dedup (partitioned by its key)
  NodeRecord             a document in MinHash dedup, shuffled once by its uid's partition
  StatDelta              an increment of the mixture's per-bucket statistics
  events                 a decision (classifiers.decisions) about one record, for the last pass
  LineItem / LineDoc / LineOccurrence   line dedup's items (pipeline/stages/line_dedup.py)

A node (`classifiers.duplicates.Node`) is the survivor policy's ordering tuple; band keys
travel as the bytes of a uint64 array.
"""

from __future__ import annotations

import functools
import pickle
import typing
from collections.abc import Iterable
from typing import NamedTuple

from classifiers.decisions import Cluster, Drop, LinesRemoved
from classifiers.duplicates import Node

# uid = file_idx << REC_BITS | record index: a unique 64-bit key for every input record.
REC_BITS = 40
MAX_FILES = 1 << (63 - REC_BITS)


def make_uid(file_idx: int, rec: int) -> int:
    return (file_idx << REC_BITS) | rec


def split_uid(uid: int) -> tuple[int, int]:
    return uid >> REC_BITS, uid & ((1 << REC_BITS) - 1)


class Info(NamedTuple):
    """A document as the first pass leaves it for the last one."""

    id: str
    source: str
    bucket: str
    language: str | None
    language_score: float | None
    language_model: str | None
    quality_score: float | None
    quality_flag: str | None
    n_tokens: int
    n_bytes: int
    drop: Drop | None  # the first pass's drop (a plain tuple on the wire: `Info.read`)
    signals: dict | None

    @classmethod
    def of(cls, doc: dict) -> Info:
        return cls._make(doc.get(k) for k in cls._fields)

    @classmethod
    def read(cls, fields: tuple) -> Info:
        info = cls._make(fields)
        return info if info.drop is None else info._replace(drop=Drop._make(info.drop))


class Payload(NamedTuple):
    bucket: str
    key: int  # the document's sampling key (classifiers.mixture.sampling_key)
    tokens: int
    nbytes: int
    weight: int  # input documents it stands for: the size of the duplicate group it survived


class UrlItem(NamedTuple):
    url_key: int  # 63-bit hash of the normalised URL
    timestamp: tuple  # classifiers.duplicates.timestamp_key
    node: Node
    payload: Payload
    exact_key: int | None
    bands: bytes | None  # MinHash band keys (uint64 array bytes)


class ExactItem(NamedTuple):
    exact_key: int
    node: Node
    payload: Payload
    bands: bytes | None


class NodeRecord(NamedTuple):
    uid: int
    node: Node
    payload: Payload


class StatDelta(NamedTuple):
    bucket: str
    key: int  # sampling key
    docs: int
    tokens: int
    nbytes: int


def stat_delta(payload: Payload, sign: int) -> tuple:
    """The payload's document added (+1) to or removed (-1) from the statistics (a plain tuple:
    deltas cross the mixture's combine as they are)."""
    return (payload.bucket, payload.key, sign, sign * payload.tokens, sign * payload.nbytes)


class LineItem(NamedTuple):
    line_hash: int
    uid: int
    text_key: int | None  # 24 bits of the exact-dedup key: copies of a text count once
    index: int
    nbytes: int
    nchars: int


class LineDoc(NamedTuple):
    rec: int
    payload: Payload
    content: int  # content characters (classifiers.line_dedup.content_chars)


class LineOccurrence(NamedTuple):
    rec: int
    index: int
    nbytes: int
    nchars: int


# ---------------------------------------------------------------- events (keyed by record)
# On the wire: (record, kind, *decision's fields), e.g. (rec, "drop", stage, rule, detail).
DROP, CLUSTER, LINES = "drop", "cluster", "lines"
_KIND = {Drop: DROP, Cluster: CLUSTER, LinesRemoved: LINES}
_DECISION = {v: k for k, v in _KIND.items()}


def event(rec: int, decision: Drop | Cluster | LinesRemoved) -> tuple:
    return (rec, _KIND[type(decision)], *decision)


def read_event(fields: tuple) -> tuple[int, Drop | Cluster | LinesRemoved]:
    rec, kind, *rest = fields
    return rec, _DECISION[kind]._make(rest)


# ---------------------------------------------------------------- packing


def pack(records: list) -> bytes:
    """A list of small records as ONE bytes value, for a shuffle. Beam's local runner keeps every
    GroupByKey's values decoded in its own process (fn_api_runner GroupingBuffer): a list of
    tuples and dicts costs there several times its encoded size, one bytes object about its size
    (bench/dedup_scale.py measures it). Other runners gain a smaller per-element cost."""
    return pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(blob: bytes) -> list:
    """The records `pack` made (values that this pipeline's own DoFns produced)."""
    return pickle.loads(blob)


def plain(record: tuple) -> tuple:
    """A record as the plain tuple of its fields, nested records too."""
    return tuple(plain(v) if hasattr(v, "_fields") else v for v in record)


def pack_records(records: Iterable[tuple]) -> bytes:
    return pack([plain(r) for r in records])


@functools.cache
def _reader(cls: type) -> typing.Callable[[tuple], tuple]:
    read = getattr(cls, "read", None)
    if read is not None:
        return read
    nested = [
        (i, t)
        for i, t in enumerate(typing.get_type_hints(cls).values())
        if isinstance(t, type) and hasattr(t, "_fields")
    ]
    if not nested:
        return cls._make

    def read_nested(fields: tuple) -> tuple:
        fields = list(fields)
        for i, t in nested:
            fields[i] = t._make(fields[i])
        return cls._make(fields)

    return read_nested


def unpack_records(blob: bytes, cls: type) -> list:
    """The records of `cls` that `pack_records` packed."""
    read = _reader(cls)
    return [read(r) for r in unpack(blob)]
