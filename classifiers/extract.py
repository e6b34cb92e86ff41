"""HTML -> main text, and the bytes -> str decoding in front of it. No Beam import.

Three extractors over two well-kept Apache-2.0 libraries:
- `cascade` (default): one parse (Resiliparse's lexbor DOM, C++) and one walk over the page's
  visible text that skips the elements HTML marks as boilerplate (`BOILERPLATE`: `nav`, `header`,
  `footer`, `aside`, forms, the ARIA landmark roles of navigation, banner, footer, complementary
  content and search, hidden elements, and the common class/id names of sidebars, tables of
  contents, breadcrumbs, menus, comments, share bars and ads); Trafilatura only where that walk
  finds under `min_chars` characters (`unsure` below);
- `resiliparse`: Resiliparse's own main-content heuristics (`extract_plain_text(main_content=True)`;
  3x the walk's time on documentation pages, and lower F1 there);
- `trafilatura`: Trafilatura's `extract` (lxml; ~15x slower).
`bench/extract_eval.py` measures all of them.

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


# What the cascade's walk skips: CSS selectors (lexbor's) of boilerplate that HTML itself marks:
# HTML5 sectioning elements and ARIA landmarks for navigation and page chrome, hidden elements,
# and class/id names that mean navigation, sidebars, comments, sharing or ads in every CMS and
# documentation generator (a class selector matches a whole class token: `.nav` not `.navigable`)
BOILERPLATE = (
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "dialog",
    "[role=navigation]",
    "[role=banner]",
    "[role=contentinfo]",
    "[role=complementary]",
    "[role=search]",
    "[role=dialog]",
    "[aria-hidden=true]",
    "[hidden]",
    ".sidebar",
    "#sidebar",
    ".toc",
    "#toc",
    ".breadcrumb",
    ".breadcrumbs",
    ".menu",
    ".navbar",
    ".nav",
    ".footer",
    "#footer",
    ".related",
    ".comments",
    "#comments",
    ".share",
    ".social",
    ".advert",
    ".ad",
    ".ads",
    ".cookie-banner",
    ".skip-link",
)


class ExtractParams(BaseModel):
    """stages.extract: HTML records (WARC responses) -> main text."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True  # False: the page's whole visible text (resiliparse, main_content off)
    extractor: Literal["cascade", "resiliparse", "trafilatura"] = "cascade"
    # cascade: trafilatura runs where the walk's text is under this many characters (the page
    # keeps its text somewhere the walk does not reach: scripts, unusual markup)
    min_chars: int = Field(200, ge=0)
    trafilatura_fast: bool = False  # trafilatura without its own readability/justext fallbacks
    max_html_bytes: int = Field(4 * MiB, gt=0)  # a larger body is rejected extract/too_large, unparsed
    max_binary_share: float = Field(0.02, ge=0.0, le=1.0)  # control bytes in the first 4 KiB
    # element nesting beyond this is rejected extract/too_deep before parsing (resiliparse's time
    # grows with the square of the depth: 20,000 nested <div> take 1 s to parse, 16 s for its main-content walk);
    # real pages stay under 100. Checked only on pages of over `depth_check_tags` tags (~1.4 ms per 100 KB)
    max_depth: int = Field(1000, ge=1)
    depth_check_tags: int = Field(5000, ge=0)
    keep_empty: bool = False  # an extraction with no text is rejected extract/no_text unless True


# ----------------------------------------------------------------------------- decoding

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
_CT_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
# WHATWG Encoding: labels that browsers (and so page authors) treat as windows-1252
_HTML5_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "x-user-defined": "cp1252",
    "windows-874": "cp874",
    "iso-8859-9": "cp1254",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "big5": "big5hkscs",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "utf-16": "utf-8",
}  # utf-16 in meta: a lie
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
    sample = body[: 1 << 16]
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
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if body.startswith(bom):
            return body[len(bom) :].decode(name, "replace"), name, "bom"
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


# elements that have no end tag, or whose end tag a parser implies (not nesting in practice)
_NO_NEST = (
    b"area",
    b"base",
    b"br",
    b"col",
    b"embed",
    b"hr",
    b"img",
    b"input",
    b"link",
    b"meta",
    b"source",
    b"track",
    b"wbr",
    b"p",
    b"li",
    b"option",
    b"td",
    b"tr",
    b"th",
    b"dt",
    b"dd",
    b"param",
    b"keygen",
)
_NAME_BYTES = 8  # tag names compared on their first 8 bytes (every _NO_NEST name is shorter)


