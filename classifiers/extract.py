"""HTML -> main text, and the bytes -> str decoding in front of it. No Beam import.

Two extractors, both well-kept Apache-2.0 libraries, and a cascade of them:
- `resiliparse`: Resiliparse's main-content `extract_plain_text` over its lexbor DOM (C++; fast);
- `trafilatura`: Trafilatura's `extract` (lxml; slower, better at telling content from boilerplate
  on pages the fast one misjudges);
- `cascade` (default): resiliparse first; trafilatura only where resiliparse is unsure: its main
  text keeps little of the page's visible text, or nothing (`unsure` below). `bench/extract_eval.py`
  measures all three.

Output keeps what matters for pretraining: paragraph breaks (blank lines), list items (one a line,
bulleted), code blocks (verbatim lines), table rows (cells separated by tabs or `|`); navigation,
headers, footers, forms and scripts are dropped.

Hostile input is bounded before any parser sees it: a body over `max_html_bytes` is refused
(`too_large`), one that looks binary (NULs, control bytes) is refused (`binary`), one nested deeper
than `max_depth` is refused (`too_deep`); a parser error is
`extract_error`. All refusals are (None, rule, detail), never an exception.
"""
from __future__ import annotations

import codecs
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MiB = 1 << 20


# The cascade skips its visible-text walk when the main text is at least this share of the HTML's
# characters: markup-heavy pages rarely reach it, pages where the fast path kept the content do
SURE_SHARE_OF_HTML = 0.1


class ExtractParams(BaseModel):
    """stages.extract: HTML records (WARC responses) -> main text."""
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True  # False: the page's whole visible text (resiliparse, main_content off)
    extractor: Literal["cascade", "resiliparse", "trafilatura"] = "cascade"
    # cascade: trafilatura runs where resiliparse's main text is under this share of the page's
    # visible text (it threw most of the page away), or under `min_chars`
    fallback_below_share: float = Field(0.25, ge=0.0, le=1.0)
    min_chars: int = Field(200, ge=0)
    trafilatura_fast: bool = False  # trafilatura without its own readability/justext fallbacks
    max_html_bytes: int = Field(4 * MiB, gt=0)  # a larger body is rejected extract/too_large, unparsed
    max_binary_share: float = Field(0.02, ge=0.0, le=1.0)  # control bytes in the first 4 KiB
    # element nesting beyond this is rejected extract/too_deep before parsing (resiliparse's time
    # grows with the square of the depth: 20,000 nested <div> take 16 s); real pages stay under 100.
    # Checked only on pages of over `depth_check_tags` tags (the scan costs ~9 ms per 100 KB)
    max_depth: int = Field(1000, ge=1)
    depth_check_tags: int = Field(5000, ge=0)
    keep_empty: bool = False  # an extraction with no text is rejected extract/no_text unless True


# ----------------------------------------------------------------------------- decoding

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
_CT_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
# WHATWG Encoding: labels that browsers (and so page authors) treat as windows-1252
_HTML5_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "l1": "cp1252",
                  "us-ascii": "cp1252", "ascii": "cp1252", "iso8859-1": "cp1252", "iso_8859-1": "cp1252",
                  "x-user-defined": "cp1252", "windows-874": "cp874", "iso-8859-9": "cp1254",
                  "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "ks_c_5601-1987": "cp949",
                  "euc-kr": "cp949", "shift_jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "big5": "big5hkscs",
                  "utf8": "utf-8", "unicode-1-1-utf-8": "utf-8", "utf-16": "utf-8"}  # utf-16 in meta: a lie
PRESCAN_BYTES = 4096


def charset_from_content_type(value: str | None) -> str | None:
    if not value:
        return None
    m = _CT_CHARSET.search(value)
    return m.group(1) if m else None


