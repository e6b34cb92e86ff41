"""WARC files (ISO 28500; WARC/1.0 and 1.1) as a stream of records, with the byte offset of each.

`.warc` (plain), `.warc.gz` (one gzip member per record, as Common Crawl writes them; a file
gzipped whole reads too) and `.warc.zst` (one zstd frame per record, with the optional dictionary
in a leading skippable frame, per the WARC zstd spec). The file is read as a stream: memory is a
buffer of a few MiB plus one record's content, and a content over `max_content` bytes is skipped
unread (`WarcRecord.content` is None; `length` says how long it was).

Offsets: in a plain file, where the record's `WARC/` line starts; in a compressed file, where the
gzip member or zstd frame that holds the record starts (what Common Crawl's index calls the
offset: `dd skip=OFFSET` then gunzip reads the record); a record that does not start its own
member (a file compressed whole) gets its offset in the decompressed stream, and `in_stream` True.

Damage is reported, never raised: `WarcDamage` items name the offset, a reason and the first
bytes. A record whose header is not WARC (`bad_record`) is followed by a search for the next
`WARC/1.` line; a file that ends inside a record or a member, or whose compressed data is corrupt
(`truncated_or_corrupt`), ends there. No Beam import: `raw` is any binary file object.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import zstandard

CHUNK = 1 << 16  # compressed bytes fed per call
OUT_MAX = 1 << 20  # decompressed bytes per call (a member expanding 1000x is produced in pieces)
MAX_HEADER_BYTES = 1 << 20  # a WARC header block longer than this is damage
MAX_LINE = 1 << 16
ZSTD_DICT_MAGIC = b"\x5d\x2a\x4d\x18"  # skippable frame 0x184D2A5D: the WARC zstd dictionary
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

SKIP_TYPES = ("warcinfo", "request", "metadata", "revisit", "continuation")


class TruncatedStream(EOFError):
    pass


@dataclass
class WarcRecord:
    index: int  # the record's ordinal in the file (every record counts, skipped ones too)
    offset: int
    in_stream: bool
    headers: dict[str, str]  # names lower-cased; a repeated name keeps its first value
    content: bytes | None  # None: over max_content, skipped unread
    length: int

    @property
    def type(self) -> str:
        return self.headers.get("warc-type", "").strip().lower()


@dataclass
class WarcDamage:
    index: int
    offset: int
    in_stream: bool
    reason: str  # bad_record | truncated_or_corrupt
    detail: str
    raw: bytes = field(default=b"", repr=False)
    fatal: bool = False  # nothing after it can be read


class _Inflater:
    """raw -> (member start offset | None, decompressed bytes) chunks; the offset comes with the
    first bytes of each gzip member / zstd frame. Raises TruncatedStream at EOF inside a member and
    the codec's error on corrupt data, after handing out everything decoded before it."""

    def __init__(self, raw, codec: str):
        self.raw, self.codec = raw, codec
        self.cpos = 0  # compressed offset of pending[0]
        self.pending = b""
        self.zdctx = None
        if codec == "zstd":
            self._zstd_dictionary()

    def _zstd_dictionary(self) -> None:
        head = self.raw.read(8)
        if head[:4] == ZSTD_DICT_MAGIC and len(head) == 8:
            size = int.from_bytes(head[4:], "little")
            data = self.raw.read(size)
            self.cpos = 8 + len(data)
            if data[:4] == ZSTD_MAGIC:  # the dictionary may itself be zstd-compressed
                data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
            self.zdctx = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(data))
        else:
            self.pending = head
            self.zdctx = zstandard.ZstdDecompressor()

    def _new(self):
        return zlib.decompressobj(wbits=31) if self.codec == "gzip" else self.zdctx.decompressobj()

    def __iter__(self) -> Iterator[tuple[int | None, bytes]]:
        if self.codec == "none":
            while data := self.raw.read(CHUNK * 4):
                yield None, data
            return
        dobj = None
        while True:
            if not self.pending:
                self.pending = self.raw.read(CHUNK)
                if not self.pending:
                    if dobj is not None:
                        raise TruncatedStream(f"{self.codec} input ends inside a member (truncated file)")
                    return
            if dobj is None:  # a member starts: its offset goes out now (its data may come later)
                dobj = self._new()
                yield self.cpos, b""
            if self.codec == "gzip":
                data = self.pending
                out = dobj.decompress(data, OUT_MAX)
                rest = dobj.unconsumed_tail if not dobj.eof else dobj.unused_data
            else:
                data = self.pending[:CHUNK]
                out = dobj.decompress(data)
                rest = (dobj.unused_data if dobj.eof else b"") + self.pending[CHUNK:]
                data = self.pending
            self.cpos += len(data) - len(rest)
            self.pending = rest
            if out:
                yield None, out
            if dobj.eof:
                dobj = None