def nesting_depth(body: bytes) -> int:
    """The deepest element nesting in the markup, by a tag scan (no parse), vectorised (numpy;
    ~0.5 ms per 100 KB): `<name` opens a level, `</name` closes one (never above the top);
    void elements, those whose end tag a parser implies (p, li, td...) and tags ending `/>` do
    not nest."""
    import numpy as np

    a = np.frombuffer(body, dtype=np.uint8)
    n = len(a)
    lt = np.flatnonzero(a == 0x3C)
    lt = lt[lt + 2 < n]
    if not lt.size:
        return 0
    closing = a[lt + 1] == 0x2F
    start = lt + 1 + closing
    name = np.zeros((lt.size, _NAME_BYTES), dtype=np.uint8)
    going = np.ones(lt.size, dtype=bool)
    for k in range(_NAME_BYTES):  # the name's bytes, lower-cased, up to its first non-alphanumeric
        c = a[np.minimum(start + k, n - 1)] | 0x20
        going &= ((c >= 0x61) & (c <= 0x7A)) | ((c >= 0x30) & (c <= 0x39) & (k > 0))
        name[:, k] = np.where(going, c, 0)
    keys = name.view(np.uint64).ravel()
    is_tag = name[:, 0] != 0
    gt = np.flatnonzero(a == 0x3E)
    nxt = np.searchsorted(gt, lt)
    ends = nxt < gt.size
    self_closing = np.zeros(lt.size, dtype=bool)
    self_closing[ends] = a[gt[nxt[ends]] - 1] == 0x2F
    void = np.isin(keys, _no_nest_keys())
    nests = is_tag & ends & ~void & ~self_closing
    step = np.where(nests & ~closing, 1, 0) - np.where(nests & closing, 1, 0)
    level = np.cumsum(step)
    # a closing tag with nothing open does not go above the top: depth = level - lowest level so far
    depth = level - np.minimum.accumulate(np.minimum(level, 0))
    return int(depth.max())


def _no_nest_keys():
    import numpy as np

    return np.frombuffer(b"".join(t.ljust(_NAME_BYTES, b"\0") for t in _NO_NEST), dtype=np.uint64)


# ----------------------------------------------------------------------------- extraction

_MANY_BLANKS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAILING = re.compile(r"[ \t]+\n")


def tidy(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if " \n" in text or "\t\n" in text:
        text = _TRAILING.sub("\n", text)
    return _MANY_BLANKS.sub("\n\n", text).strip()


_WALK = dict(
    preserve_formatting=True,
    list_bullets=True,
    alt_texts=False,
    links=False,
    form_fields=False,
    noscript=False,
    comments=False,
)


def _resiliparse(html: str, main_content: bool, skip: tuple[str, ...] | None = None) -> str:
    """One parse, one walk: Resiliparse's main content, or the visible text less `skip`."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    return extract_plain_text(tree, main_content=main_content, skip_elements=list(skip) if skip else None, **_WALK)


def _trafilatura(html: str, fast: bool) -> str:
    import trafilatura

    out = trafilatura.extract(
        html,
        fast=fast,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
        include_formatting=False,
        deduplicate=False,
        with_metadata=False,
        output_format="txt",
    )
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
            depth = nesting_depth(body)
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
            return tidy(_resiliparse(html, main_content=False))
        if p.extractor == "trafilatura":
            self._count("trafilatura")
            return tidy(_trafilatura(html, p.trafilatura_fast))
        if p.extractor == "resiliparse":
            self._count("resiliparse")
            return tidy(_resiliparse(html, main_content=True))
        main = tidy(_resiliparse(html, main_content=False, skip=BOILERPLATE))
        if self.unsure(main):
            self._count("fallback")
            try:
                alt = tidy(_trafilatura(html, p.trafilatura_fast))
            except Exception:  # noqa: BLE001 - keep the fast path's answer
                alt = ""
            if len(alt) > len(main):
                return alt
            self._count("fallback_kept_fast")
            return main
        self._count("fast")
        return main

    def unsure(self, main: str) -> bool:
        return len(main) < self.p.min_chars
