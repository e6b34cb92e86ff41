"""Reading the configured sources: file discovery (at graph construction) and the record
reader that the first and last passes share.

A file is read by one worker, start to end, into `Document` dicts and quarantine rows. The
reader is deterministic: the same file yields the same records in the same order, which is what
lets the last pass re-read the text instead of shuffling it (see pipeline/graph.py).
Every problem with a record becomes a quarantine row with the file, the record index, the byte
offset and a reason; the run goes on.
"""

from __future__ import annotations

import io
import json
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import zstandard

from classifiers.extract import ExtractParams
from classifiers.text import normalize_text, stable_hash64
from pipeline.config import ConfigError, NormalizeParams, Source
from pipeline.records import MAX_FILES, REC_BITS, make_uid, split_uid  # noqa: F401 - the uid layout


@dataclass(frozen=True)
class FileSpec:
    file_idx: int
    source: str
    path: str
    format: str  # jsonl | parquet | warc
    compression: str  # none | gzip | zstd
    size: int


def infer_format(path: str) -> tuple[str, str]:
    p = path.lower()
    for suffix, comp in ((".gz", "gzip"), (".zst", "zstd"), (".zstd", "zstd")):  # noqa: B007 - read after break
        if p.endswith(suffix):
            p = p[: -len(suffix)]
            break
    else:
        comp = "none"
    if p.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl", comp
    if p.endswith(".parquet") and comp == "none":
        return "parquet", comp
    if p.endswith((".warc", ".arc.warc")):
        return "warc", comp
    return "", comp


def discover(sources: list[Source]) -> list[FileSpec]:
    """Expand every source's paths and globs through Beam's filesystems (local, gs://, ...).
    A pattern that matches nothing or a file of unknown format is a setup error."""
    from apache_beam.io.filesystems import FileSystems

    specs: list[FileSpec] = []
    seen: set[str] = set()
    for src in sources:
        for pattern in src.paths:
            try:
                matches = FileSystems.match([pattern])[0].metadata_list
            except Exception as e:  # noqa: BLE001 - any filesystem error is a setup error
                raise ConfigError(f"input error: source {src.name!r}: cannot list {pattern!r}: {e}") from None
            files = sorted((m for m in matches if not m.path.endswith("/")), key=lambda m: m.path)
            if not files:
                raise ConfigError(f"input error: source {src.name!r}: {pattern!r} matches no file")
            for m in files:
                if m.path in seen:
                    continue
                seen.add(m.path)
                fmt, comp = infer_format(m.path)
                if src.format:
                    fmt = src.format
                if not fmt:
                    raise ConfigError(
                        f"input error: {m.path}: unknown format (expected .jsonl[.gz|.zst], .parquet or"
                        f" .warc[.gz|.zst]; set sources[].format)"
                    )
                specs.append(FileSpec(len(specs), src.name, m.path, fmt, comp, m.size_in_bytes))
    if len(specs) >= MAX_FILES:
        raise ConfigError(f"input error: {len(specs)} files; at most {MAX_FILES - 1} per run")
    for s in specs:
        _check_readable(s)
    return specs


def _check_readable(spec: FileSpec) -> None:
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(spec.path, compression_type="uncompressed") as f:
            f.read(1)
    except Exception as e:  # noqa: BLE001
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0][:200]
        raise ConfigError(f"input error: cannot read {spec.path}: {reason}") from None


# ----------------------------------------------------------------------------- records

Document = dict[str, Any]

UTF8_BOM = b"\xef\xbb\xbf"
# A JSON string escapes one UTF-8 byte into at most 6 bytes (a control character as \u0001), so a
# line longer than this many times max_record_bytes (plus LINE_SLACK for the other fields) cannot
# hold a text within the limit: it is skipped unread.
JSON_ESCAPE_FACTOR = 6
LINE_SLACK = 1 << 16
# Python refuses int() of a decimal string longer than this (CVE-2020-10735), which json.loads hits
INT_MAX_DIGITS = sys.get_int_max_str_digits() or 1 << 62


class HugeInt:
    """A JSON integer of more digits than Python converts (INT_MAX_DIGITS): kept as its text, so
    that a record holding one anywhere still parses. Not an int: as an id it is refused."""

    __slots__ = ("digits",)

    def __init__(self, digits: str):
        self.digits = digits

    def __str__(self) -> str:
        return self.digits

    __repr__ = __str__


def _parse_int(s: str):
    return int(s) if len(s.lstrip("-")) <= INT_MAX_DIGITS else HugeInt(s)


