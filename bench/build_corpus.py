"""Build the benchmark corpora (cached under bench/.cache/, never committed).

    python -m bench.build_corpus [--out DIR] [--java-files N]     # the full race corpus
    python -m bench.build_corpus --scale SRC_DIR FACTOR [--parts N] --out DIR  # SRC repeated

The full corpus is real text only: 100,203 documents, 334 MB (Debian 12's package versions):

* a_multilingual: the language-ID dev set's sentences grouped into paragraph-documents (3-12
  consecutive sentences of one language, a line break every 4), the translated GNOME help pages
  (Mallard XML of Debian's gnome-user-docs, 42 locales) and LibreOffice help pages (10 languages:
  libreoffice-help-de, -fr, -es, -it, -pt, -ru, -ja, -zh-cn, -pl, -ko) as plain text;
* b_english: Python's documentation sources (python3.11-doc, one document per section),
  `pydoc_data.topics`, GNOME help (C locale), LibreOffice help (libreoffice-help-en-us),
  PostgreSQL 15 (postgresql-doc-15), git (git-doc), Perl (perl-doc, one document per =head1),
  the Debian Reference and Node.js API pages (one document per section);
* c_code: the Python 3.11 standard library, Go 1.19 `src/` (golang-1.19-src), Rust's library
  sources (rust-src), and a deterministic sample of OpenJDK 17's Java sources
  (openjdk-17-source);
* d_near_dup: copies of a deterministic 12% of the a/b documents with word edits
  (substitution, deletion, insertion, one of them per edit) at a known rate (1, 2, 3 or 5% of
  the words), each recorded with `dup_of` and `edit_rate`.

Debian packages are fetched with `apt-get download` (`apt-get update` runs once if a download
fails) and unpacked with `dpkg-deb -x`; nothing else is downloaded.

Layout (the same as ../shared/data/bench-corpus, so `bench.data` reads both):
`part-000NN.jsonl.zst` with {"id", "text", "category", "source", "lang"} per line, documents
spread over the parts in a deterministic shuffled order; `manifest.tsv.zst` (id, category,
source, lang, bytes, dup_of, edit_rate); `corpus_stats.json`.

The scale-up (`--scale`) repeats a corpus with new ids (`<id>~rK`), one output file per input
file and copy, so that memory can be measured at several corpus sizes with the same mix.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path

import zstandard

from bench.data import dev_sentences_by_language

CACHE = Path(__file__).resolve().parent / ".cache"
FULL_DIR = CACHE / "corpus-full"
DEB_DIR = CACHE / "debs"
PKG_DIR = CACHE / "pkgs"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
FORMAT_VERSION = 1  # bump when the corpus recipe changes: a cached corpus of another version is rebuilt

PACKAGES = {
    # package -> what it gives
    "golang-1.19-src": "Go 1.19 src/",
    "rust-src": "Rust library sources",
    "openjdk-17-source": "OpenJDK 17 src.zip",
    "python3.11-doc": "Python 3.11 documentation sources",
    "libreoffice-help-en-us": "LibreOffice help, en-US",
    **{
        f"libreoffice-help-{loc}": f"LibreOffice help, {loc}"
        for loc in ("de", "fr", "es", "it", "pt", "ru", "ja", "zh-cn", "pl", "ko")
    },
    "gnome-user-docs": "GNOME help, 43 locales",
    "debian-reference-en": "the Debian Reference",
    "postgresql-doc-15": "PostgreSQL 15 documentation",
    "git-doc": "git documentation",
    "perl-doc": "Perl documentation (pod)",
    "nodejs-doc": "Node.js 18 API documentation",
}

N_PARTS = 16
SEED = 1234
NEAR_DUP_SHARE = 0.12
EDIT_RATES = (0.01, 0.02, 0.03, 0.05)
MIN_DOC_CHARS = 200  # shorter sections are merged into the next one
MAX_SECTION_CHARS = 20_000  # a longer run of sections becomes a document of its own
JAVA_FILES = 3_000


# ------------------------------------------------------------------ small helpers


def h64(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big")


def doc(id_: str, text: str, category: str, source: str, lang: str) -> dict:
    return {"id": id_, "text": text, "category": category, "source": source, "lang": lang}


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def squeeze(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row, stripped."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    out: list[str] = []
    for ln in lines:
        if ln or (out and out[-1]):
            out.append(ln)
    return "\n".join(out).strip()


def merge_sections(
    sections: Iterable[str], min_chars: int = MIN_DOC_CHARS, max_chars: int = MAX_SECTION_CHARS
) -> list[str]:
    """Consecutive sections joined until a document holds at least `min_chars`; one longer than
    `max_chars` stays alone."""
    out, cur = [], ""
    for s in sections:
        s = s.strip()
        if not s:
            continue
        cur = f"{cur}\n\n{s}" if cur else s
        if len(cur) >= min_chars:
            out.append(cur)
            cur = ""
    if cur:
        if out and len(out[-1]) + len(cur) <= max_chars:
            out[-1] = f"{out[-1]}\n\n{cur}"
        else:
            out.append(cur)
    return out


# ------------------------------------------------------------------ Debian packages


def fetch_packages(names: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """package -> its unpacked root, fetching with `apt-get download` what is not cached."""
    DEB_DIR.mkdir(parents=True, exist_ok=True)
    PKG_DIR.mkdir(parents=True, exist_ok=True)
    roots = {}
    updated = False
    for name in names:
        root = PKG_DIR / name
        if (root / ".unpacked").exists():
            roots[name] = root
            continue
        debs = sorted(DEB_DIR.glob(f"{name}_*.deb"))
        if not debs:
            r = subprocess.run(["apt-get", "download", name], cwd=DEB_DIR, capture_output=True, text=True)
            if r.returncode != 0 and not updated:  # no package lists yet: fetch them once
                subprocess.run(["apt-get", "update"], capture_output=True, text=True)
                updated = True
                r = subprocess.run(["apt-get", "download", name], cwd=DEB_DIR, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(
                    f"apt-get download {name} failed ({r.stderr.strip()[-300:]}); check `apt-cache policy {name}`"
                )
            debs = sorted(DEB_DIR.glob(f"{name}_*.deb"))
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
        (root / ".unpacked").write_text(debs[-1].name)
        roots[name] = root
    return roots


# ------------------------------------------------------------------ HTML, Mallard, pod, rst


class _HtmlText(HTMLParser):
    """Visible text of an HTML page: navigation, scripts and styles skipped, a blank line
    around block elements, a section mark before h1-h3."""

    SKIP = {"script", "style", "head", "nav", "header", "aside", "footer", "noscript", "button", "title"}
    SKIP_CLASSES = {"navheader", "navfooter", "toc", "sphinxsidebar", "related", "footer"}
    BLOCK = {
        "p",
        "div",
        "li",
        "tr",
        "pre",
        "table",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "blockquote",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "br",
        "section",
        "article",
    }
    SECTION = {"h1", "h2", "h3"}
    MARK = "\x00SECTION\x00"

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip: list[str] = []  # stack of the open skipped elements' tags
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        if self.skip:
            if tag == self.skip[0]:
                self.skip.append(tag)
            return
        classes = set((dict(attrs).get("class") or "").split())
        if tag in self.SKIP or (tag == "div" and classes & self.SKIP_CLASSES):
            self.skip.append(tag)
            return
        if tag in self.SECTION:
            self.parts.append(self.MARK)
        if tag == "pre":
            self.pre += 1
        if tag in self.BLOCK:
            self.parts.append("\n")
        elif tag == "td":
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if self.skip:
            if tag == self.skip[0]:
                self.skip.pop()
            return
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if self.skip:
            return
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_sections(html: str) -> list[str]:
    p = _HtmlText()
    p.feed(html)
    p.close()
    return [squeeze(s) for s in "".join(p.parts).split(_HtmlText.MARK)]


MALLARD_BLOCKS = {"title", "desc", "p", "screen", "code", "td", "th", "cite"}


def mallard_text(xml: bytes) -> str:
    """Text of a Mallard help page: titles, paragraphs, list items and listings, without the
    <info> block (credits, links, licence)."""
    root = ET.fromstring(xml)

    def local(tag) -> str:
        return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""

    for parent in list(root.iter()):
        for child in list(parent):
            if local(child.tag) == "info":
                parent.remove(child)
    lines = []

    def walk(el):
        name = local(el.tag)
        if name in MALLARD_BLOCKS:
            text = "".join(el.itertext())
            text = text if name in ("screen", "code") else re.sub(r"\s+", " ", text)
            if text.strip():
                lines.append(text.strip("\n"))
            return
        for child in el:
            walk(child)

    walk(root)
    return "\n".join(lines).strip()


_POD_CODE = re.compile(r"[A-Z]<<+\s(.*?)\s>>+|[A-Z]<([^<>]*)>")


def pod_sections(pod: str) -> list[str]:
    """Plain text of a pod document, one section per =head1: commands become lines, formatting
    codes (B<...>, C<< ... >>, L<...>) their content."""
    sections: list[list[str]] = [[]]
    in_pod = True
    for line in pod.splitlines():
        if line.startswith("="):
            cmd, _, rest = line[1:].partition(" ")
            if cmd == "cut":
                in_pod = False
                continue
            in_pod = True
            if cmd == "head1":
                sections.append([])
            if cmd in ("head1", "head2", "head3", "head4", "item"):
                sections[-1].append(rest.strip())
            continue
        if not in_pod:
            continue
        for _ in range(3):  # nested codes
            line = _POD_CODE.sub(lambda m: (m.group(1) or m.group(2) or "").split("|")[0], line)
        sections[-1].append(line)
    return [squeeze("\n".join(s)) for s in sections]


_RST_UNDERLINE = re.compile(r"^([=\-~^*#\"'`+.])\1{2,}\s*$")


def rst_sections(text: str) -> list[str]:
    """An reStructuredText file cut before every section title (a line underlined, or over- and
    underlined, with a repeated punctuation character at least as long as the title)."""
    lines = text.splitlines()
    cuts = [0]
    for i in range(1, len(lines)):
        title = lines[i - 1].strip()
        if (
            title
            and _RST_UNDERLINE.match(lines[i])
            and len(lines[i].strip()) >= len(title)
            and not _RST_UNDERLINE.match(lines[i - 1])
        ):
            start = i - 2 if i >= 2 and _RST_UNDERLINE.match(lines[i - 2]) else i - 1
            if start > cuts[-1]:
                cuts.append(start)
    cuts.append(len(lines))
    return [squeeze("\n".join(lines[a:b])) for a, b in zip(cuts, cuts[1:])]


# ------------------------------------------------------------------ the sources


def lingua_docs(rng: random.Random) -> Iterator[dict]:
    by_lang = dev_sentences_by_language()
    for lang in sorted(by_lang):
        sents = by_lang[lang]
        i = n = 0
        while i < len(sents):
            k = rng.randint(3, 12)
            group = sents[i : i + k]
            i += k
            if len(group) < 3:
                break
            lines = [" ".join(group[j : j + 4]) for j in range(0, len(group), 4)]
            yield doc(f"lingua-{lang}-{n:05d}", "\n".join(lines), "a_multilingual", "lingua", lang)
            n += 1


def locale_language(locale: str) -> str:
    """GNOME help locale directory -> ISO 639-1 code (pt_BR -> pt, sr@latin -> sr, C -> en)."""
    if locale == "C":
        return "en"
    return re.split(r"[_@]", locale)[0]


def gnome_help_docs(root: Path) -> Iterator[dict]:
    base = root / "usr/share/help"
    for page in sorted(base.glob("*/*/*.page")):
        locale, guide = page.parent.parent.name, page.parent.name
        try:
            text = mallard_text(page.read_bytes())
        except ET.ParseError:
            continue
        if len(text) < 50:
            continue
        lang = locale_language(locale)
        cat = "b_english" if lang == "en" else "a_multilingual"
        yield doc(f"gnomehelp-{locale}-{guide}-{page.stem}", text, cat, f"gnome_help_{locale}", lang)


def python_doc_docs(root: Path) -> Iterator[dict]:
    base = next(root.glob("usr/share/doc/python3.11/html/_sources"))
    for f in sorted(base.rglob("*.rst.txt")):
        text = read_text(f)
        if not text:
            continue
        rel = str(f.relative_to(base))[: -len(".rst.txt")].replace("/", ".")
        for n, sec in enumerate(merge_sections(rst_sections(text))):
            yield doc(f"pydocs-{rel}-{n:03d}", sec, "b_english", "python_docs", "en")


def pydoc_topics_docs() -> Iterator[dict]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        text = squeeze(topics[name])
        if len(text) >= 50:
            yield doc(f"pydoc-{name}", text, "b_english", "pydoc_topics", "en")


def html_docs(root: Path, pattern: str, prefix: str, source: str, split: bool, lang: str = "en") -> Iterator[dict]:
    files = sorted(root.glob(pattern))
    base = root / pattern.split("*", 1)[0]
    for f in files:
        html = read_text(f)
        if not html:
            continue
        sections = html_sections(html)
        texts = merge_sections(sections) if split else [squeeze("\n\n".join(sections))]
        rel = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(f.relative_to(base)).rsplit(".", 1)[0])
        for n, text in enumerate(texts):
            if len(text) >= 100:
                cat = "b_english" if lang == "en" else "a_multilingual"
                yield doc(f"{prefix}-{rel}" + (f"-{n:03d}" if split else ""), text, cat, source, lang)


def git_doc_docs(root: Path) -> Iterator[dict]:
    for f in sorted(root.glob("usr/share/doc/git-doc/*.txt")):
        text = read_text(f)
        if text and len(text.strip()) >= 100:
            yield doc(f"gitdoc-{f.stem}", squeeze(text), "b_english", "git_doc", "en")


def perl_doc_docs(root: Path) -> Iterator[dict]:
    for f in sorted(root.glob("usr/share/perl/*/pod/*.pod")):
        text = read_text(f)
        if not text:
            continue
        for n, sec in enumerate(merge_sections(pod_sections(text))):
            yield doc(f"perldoc-{f.stem}-{n:03d}", sec, "b_english", "perl_doc", "en")


def code_docs(files: Iterable[tuple[str, str]], prefix: str, source: str, lang: str) -> Iterator[dict]:
    for rel, text in files:
        if text and text.strip() and "\x00" not in text:
            yield doc(f"{prefix}-{rel}", text, "c_code", source, lang)


def _tree_files(base: Path, suffix: str, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    for f in sorted(base.rglob(f"*{suffix}")):
        rel = str(f.relative_to(base))
        if f.is_file() and not any(s in rel for s in skip):
            yield rel, read_text(f)


def java_files(root: Path, n: int) -> Iterator[tuple[str, str]]:
    """A deterministic sample of n .java files (lowest hashes of their paths)."""
    z = zipfile.ZipFile(next(root.rglob("src.zip")))
    names = sorted((h64(i.filename), i.filename) for i in z.infolist() if i.filename.endswith(".java"))
    for _, name in sorted(names[:n], key=lambda t: t[1]):
        try:
            yield name, z.read(name).decode("utf-8")
        except UnicodeDecodeError:
            continue


def all_sources(roots: dict[str, Path], rng: random.Random, java: int) -> Iterator[dict]:
    yield from lingua_docs(rng)
    yield from gnome_help_docs(roots["gnome-user-docs"])
    yield from python_doc_docs(roots["python3.11-doc"])
    yield from pydoc_topics_docs()
    yield from html_docs(
        roots["libreoffice-help-en-us"],
        "usr/share/libreoffice/help/en-US/text/**/*.html",
        "lohelp",
        "libreoffice_help_en",
        split=False,
    )
    for name in sorted(roots):
        if name.startswith("libreoffice-help-") and name != "libreoffice-help-en-us":
            loc = name[len("libreoffice-help-") :]
            lo_dir = "zh-CN" if loc == "zh-cn" else loc
            yield from html_docs(
                roots[name],
                f"usr/share/libreoffice/help/{lo_dir}/text/**/*.html",
                f"lohelp{loc}",
                f"libreoffice_help_{loc}",
                split=False,
                lang=loc.split("-")[0],
            )
    yield from html_docs(
        roots["postgresql-doc-15"], "usr/share/doc/postgresql-doc-15/html/*.html", "pgdoc", "postgresql_doc", split=True
    )
    yield from html_docs(
        roots["debian-reference-en"],
        "usr/share/doc/debian-reference-en/docs/*.en.html",
        "debref",
        "debian_reference",
        split=True,
    )
    yield from html_docs(roots["nodejs-doc"], "usr/share/doc/nodejs/api/*.html", "nodedoc", "nodejs_doc", split=True)
    yield from git_doc_docs(roots["git-doc"])
    yield from perl_doc_docs(roots["perl-doc"])
    yield from code_docs(_tree_files(STDLIB, ".py", ("site-packages",)), "py", "python_stdlib", "python")
    go = next(roots["golang-1.19-src"].glob("usr/share/go-1.19/src"))
    yield from code_docs(_tree_files(go, ".go"), "go", "golang_src", "go")
    rust = next(roots["rust-src"].glob("usr/lib/rustlib/src/rust"))
    yield from code_docs(_tree_files(rust, ".rs"), "rs", "rust_src", "rust")
    yield from code_docs(java_files(roots["openjdk-17-source"], java), "java", "openjdk_src", "java")


# ------------------------------------------------------------------ near duplicates


_WORD = re.compile(r"\S+")


def edit_words(text: str, rate: float, rng: random.Random) -> str:
    """Edit round(rate x words) whitespace-separated words (at least one): each edit substitutes
    another word of the document, deletes the word, or inserts a word of the document after it."""
    spans = [m.span() for m in _WORD.finditer(text)]
    if not spans:
        return text
    n = max(1, round(rate * len(spans)))
    vocab = [text[a:b] for a, b in spans]
    targets = set(rng.sample(range(len(spans)), min(n, len(spans))))
    out, last = [], 0
    for i, (a, b) in enumerate(spans):
        out.append(text[last:a])
        word = text[a:b]
        if i in targets:
            op = rng.randrange(3)
            if op == 0:
                word = rng.choice(vocab)
            elif op == 1:
                word = ""
            else:
                word = f"{word} {rng.choice(vocab)}"
        out.append(word)
        last = b
    out.append(text[last:])
    return "".join(out)


def near_dups(docs: list[dict], rng: random.Random, share: float = NEAR_DUP_SHARE) -> list[dict]:
    out = []
    for d in docs:
        if d["category"] not in ("a_multilingual", "b_english"):
            continue
        if h64(f"near-dup:{d['id']}") / 2**64 >= share:
            continue
        rate = rng.choice(EDIT_RATES)
        nd = doc(f"neardup-{len(out):06d}", edit_words(d["text"], rate, rng), "d_near_dup", d["source"], d["lang"])
        nd["dup_of"], nd["edit_rate"] = d["id"], rate
        out.append(nd)
    return out


# ------------------------------------------------------------------ writing


def write_corpus(docs: list[dict], dest: Path, parts: int = N_PARTS, extra_stats: dict | None = None) -> dict:
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("part-*.jsonl.zst"):
        old.unlink()
    order = sorted(range(len(docs)), key=lambda i: h64(f"order:{docs[i]['id']}"))
    cctx = zstandard.ZstdCompressor(level=3)
    files = []
    manifest = io.StringIO()
    manifest.write("id\tcategory\tsource\tlang\tbytes\tdup_of\tedit_rate\n")
    by_cat: dict[str, Counter] = {}
    for p in range(parts):
        idx = order[p::parts]
        raw = "".join(
            json.dumps({k: docs[i][k] for k in ("id", "text", "category", "source", "lang")}, ensure_ascii=False) + "\n"
            for i in idx
        ).encode()
        path = dest / f"part-{p:05d}.jsonl.zst"
        path.write_bytes(cctx.compress(raw))
        files.append({"file": path.name, "docs": len(idx), "jsonl_bytes": len(raw), "zst_bytes": path.stat().st_size})
    for d in sorted(docs, key=lambda d: d["id"]):
        n = len(d["text"].encode())
        c = by_cat.setdefault(d["category"], Counter())
        c["docs"] += 1
        c["text_bytes"] += n
        manifest.write(
            f"{d['id']}\t{d['category']}\t{d['source']}\t{d['lang']}\t{n}\t"
            f"{d.get('dup_of', '')}\t{d.get('edit_rate', '')}\n"
        )
    (dest / "manifest.tsv.zst").write_bytes(cctx.compress(manifest.getvalue().encode()))
    text_bytes = sum(c["text_bytes"] for c in by_cat.values())
    stats = {
        "format_version": FORMAT_VERSION,
        "seed": SEED,
        "docs": len(docs),
        "text_bytes": text_bytes,
        "text_mb": round(text_bytes / 1e6, 2),
        "files": files,
        "by_category": {
            k: {"docs": v["docs"], "text_mb": round(v["text_bytes"] / 1e6, 3)} for k, v in sorted(by_cat.items())
        },
        "by_source": dict(
            sorted(Counter(re.sub(r"^(gnome_help|libreoffice_help)_.*", r"\1", d["source"]) for d in docs).items())
        ),
        "n_languages": len({d["lang"] for d in docs if d["category"] in ("a_multilingual", "b_english")}),
        **(extra_stats or {}),
    }
    (dest / "corpus_stats.json").write_text(json.dumps(stats, indent=1))
    return stats


def build_full(dest: Path = FULL_DIR, java: int = JAVA_FILES) -> dict:
    """Build the full race corpus unless an up-to-date one is cached; return its stats."""
    stats_path = dest / "corpus_stats.json"
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
        if stats.get("format_version") == FORMAT_VERSION and stats.get("java_files") == java:
            return stats
    roots = fetch_packages()
    rng = random.Random(SEED)
    docs, seen = [], set()
    for d in all_sources(roots, rng, java):
        if d["id"] in seen:  # ids are unique by construction; guard against a path collision
            d["id"] = f"{d['id']}~{len(docs)}"
        seen.add(d["id"])
        docs.append(d)
    docs += near_dups(docs, rng)
    return write_corpus(
        docs,
        dest,
        extra_stats={"java_files": java, "packages": {n: (PKG_DIR / n / ".unpacked").read_text() for n in PACKAGES}},
    )


def build_scaled(src: Path, factor: int, dest: Path, parts: int | None = None) -> dict:
    """The first `parts` files of `src` (all if None) repeated `factor` times with new ids
    (`<id>~rK`; copy 0 keeps the original ids), copy K of file F written to `part-KKK-F`.
    Cached: a complete copy made with the same arguments is reused."""
    stats_path = dest / "scale_stats.json"
    files = sorted(src.glob("part-*.jsonl.zst"))[:parts]
    key = {"src": str(src), "files": [f.name for f in files], "factor": factor}
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
        if all(stats.get(k) == v for k, v in key.items()):
            return stats
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("part-*.jsonl.zst"):
        old.unlink()
    cctx, dctx = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    docs = text_bytes = 0
    for f in files:
        with f.open("rb") as fh:
            # split on "\n" only: str.splitlines would also cut at U+2028 inside a JSON string
            lines = io.TextIOWrapper(dctx.stream_reader(fh), encoding="utf-8", newline="").read().split("\n")
        records = [json.loads(ln) for ln in lines if ln]
        docs += len(records)
        text_bytes += sum(len(r["text"].encode()) for r in records)
        for k in range(factor):
            out = "".join(
                json.dumps({**r, "id": r["id"] if k == 0 else f"{r['id']}~r{k}"}, ensure_ascii=False) + "\n"
                for r in records
            )
            (dest / f"part-{k:03d}-{f.name[len('part-') :]}").write_bytes(cctx.compress(out.encode()))
    stats = {
        **key,
        "docs": docs * factor,
        "text_bytes": text_bytes * factor,
        "text_mb": round(text_bytes * factor / 1e6, 2),
        "n_files": len(files) * factor,
    }
    stats_path.write_text(json.dumps(stats, indent=1))
    return stats


def corpus_size(directory: Path) -> tuple[int, int]:
    """(documents, text bytes) of a corpus directory, from its stats file or by reading it."""
    for name in ("corpus_stats.json", "scale_stats.json"):
        p = directory / name
        if p.exists():
            s = json.loads(p.read_text())
            return s["docs"], s.get("text_bytes") or int(s["text_mb"] * 1e6)
    raise FileNotFoundError(f"{directory} has no corpus_stats.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--java-files", type=int, default=JAVA_FILES)
    ap.add_argument("--scale", nargs=2, metavar=("SRC_DIR", "FACTOR"))
    ap.add_argument("--parts", type=int, help="with --scale: only the first PARTS files of SRC_DIR")
    args = ap.parse_args(argv)
    if args.scale:
        src, factor = Path(args.scale[0]), int(args.scale[1])
        stats = build_scaled(src, factor, args.out or CACHE / f"scale-{src.name}-x{factor}", args.parts)
    else:
        stats = build_full(args.out or FULL_DIR, args.java_files)
    print(json.dumps({k: v for k, v in stats.items() if k != "files"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
