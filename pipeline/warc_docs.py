"""WARC records -> documents: which records are documents, and the extract stage (HTML -> main
text, classifiers/extract.py) applied to them as they are read.

The rules (README, "WARC input"):
- `response` records (HTTP 200, an HTML media type) and `resource` records of an HTML media type
  are documents: decoded (BOM, then the HTTP charset, then <meta charset>, then detection) and
  extracted with stages.extract;
- `conversion` records (WET: text Common Crawl extracted) are text documents, as they are;
- `warcinfo`, `request`, `metadata`, `revisit` and `continuation` records are not documents: they
  are skipped, counted in the manifest's `skipped` (`warc/<type>`), and are not input to the
  ledger; any other record type too (`warc/other_type`);
- a response or resource that is not a usable page is a document rejected at the extract stage:
  `extract/http_status` (not 200), `extract/not_html` (another media type), `extract/bad_http`
  (no parsable HTTP head), `extract/too_large` (body over max_html_bytes, never parsed),
  `extract/binary` (control bytes in a body labelled HTML), `extract/too_deep` (elements nested
  over max_depth), `extract/no_text` (nothing extracted),
  `extract/extract_error` (the parser gave up);
- damage (a header that is not WARC, a file that ends inside a record, corrupt compression) is
  quarantined with the record's byte offset, as JSONL damage is.

The document's id is its WARC-Record-ID (`urn:uuid:...`), else a hash of source, file and offset;
`url` is WARC-Target-URI and `timestamp` WARC-Date (URL dedup keeps the latest capture).
"""

from __future__ import annotations

from collections.abc import Iterator

from classifiers.extract import Extractor, ExtractParams
from classifiers.text import normalize_text, stable_hash64
from pipeline.records import make_uid
from pipeline.warc import SKIP_TYPES, WarcDamage, iter_records, parse_http_response

HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xhtml", "text/xhtml")
DOC_TYPES = ("response", "resource", "conversion")
STAGE = "extract"

_EXTRACTORS: dict[str, Extractor] = {}


def extractor(params: ExtractParams | None) -> Extractor:
    """One Extractor per configuration per process (the libraries load once)."""
    params = params or ExtractParams()
    key = params.model_dump_json()
    ex = _EXTRACTORS.get(key)
    if ex is None:
        ex = _EXTRACTORS[key] = Extractor(params)
    return ex


def _sniff_html(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) and b"<html" in body[:4096].lower()


def read_warc(reader, raw) -> Iterator[tuple]:
    """`reader`: the sources._Reader of this file (its quarantine and limits)."""
    spec = reader.spec
    params = reader.extract or ExtractParams()
    ex = extractor(params)
    # a body this long is refused unread; the WARC record around it may be a little longer
    max_content = max(params.max_html_bytes, reader.norm.max_record_bytes) + (1 << 16)
    n = 0
    for item in iter_records(raw, spec.compression, max_content):
        n += 1
        if reader.stop is not None and item.index >= reader.stop:
            return
        if item.index < reader.start:
            continue
        if isinstance(item, WarcDamage):
            where = " (offset in the decompressed stream)" if item.in_stream else ""
            yield reader.quarantine(item.index, item.offset, item.reason, item.detail + where, item.raw)
            if item.fatal:
                return
            continue
        rtype = item.type
        if rtype not in DOC_TYPES:
            yield ("skip", f"warc/{rtype}" if rtype in SKIP_TYPES else "warc/other_type")
            continue
        yield _document(reader, ex, item, rtype)
    if n == 0 and reader.start == 0:
        yield reader.quarantine(0, 0, "empty_file", "the file holds no record")


def _document(reader, ex: Extractor, rec, rtype: str) -> tuple:
    src, spec = reader.src, reader.spec
    h = rec.headers
    rid = h.get("warc-record-id", "").strip().strip("<>")
    if not rid:
        rid = f"{src.name}-{stable_hash64(f'{src.name}|{spec.path}|{rec.offset}'):016x}"
    url = h.get("warc-target-uri", "").strip().strip("<>") or None
    ts = h.get("warc-date", "").strip() or None
    doc = {
        "uid": None,
        "id": rid,
        "text": "",
        "source": src.name,
        "kind": src.kind,
        "n_bytes": 0,
        "url": url,
        "timestamp": ts,
    }
    doc["uid"] = make_uid(spec.file_idx, rec.index)

    def rejected(rule: str, detail: str | None) -> tuple:
        return ("doc", {**doc, "drop": (STAGE, f"{STAGE}/{rule}", detail)})

    if rec.content is None:
        return rejected("too_large", f"record content is {rec.length} bytes, over the read limit")
    if reader.need is not None and not reader.need(rec.index):
        return ("doc", doc)  # the last pass does not need this text: not extracted
    if rtype == "conversion":
        text = rec.content.decode("utf-8", "replace")
        return _finish(reader, doc, text, rec)
    wtype = h.get("content-type", "").lower()
    if rtype == "response" and ("application/http" in wtype or rec.content.startswith(b"HTTP/")):
        try:
            http = parse_http_response(rec.content)
        except ValueError as e:
            return rejected("bad_http", str(e)[:200])
        if http.status != 200:
            return rejected("http_status", f"HTTP {http.status}")
        mime, charset, body = http.content_type, http.charset, http.body
    else:
        from classifiers.extract import charset_from_content_type

        mime, charset, body = wtype.split(";")[0].strip(), charset_from_content_type(wtype), rec.content
    if mime not in HTML_TYPES and not (mime in ("", "application/octet-stream", "text/plain") and _sniff_html(body)):
        return rejected("not_html", mime or "no media type")
    text, rule, detail = ex.extract(body, charset)
    if text is None:
        return rejected(rule, detail)
    return _finish(reader, doc, text, rec)


def _finish(reader, doc: dict, text: str, rec) -> tuple:
    norm = reader.norm
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    n = len(text.encode("utf-8"))
    if n > norm.max_record_bytes:
        return reader.quarantine(
            rec.index, rec.offset, "too_large", f"text is {n} bytes > max_record_bytes {norm.max_record_bytes}"
        )
    text = normalize_text(text, norm.unicode_form)
    return ("doc", {**doc, "text": text, "n_bytes": len(text.encode("utf-8"))})