def _type_name(v) -> str:
    return f"an integer of {len(v.digits.lstrip('-'))} digits" if isinstance(v, HugeInt) else type(v).__name__


def printable(s: str) -> str:
    """`s` as valid UTF-8 text: a file name's undecodable bytes (surrogate escapes, as Python
    lists them) become `\\xff`, any other lone surrogate `\\ud800`."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        pass
    try:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


def _surrogate_at(s: str) -> int | None:
    try:
        s.encode("utf-8")
        return None
    except UnicodeEncodeError as e:
        return e.start


class _Reader:
    """Turns one file into ('doc', Document) and ('quarantine', row) items."""

    def __init__(
        self,
        spec: FileSpec,
        source: Source,
        norm: NormalizeParams,
        raw_bytes: int,
        start: int = 0,
        stop: int | None = None,
        extract: ExtractParams | None = None,
        need=None,
    ):
        self.spec, self.src, self.norm, self.raw_bytes = spec, source, norm, raw_bytes
        # records outside [start, stop) are counted, not parsed (the last pass reads chunks)
        self.start, self.stop = start, stop
        # WARC: how HTML becomes text; `need(record) -> bool` False: the record's text is not
        # wanted (the last pass, for a rejected document), so a WARC record is not extracted
        # (text "") and a JSONL line not decoded (("unread", record) instead of its document)
        self.extract, self.need = extract, need

    def quarantine(self, rec: int, offset: int | None, reason: str, detail: str, raw: bytes = b"") -> tuple:
        return (
            "quarantine",
            {
                "source": self.src.name,
                "file": printable(self.spec.path),
                "record": rec,
                "byte_offset": offset,
                "reason": reason,
                "detail": printable(detail[:500]),
                "raw": raw[: self.raw_bytes],
            },
        )

    def document(self, rec: int, offset: int | None, obj: dict, raw: bytes) -> tuple:
        """Validate one decoded record (a dict); returns a document or a quarantine item. Every
        field the pipeline keeps is checked here, so nothing after the reader meets a value it
        cannot encode (Beam's coders and Parquet refuse lone surrogates)."""
        src, norm = self.src, self.norm
        if src.text_field not in obj or obj[src.text_field] is None:
            return self.quarantine(rec, offset, "missing_text", f"no {src.text_field!r} field", raw)
        text = obj[src.text_field]
        if not isinstance(text, str):
            return self.quarantine(rec, offset, "text_not_string", f"{src.text_field!r} is {_type_name(text)}", raw)
        try:
            n_bytes = len(text.encode("utf-8"))
        except UnicodeEncodeError as e:
            return self.quarantine(rec, offset, "invalid_unicode", f"lone surrogate at char {e.start}", raw)
        if "\x00" in text:
            return self.quarantine(rec, offset, "nul_bytes", f"NUL at char {text.index(chr(0))}", raw)
        if n_bytes > norm.max_record_bytes:
            return self.quarantine(
                rec, offset, "too_large", f"text is {n_bytes} bytes > max_record_bytes {norm.max_record_bytes}", raw
            )
        doc_id = obj.get(src.id_field) if src.id_field else None
        if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int, type(None))):
            return self.quarantine(rec, offset, "bad_id", f"{src.id_field!r} is {_type_name(doc_id)}", raw)
        if isinstance(doc_id, str) and (at := _surrogate_at(doc_id)) is not None:
            return self.quarantine(
                rec, offset, "invalid_unicode", f"lone surrogate in {src.id_field!r} at char {at}", raw
            )
        if doc_id is None or doc_id == "":
            # JSONL: the record's byte offset; Parquet (no offsets): its row index
            where = offset if offset is not None else f"row{rec}"
            doc_id = f"{src.name}-{stable_hash64(f'{src.name}|{self.spec.path}|{where}'):016x}"
        meta = {}
        for key in ("url_field", "timestamp_field", "path_field"):
            field = getattr(src, key)
            if field:
                v = obj.get(field)
                try:
                    v = None if v is None else str(v)
                except (ValueError, RecursionError) as e:  # an int too long for str(), nesting too deep
                    return self.quarantine(rec, offset, "bad_field", f"{field!r}: {type(e).__name__}", raw)
                if v is not None and (at := _surrogate_at(v)) is not None:
                    return self.quarantine(
                        rec, offset, "invalid_unicode", f"lone surrogate in {field!r} at char {at}", raw
                    )
                meta[key[:-6]] = v
        normalized = normalize_text(text, norm.unicode_form)
        if normalized is not text:
            text, n_bytes = normalized, len(normalized.encode("utf-8"))
        return (
            "doc",
            {
                "uid": make_uid(self.spec.file_idx, rec),
                "id": str(doc_id),
                "text": text,
                "source": src.name,
                "kind": src.kind,
                "n_bytes": n_bytes,
                **meta,
            },
        )

    # -- jsonl
    def _open_jsonl(self):
        from apache_beam.io.filesystems import FileSystems

        raw = FileSystems.open(self.spec.path, compression_type="uncompressed")
        stream = raw if self.spec.compression == "none" else _Decompress(raw, self.spec.compression)
        return raw, io.BufferedReader(stream, buffer_size=1 << 20)

    def read_jsonl(self) -> Iterator[tuple]:
        # max_record_bytes bounds the text's UTF-8 bytes (checked in `document`); a line is skipped
        # unread only when even JSON escaping cannot explain its length
        limit = JSON_ESCAPE_FACTOR * self.norm.max_record_bytes + LINE_SLACK
        raw, f = self._open_jsonl()
        rec, offset = 0, 0
        try:
            while True:
                try:
                    line = f.readline(limit)
                except (EOFError, OSError, zlib.error, zstandard.ZstdError) as e:
                    yield self.quarantine(
                        rec,
                        offset,
                        "truncated_or_corrupt",
                        f"{type(e).__name__}: {e}; the rest of the file is unreadable",
                    )
                    return
                if self.stop is not None and rec >= self.stop:
                    return
                if not line:
                    if rec == 0 and offset == 0:
                        yield self.quarantine(0, 0, "empty_file", "the file holds no record")
                    return
                start = offset
                offset += len(line)
                if len(line) >= limit and not line.endswith(b"\n"):
                    head = line
                    while line and not line.endswith(b"\n"):  # skip the rest, bounded memory
                        try:
                            line = f.readline(limit)
                        except Exception:  # noqa: BLE001 - reported at the next read
                            break
                        offset += len(line)
                    if rec >= self.start:
                        yield self.quarantine(
                            rec,
                            start,
                            "too_large",
                            f"line is over {limit} bytes ({JSON_ESCAPE_FACTOR} x max_record_bytes"
                            f" + {LINE_SLACK}): skipped unread",
                            head,
                        )
                    rec += 1
                    continue
                stripped = line.strip()
                if stripped.startswith(UTF8_BOM):  # a BOM (file start, or files concatenated)
                    stripped = stripped[len(UTF8_BOM) :].strip()
                if not stripped:  # blank lines are not records
                    continue
                if rec >= self.start:
                    if self.need is not None and not self.need(rec):
                        yield ("unread", rec)  # the last pass takes no text of it: not decoded
                    else:
                        yield self._parse_line(rec, start, stripped)
                rec += 1
        finally:
            f.close()
            raw.close()

    def _parse_line(self, rec: int, offset: int, line: bytes) -> tuple:
        try:
            s = line.decode("utf-8")
        except UnicodeDecodeError as e:
            return self.quarantine(rec, offset, "invalid_utf8", f"bad byte at {e.start}", line)
        try:
            obj = json.loads(s, parse_int=_parse_int)
        except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
            return self.quarantine(rec, offset, "bad_json", f"{type(e).__name__}: {str(e)[:200]}", line)
        if not isinstance(obj, dict):
            return self.quarantine(rec, offset, "not_object", f"a JSON {type(obj).__name__}, not an object", line)
        return self.document(rec, offset, obj, line)

    # -- parquet
    def read_parquet(self) -> Iterator[tuple]:
        import pyarrow.parquet as pq
        from apache_beam.io.filesystems import FileSystems

        src = self.src
        rec = 0
        try:
            with FileSystems.open(self.spec.path, compression_type="uncompressed") as raw:
                pf = pq.ParquetFile(raw)
                names = set(pf.schema_arrow.names)
                if pf.metadata.num_rows == 0:
                    yield self.quarantine(0, None, "empty_file", "the file holds no row")
                    return
                wanted = [
                    c
                    for c in {src.text_field, src.id_field, src.url_field, src.timestamp_field, src.path_field}
                    if c and c in names
                ]
                for batch in pf.iter_batches(batch_size=1024, columns=wanted):
                    if rec + batch.num_rows <= self.start:
                        rec += batch.num_rows
                        continue
                    try:
                        rows = batch.to_pylist()
                    except Exception:  # noqa: BLE001 - a value Python cannot take: row by row below
                        rows = None
                    for i in range(batch.num_rows):
                        if self.stop is not None and rec >= self.stop:
                            return
                        if rec >= self.start:
                            yield (
                                self._parquet_row(rec, batch, i)
                                if rows is None
                                else self.document(rec, None, rows[i], b"")
                            )
                        rec += 1
        except Exception as e:  # noqa: BLE001 - a broken Parquet file: the rest is one entry
            yield self.quarantine(
                rec,
                None,
                "truncated_or_corrupt",
                f"{type(e).__name__}: {str(e)[:300]}; the rest of the file is unreadable",
            )

    def _parquet_row(self, rec: int, batch, i: int) -> tuple:
        """One row of a batch that did not convert as a whole (a string column holding invalid
        UTF-8, say): the row's own problem is its quarantine reason; the other rows go on."""
        obj = {}
        for name, col in zip(batch.schema.names, batch.columns):
            try:
                obj[name] = col[i].as_py()
            except UnicodeDecodeError as e:
                return self.quarantine(rec, None, "invalid_utf8", f"column {name!r}: bad byte at {e.start}")
            except Exception as e:  # noqa: BLE001 - e.g. a timestamp out of Python's range
                return self.quarantine(rec, None, "bad_value", f"column {name!r}: {type(e).__name__}: {e}")
        return self.document(rec, None, obj, b"")

    # -- warc
    def read_warc(self) -> Iterator[tuple]:
        """WARC records -> documents (pipeline/warc_docs.py has the rules), ('skip', rule) for
        records that are not documents, quarantine rows for damage."""
        from apache_beam.io.filesystems import FileSystems

        from pipeline.warc_docs import read_warc

        with FileSystems.open(self.spec.path, compression_type="uncompressed") as raw:
            yield from read_warc(self, raw)

    def __iter__(self) -> Iterator[tuple]:
        if self.spec.format == "warc":
            return self.read_warc()
        return self.read_parquet() if self.spec.format == "parquet" else self.read_jsonl()