class _Stream:
    """A buffered view of the decompressed bytes with absolute positions and member marks."""

    def __init__(self, chunks):
        self.it = iter(chunks)
        self.buf = bytearray()
        self.pos = 0  # read position in buf
        self.base = 0  # stream position of buf[0]
        self.marks: dict[int, int] = {}  # stream position -> compressed offset of a member start
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            mark, data = next(self.it)
        except StopIteration:
            self.eof = True
            return False
        if self.pos > (1 << 20) or self.pos == len(self.buf):
            del self.buf[: self.pos]
            self.base += self.pos
            self.pos = 0
        if mark is not None:
            self.marks[self.base + len(self.buf)] = mark
        self.buf += data
        return True

    def tell(self) -> int:
        return self.base + self.pos

    def offset_of(self, upos: int) -> tuple[int, bool]:
        """(file offset, in_stream) of a record starting at stream position `upos`."""
        cpos = self.marks.get(upos)
        for k in [k for k in self.marks if k <= upos]:
            del self.marks[k]
        if cpos is not None:
            return cpos, False
        return upos, self.compressed

    compressed = False  # set by iter_records: offsets off member starts are then in_stream

    def readline(self, limit: int = MAX_LINE) -> bytes:
        while True:
            end = min(len(self.buf), self.pos + limit)
            i = self.buf.find(b"\n", self.pos, end)
            if i >= 0:
                line = bytes(self.buf[self.pos : i + 1])
                self.pos = i + 1
                return line
            if len(self.buf) - self.pos >= limit or not self._fill():
                line = bytes(self.buf[self.pos : end])
                self.pos = end
                return line

    def peek_line_start(self) -> bytes:
        while len(self.buf) - self.pos < 8 and self._fill():
            pass
        return bytes(self.buf[self.pos : self.pos + 8])

    def read(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n and self._fill():
            pass
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += len(out)
        return out

    def skip(self, n: int) -> int:
        done = 0
        while done < n:
            if self.pos == len(self.buf) and not self._fill():
                break
            k = min(n - done, len(self.buf) - self.pos)
            self.pos += k
            done += k
        return done


def _parse_headers(block: list[bytes]) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = None
    for raw in block:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line[:1] in (" ", "\t") and last:  # a folded continuation line
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"header line without ':': {line[:80]!r}")
        last = name.strip().lower()
        headers.setdefault(last, value.strip())
    return headers