def _codec(label: str | None) -> str | None:
    """A Python codec for a charset label as browsers read it; None when unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _HTML5_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def meta_charset(body: bytes) -> str | None:
    m = _META_CHARSET.search(body[:PRESCAN_BYTES])
    return m.group(1).decode("ascii", "replace") if m else None


def detect_charset(body: bytes) -> str:
    """No declared charset: UTF-8 when the bytes are valid UTF-8, else a detector's guess
    (Resiliparse's uchardet; charset-normalizer if that is missing), else windows-1252."""
    sample = body[:1 << 16]
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as e:
        if e.start >= len(sample) - 4 and len(body) > len(sample):  # cut inside a character
            return "utf-8"
    try:
        from resiliparse.parse.encoding import detect_encoding
        guess = _codec(detect_encoding(sample))
    except ImportError:
        try:
            from charset_normalizer import from_bytes
            best = from_bytes(sample).best()
            guess = _codec(best.encoding) if best else None
        except ImportError:
            guess = None
    return guess or "cp1252"


def decode_html(body: bytes, http_charset: str | None) -> tuple[str, str, str]:
    """-> (text, codec, how): how is `bom`, `http`, `meta` or `detected`. A BOM wins (as in
    browsers), then the HTTP header's charset, then the page's <meta>, then detection. Bytes
    the codec cannot decode become U+FFFD."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                      (codecs.BOM_UTF16_BE, "utf-16-be")):
        if body.startswith(bom):
            return body[len(bom):].decode(name, "replace"), name, "bom"
    for how, label in (("http", http_charset), ("meta", meta_charset(body))):
        codec = _codec(label)
        if codec:
            return body.decode(codec, "replace"), codec, how
    codec = detect_charset(body)
    return body.decode(codec, "replace"), codec, "detected"


def binary_share(body: bytes) -> float:
    """Share of NUL and other C0 control bytes (not tab/newline/CR/FF/ESC) in the first 4 KiB."""
    head = body[:4096]
    if not head:
        return 0.0
    bad = sum(head.count(bytes([c])) for c in range(32) if c not in (9, 10, 12, 13, 27))
    return bad / len(head)


_TAG = re.compile(rb"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*?(/?)>")
# elements that have no end tag, or whose end tag a parser implies (not nesting in practice)
_NO_NEST = {b"area", b"base", b"br", b"col", b"embed", b"hr", b"img", b"input", b"link", b"meta", b"source",
            b"track", b"wbr", b"p", b"li", b"option", b"td", b"tr", b"th", b"dt", b"dd", b"param", b"keygen"}


def nesting_depth(body: bytes, stop_above: int) -> int:
    """The deepest element nesting in the markup (a tag scan, no parse); stops counting once
    over `stop_above`."""
    d = deepest = 0
    for m in _TAG.finditer(body):
        if m.group(3) or m.group(2).lower() in _NO_NEST:
            continue
        if m.group(1):
            d = d - 1 if d > 0 else 0
        else:
            d += 1
            if d > deepest:
                deepest = d
                if d > stop_above:
                    break
    return deepest


# ----------------------------------------------------------------------------- extraction

_MANY_BLANKS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAILING = re.compile(r"[ \t]+\n")


def tidy(text: str) -> str:
    text = _TRAILING.sub("\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _MANY_BLANKS.sub("\n\n", text).strip()


def _resiliparse(html: str, main_content: bool) -> tuple[str, str]:
    """-> (main text, whole visible text): one parse, two walks (the second only decides the
    cascade, and is cheap next to the parse)."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    opts = dict(preserve_formatting=True, list_bullets=True, alt_texts=False, links=False, form_fields=False,
                noscript=False, comments=False)
    main = extract_plain_text(tree, main_content=main_content, **opts)
    return main, tree


def _visible(tree) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(tree, main_content=False, preserve_formatting=False, list_bullets=False,
                              alt_texts=False, links=False, form_fields=False, noscript=False, comments=False)


def _trafilatura(html: str, fast: bool) -> str:
    import trafilatura

    out = trafilatura.extract(html, fast=fast, include_comments=False, include_tables=True, include_images=False,
                              include_links=False, include_formatting=False, deduplicate=False,
                              with_metadata=False, output_format="txt")
    return out or ""


class Extractor:
    """Holds the configuration; `extract(body, http_charset)` -> (text | None, rule | None, detail).
    `stats` counts per path taken (resiliparse, fallback, ...) for the run's counters."""

    def __init__(self, params: ExtractParams | None = None):
        self.p = params or ExtractParams()
        self.stats: dict[str, int] = {}

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def decode_and_check(self, body: bytes, http_charset: str | None) -> tuple[str | None, str | None, str]:
        if len(body) > self.p.max_html_bytes:
            return None, "too_large", f"HTML is {len(body)} bytes > max_html_bytes {self.p.max_html_bytes}"
        share = binary_share(body)
        if share > self.p.max_binary_share:
            return None, "binary", f"{share:.1%} control bytes in the first 4 KiB"
        if body.count(b"<") > self.p.depth_check_tags:
            depth = nesting_depth(body, self.p.max_depth)
            if depth > self.p.max_depth:
                return None, "too_deep", f"elements nested over {self.p.max_depth} deep"
        html, codec, how = decode_html(body, http_charset)
        self._count(f"charset_{how}")
        return html, None, codec

    def extract(self, body: bytes, http_charset: str | None = None) -> tuple[str | None, str | None, str | None]:
        html, rule, detail = self.decode_and_check(body, http_charset)
        if html is None:
            return None, rule, detail
        try:
            text = self.extract_str(html)
        except Exception as e:  # noqa: BLE001 - a parser that gives up on a page rejects that page
            return None, "extract_error", f"{type(e).__name__}: {str(e)[:200]}"
        if not text and not self.p.keep_empty:
            return None, "no_text", "no main text found"
        return text, None, None

    def extract_str(self, html: str) -> str:
        p = self.p
        if html.count("\x00"):
            html = html.replace("\x00", "")
        if not p.enabled:
            main, tree = _resiliparse(html, main_content=False)
            return tidy(main)
        if p.extractor == "trafilatura":
            self._count("trafilatura")
            return tidy(_trafilatura(html, p.trafilatura_fast))
        main, tree = _resiliparse(html, main_content=True)
        main = tidy(main)
        if p.extractor == "resiliparse":
            self._count("resiliparse")
            return main
        if self.unsure(main, tree, len(html)):
            self._count("fallback")
            try:
                alt = tidy(_trafilatura(html, p.trafilatura_fast))
            except Exception:  # noqa: BLE001 - keep the fast path's answer
                alt = ""
            if len(alt) > len(main):
                return alt
            self._count("fallback_kept_fast")
            return main
        self._count("resiliparse")
        return main

    def unsure(self, main: str, tree, html_chars: int) -> bool:
        if len(main) < self.p.min_chars:
            return True
        if len(main) >= SURE_SHARE_OF_HTML * html_chars:  # plenty kept: no second walk needed
            return False
        visible = len(_visible(tree))
        return visible > 0 and len(main) / visible < self.p.fallback_below_share
