"""Main-text extraction: quality (mean F1 over word 4-shingles against a reference body) and speed
(pages/s on one core) of each extractor in classifiers/extract.py.

    python -m bench.extract_eval [--per-family 40] [--repeat 2] [--out bench/results/extract.md]

The dev set is real HTML documentation found on this machine, from generators whose layout puts
the page's main content in a known element, so the reference body is that element's text and
nobody tuned an extractor to it (pages whose reference is under 1,000 characters, mostly
tables of contents, module index pages and nodejs's all.html, every
other page in one, are left out):

| family | pages from | reference = text of |
| --- | --- | --- |
| mdbook | Rust's books (book, reference, nomicon, cargo, rustc, edition guide, ...; rustup's docs) | `<main>` |
| rustdoc | Rust's standard library API pages (rustup's docs) | `section#main-content` |
| nodejs | Debian's nodejs API docs (/usr/share/doc/nodejs/api) | `#apicontent` |
| docbook | Debian's valgrind manual (/usr/share/doc/valgrind/html) | `<body>` less its `table.nav` bars and `div.toc` |
| sphinx | Debian's Python docs (python3.11-doc; without them IDLE's help page) | `div[role=main]` |
| npm (held out) | npm's command docs (npm's docs/output) | `div#_content` |

The element's text is taken with scripts, styles, buttons and heading anchors (`¶`, `§`)
removed, a line break before and after every block element. npm is held out: no extraction
rule was written or checked against its pages. What this is not: news or blog articles with ads and comments (the public benchmark the
issue quotes); documentation pages have long sidebars and tables of contents as their boilerplate,
many code blocks and tables, and little text around the content. A family whose pages are missing
on a machine is left out (the table names the families measured).

Speed: extraction from the raw bytes (decoding included) over every page of the dev set, in
one process, best of --repeat passes; pages/s = pages / CPU seconds of that pass.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

RUST = sorted(
    glob.glob("/root/.rustup/toolchains/stable-*/share/doc/rust/html")
    + glob.glob(os.path.expanduser("~/.rustup/toolchains/stable-*/share/doc/rust/html"))
)
MDBOOKS = (
    "book",
    "reference",
    "nomicon",
    "cargo",
    "rustc",
    "edition-guide",
    "rust-by-example",
    "embedded-book",
    "unstable-book",
    "style-guide",
    "rustdoc",
    "clippy",
)


def _families() -> dict[str, tuple[list[str], str, list[str]]]:
    """family -> (files, XPath of the main element, XPaths removed inside it)."""
    fams: dict[str, tuple[list[str], str, list[str]]] = {}
    if RUST:
        root = RUST[0]
        files = sorted(
            p
            for b in MDBOOKS
            for p in glob.glob(f"{root}/{b}/**/*.html", recursive=True)
            if "print.html" not in p and "/searchindex" not in p
        )
        fams["mdbook"] = (files, "//main", [])
        fams["rustdoc"] = (
            sorted(
                p
                for p in glob.glob(f"{root}/std/**/*.html", recursive=True)
                if not p.endswith(("/all.html", "/index.html"))
            ),
            "//section[@id='main-content']",
            [],
        )
    fams["nodejs"] = (
        sorted(p for p in glob.glob("/usr/share/doc/nodejs/api/*.html") if not p.endswith("/all.html")),
        "//*[@id='apicontent']",
        [],
    )
    fams["docbook"] = (
        sorted(glob.glob("/usr/share/doc/valgrind/html/*.html")),
        "//body",
        [".//table[@class='nav']", ".//div[@class='toc']"],
    )
    import idlelib

    sphinx = sorted(glob.glob("/usr/share/doc/python3*/html/**/*.html", recursive=True))
    sphinx = [p for p in sphinx if "/whatsnew/" not in p and not p.endswith(("/genindex.html", "/search.html"))]
    fams["sphinx"] = (
        sphinx or [os.path.join(os.path.dirname(idlelib.__file__), "help.html")],
        "//div[@role='main']",
        [],
    )
    # held out (--holdout): a generator no rule was tuned on
    fams["npm"] = (
        sorted(glob.glob("/usr/lib/node_modules/npm/docs/output/**/*.html", recursive=True)),
        "//div[@id='_content']",
        [],
    )
    return {k: v for k, v in fams.items() if v[0]}


BLOCK = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "pre",
    "table",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "br",
    "hr",
    "header",
    "footer",
    "figure",
    "details",
    "summary",
    "td",
    "th",
    "caption",
    "figcaption",
}
DROP = ("script", "style", "noscript", "template", "button", "svg", "nav", "form", "input", "select", "textarea")


def reference_text(html: bytes, main_xpath: str, remove: list[str]) -> str | None:
    import lxml.html

    doc = lxml.html.fromstring(html)
    found = doc.xpath(main_xpath)
    if not found:
        return None
    el = found[0]
    for xp in remove:
        for x in el.xpath(xp):
            x.drop_tree()
    for x in el.iter(*DROP):
        x.drop_tree() if x.getparent() is not None else None
    for a in el.xpath(".//a[contains(@class,'headerlink') or contains(@class,'anchor') or text()='§' or text()='¶']"):
        if a.getparent() is not None:
            a.drop_tree()
    for x in el.iter():
        if isinstance(x.tag, str) and x.tag in BLOCK:  # a block starts and ends a line
            x.text = "\n" + (x.text or "")
            x.tail = "\n" + (x.tail or "")
    return re.sub(r"\n\s*\n+", "\n\n", el.text_content()).strip()


WORD = re.compile(r"\w+", re.UNICODE)


def shingles(text: str, n: int = 4) -> Counter:
    w = WORD.findall(text.lower())
    if len(w) < n:
        return Counter([tuple(w)]) if w else Counter()
    return Counter(tuple(w[i : i + n]) for i in range(len(w) - n + 1))


def f1(pred: str, ref: str) -> tuple[float, float, float]:
    p, r = shingles(pred), shingles(ref)
    if not p and not r:
        return 1.0, 1.0, 1.0
    if not p or not r:
        return 0.0, 0.0, 0.0
    tp = sum((p & r).values())
    prec, rec = tp / sum(p.values()), tp / sum(r.values())
    return (2 * prec * rec / (prec + rec) if tp else 0.0), prec, rec


def dev_set(per_family: int, min_ref_chars: int = 1000) -> list[dict]:
    pages = []
    for fam, (files, xp, remove) in _families().items():
        step = max(1, len(files) // (per_family * 3))
        taken = 0
        for path in files[::step]:
            if taken >= per_family:
                break
            body = Path(path).read_bytes()
            try:
                ref = reference_text(body, xp, remove)
            except Exception:  # noqa: BLE001 - a page lxml cannot read is not in the set
                continue
            if not ref or len(ref) < min_ref_chars:
                continue
            pages.append({"family": fam, "path": path, "body": body, "ref": ref})
            taken += 1
    return pages


EXTRACTORS = {
    "resiliparse": dict(extractor="resiliparse"),
    "trafilatura": dict(extractor="trafilatura"),
    "trafilatura (fast)": dict(extractor="trafilatura", trafilatura_fast=True),
    "cascade (default)": dict(),
}


def run(pages: list[dict], name: str, params: dict, repeat: int) -> dict:
    from classifiers.extract import Extractor, ExtractParams

    best, outs, stats = None, None, None
    for _ in range(repeat):
        ex = Extractor(ExtractParams(**params))
        t0 = time.process_time()
        got = [ex.extract(p["body"])[0] or "" for p in pages]
        dt = time.process_time() - t0
        if best is None or dt < best:
            best, outs, stats = dt, got, dict(ex.stats)
    scores = [f1(o, p["ref"]) for o, p in zip(outs, pages)]
    per_fam: dict[str, list[float]] = {}
    for s, p in zip(scores, pages):
        per_fam.setdefault(p["family"], []).append(s[0])
    n = len(pages)
    return {
        "name": name,
        "f1": sum(s[0] for s in scores) / n,
        "precision": sum(s[1] for s in scores) / n,
        "recall": sum(s[2] for s in scores) / n,
        "pages_per_s": n / best,
        "per_family": {k: sum(v) / len(v) for k, v in per_fam.items()},
        "stats": stats,
        "worst": sorted(zip((s[0] for s in scores), (p["path"] for p in pages)))[:3],
    }


def profile(pages: list[dict]) -> list[tuple[str, float]]:
    """CPU seconds per page of each step of the default path (one pass); in brackets, for
    comparison, the other extractors' main step timed on every page."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    from classifiers import extract as X

    steps: dict[str, float] = {}

    def timed(name, fn, *a, **k):
        t0 = time.process_time()
        out = fn(*a, **k)
        steps[name] = steps.get(name, 0.0) + time.process_time() - t0
        return out

    ex = X.Extractor()
    for p in pages:
        body = p["body"]
        timed("binary check", X.binary_share, body)
        n_tags = timed("tag count", body.count, b"<")
        if n_tags > ex.p.depth_check_tags:
            timed("depth scan (pages over depth_check_tags)", X.nesting_depth, body)
        html = timed("decode", X.decode_html, body, None)[0]
        tree = timed("resiliparse parse", HTMLTree.parse, html)
        main = timed(
            "visible walk less BOILERPLATE", extract_plain_text, tree, skip_elements=list(X.BOILERPLATE), **X._WALK
        )
        main = timed("tidy", X.tidy, main)
        timed("unsure test", ex.unsure, main)
        timed("(resiliparse main-content walk)", extract_plain_text, tree, main_content=True, **X._WALK)
        timed("(trafilatura)", X._trafilatura, html, False)
    return [(k, v / len(pages)) for k, v in steps.items()]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-family", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="extractor names to run")
    ap.add_argument("--out", default=None, help="write a Markdown table here")
    ap.add_argument("--profile", action="store_true", help="CPU time per page of each step of the default path")
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    pages = dev_set(a.per_family)
    fams = Counter(p["family"] for p in pages)
    print(
        f"dev set: {len(pages)} pages, {sum(len(p['body']) for p in pages) / len(pages) / 1024:.0f} KiB HTML"
        f" on average; {dict(fams)}",
        file=sys.stderr,
    )
    if a.profile:
        for name, sec in profile(pages):
            print(f"{name:32s} {sec * 1000:8.2f} ms/page")
        return
    results = []
    for name, params in EXTRACTORS.items():
        if a.only and name not in a.only:
            continue
        r = run(pages, name, params, a.repeat)
        results.append(r)
        print(
            f"{name:20s} F1 {r['f1']:.3f} (P {r['precision']:.3f} R {r['recall']:.3f})"
            f"  {r['pages_per_s']:7.1f} pages/s  "
            + " ".join(f"{k} {v:.3f}" for k, v in r["per_family"].items())
            + f"  {r['stats']}",
            file=sys.stderr,
        )
    lines = [
        f"Dev set: {len(pages)} pages ({', '.join(f'{k} {v}' for k, v in fams.items())}), "
        f"{sum(len(p['body']) for p in pages) / len(pages) / 1024:.0f} KiB of HTML on average.",
        "",
        "| extractor | F1 | precision | recall | pages/s (one core) | " + " | ".join(fams) + " |",
        "| --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in fams) + " |",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
            f"{r['pages_per_s']:.0f} | " + " | ".join(f"{r['per_family'].get(k, 0):.3f}" for k in fams) + " |"
        )
    table = "\n".join(lines)
    print(table)
    if a.out:
        Path(a.out).write_text("# Extraction (python -m bench.extract_eval)\n\n" + table + "\n")


if __name__ == "__main__":
    main()