def iter_records(raw, compression: str, max_content: int) -> Iterator[WarcRecord | WarcDamage]:
    """Every record of a WARC file, or the damage found where one should be."""
    stream = _Stream(_Inflater(raw, compression))
    stream.compressed = compression != "none"
    index = 0
    resync = False
    while True:
        where = None  # (offset, in_stream) of the record being read
        try:
            line = stream.readline()
            while line in (b"\r\n", b"\n") or (resync and line and not line.startswith(b"WARC/1.")):
                line = stream.readline()
            resync = False
            if not line:
                return
            start = stream.tell() - len(line)
            offset, in_stream = where = stream.offset_of(start)
            if not line.startswith(b"WARC/"):
                yield WarcDamage(
                    index, offset, in_stream, "bad_record", "no WARC/ version line where a record starts", line[:1024]
                )
                index += 1
                resync = True
                continue
            block, size = [], len(line)
            while True:
                h = stream.readline()
                size += len(h)
                if h in (b"\r\n", b"\n"):
                    break
                if not h or size > MAX_HEADER_BYTES:
                    if not h:
                        yield WarcDamage(
                            index,
                            offset,
                            in_stream,
                            "truncated_or_corrupt",
                            "the file ends inside a WARC header",
                            line,
                            fatal=True,
                        )
                        return
                    yield WarcDamage(
                        index, offset, in_stream, "bad_record", f"WARC header over {MAX_HEADER_BYTES} bytes", line
                    )
                    index += 1
                    resync = True
                    break
                block.append(h)
            if resync:
                continue
            try:
                headers = _parse_headers(block)
                length = int(headers["content-length"])
                if length < 0:
                    raise ValueError("negative Content-Length")
            except (ValueError, KeyError) as e:
                what = "no Content-Length" if isinstance(e, KeyError) else str(e)
                yield WarcDamage(
                    index, offset, in_stream, "bad_record", f"WARC header: {what}", line + b"".join(block)[:1024]
                )
                index += 1
                resync = True
                continue
            if length > max_content:
                got, content = stream.skip(length), None
            else:
                content = stream.read(length)
                got = len(content)
            if got < length:
                yield WarcDamage(
                    index,
                    offset,
                    in_stream,
                    "truncated_or_corrupt",
                    f"the file ends {length - got} bytes into a record of Content-Length {length}",
                    line + b"".join(block)[:1024],
                    fatal=True,
                )
                return
            yield WarcRecord(index, offset, in_stream, headers, content, length)
            index += 1
        except (TruncatedStream, zlib.error, zstandard.ZstdError, OSError) as e:
            offset, in_stream = where or stream.offset_of(stream.tell())
            yield WarcDamage(
                index,
                offset,
                in_stream,
                "truncated_or_corrupt",
                f"{type(e).__name__}: {e}; the rest of the file is unreadable",
                fatal=True,
            )
            return


# ----------------------------------------------------------------------------- HTTP payloads


@dataclass
class HttpPayload:
    status: int | None  # None: not an HTTP message (a resource record)
    content_type: str  # the media type, lower-cased, without parameters ("" if none)
    charset: str | None
    body: bytes


def parse_http_response(content: bytes) -> HttpPayload:
    """An `application/http; msgtype=response` block -> status, media type, charset, body (with
    chunked transfer coding and gzip/deflate/br content coding undone). Raises ValueError."""
    head, sep, body = content.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = content.partition(b"\n\n")
        if not sep:
            raise ValueError("no end of HTTP headers")
    lines = head.split(b"\n")
    status_line = lines[0].decode("latin-1").strip()
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP status line: {status_line[:80]!r}")
    headers = _parse_headers([ln for ln in lines[1:] if ln.strip()])
    ctype = headers.get("content-type", "")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    coding = headers.get("content-encoding", "").strip().lower()
    if coding in ("gzip", "x-gzip", "deflate", "br") and body:
        body = _decode_content(body, coding)
    from classifiers.extract import charset_from_content_type

    return HttpPayload(int(parts[1]), ctype.split(";")[0].strip().lower(), charset_from_content_type(ctype), body)


def _dechunk(body: bytes) -> bytes:
    out, pos = bytearray(), 0
    while pos < len(body):
        eol = body.find(b"\n", pos)
        if eol < 0:
            break
        size_s = body[pos:eol].split(b";")[0].strip()
        try:
            size = int(size_s, 16)
        except ValueError:
            return body  # not chunked after all (crawlers often keep the header but decode)
        if size == 0:
            break
        out += body[eol + 1 : eol + 1 + size]
        pos = eol + 1 + size + 2
    return bytes(out)


def _decode_content(body: bytes, coding: str, limit: int = 64 << 20) -> bytes:
    """Undo a content coding, bounded; a body that is not so coded (crawlers that decoded it and
    kept the header) is returned as it is."""
    try:
        if coding == "br":
            import brotli

            return brotli.decompress(body)[:limit]
        d = zlib.decompressobj(wbits=47 if coding != "deflate" else 15)
        out = d.decompress(body, limit)
        return out
    except Exception:  # noqa: BLE001
        if coding == "deflate":
            try:
                return zlib.decompressobj(wbits=-15).decompress(body, limit)
            except zlib.error:
                pass
        return body