class TruncatedStream(EOFError):
    pass


class _Decompress(io.RawIOBase):
    """Streaming decompression (zstd or gzip) that hands out every byte decoded before a
    problem and only then raises: `TruncatedStream` when the input ends inside a frame (a
    truncated download; zstandard's own stream reader returns a clean EOF there), the codec's
    error on corrupt data. Reads concatenated frames / gzip members."""

    def __init__(self, raw, codec: str, chunk: int = 1 << 18):
        self.raw, self.codec, self.chunk = raw, codec, chunk
        self.dctx = zstandard.ZstdDecompressor() if codec == "zstd" else None
        self.dobj = self._new()
        self.pending = bytearray()
        self.in_frame = False
        self.error: Exception | None = None

    def _new(self):
        return self.dctx.decompressobj() if self.codec == "zstd" else zlib.decompressobj(wbits=31)

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        data = self.raw.read(self.chunk)
        if not data:
            if self.in_frame:
                raise TruncatedStream(f"{self.codec} input ends inside a frame (truncated file)")
            return
        while data:
            self.in_frame = True
            self.pending += self.dobj.decompress(data)
            if self.dobj.eof:
                data = self.dobj.unused_data
                self.dobj = self._new()
                self.in_frame = False
            else:
                data = b""

    def readinto(self, b) -> int:
        while not self.pending:
            if self.error is not None:
                raise self.error
            try:
                before = len(self.pending)
                self._fill()
                if len(self.pending) == before and not self.in_frame:
                    return 0
            except (TruncatedStream, zlib.error, zstandard.ZstdError) as e:
                self.error = e  # deliver what was decoded first, raise on the next read
        n = min(len(b), len(self.pending))
        b[:n] = self.pending[:n]
        del self.pending[:n]
        return n


def read_file(
    spec: FileSpec,
    source: Source,
    norm: NormalizeParams,
    raw_bytes: int,
    start: int = 0,
    stop: int | None = None,
    extract: ExtractParams | None = None,
    need=None,
) -> Iterator[tuple]:
    """('doc', Document), ('quarantine', row) and, for WARC records that are not documents,
    ('skip', rule) items; with `need`, ('unread', record) for a JSONL line it does not want.
    `extract` (WARC: stages.extract) and `need` (see _Reader)."""
    return iter(_Reader(spec, source, norm, raw_bytes, start, stop, extract, need))
