"""Precision and recall of the code detector (classifiers/code_detect.py) on real code and real
prose, and its speed.

    python -m bench.code_detect_eval [--quick]

Code (positives), every file as one document, its path withheld unless stated:
  * Python: the standard library's .py files (tests and idlelib excluded);
  * C: /usr/include headers, .c files under /usr/share/doc (Debian packages' examples) and the
    Python installations' C sources found on the machine; C++: .cpp/.hpp files on the machine;
  * Go, shell, Perl, JavaScript, TypeScript: what the machine holds (/usr/share/doc, /usr/bin
    scripts, /usr/share/perl, site-packages), minified files (average line > 300 chars) left out;
  * the benchmark corpus's c_code category (Python 3.11 stdlib, Go 1.19 src), as `--input`
    would see it (no path).
Prose (negatives):
  * pydoc topics as they are (documentation with code examples and grammar rules: the hard case),
    and unwrapped (pipeline.demo.prose_docs: paragraphs without their code examples);
  * the system's gettext catalogs, 20 messages a document (pipeline.demo.multilingual_docs);
  * the language-ID dev set's sentences as documents of 150+ words, 75 languages, and the
    benchmark corpus's b_english (GNOME and LibreOffice help, pydoc topics) and a_multilingual
    (../shared/data; skipped when absent).

Recall = code documents detected / code documents; false-positive rate = prose documents taken
for code / prose documents; precision over everything. Writes bench/results/code-detect.md.
"""

from __future__ import annotations

import argparse
import random
import sysconfig
import time
from collections import defaultdict
from pathlib import Path

from classifiers.code_detect import detect_code

RESULTS = Path(__file__).resolve().parent / "results" / "code-detect.md"
MAX_BYTES = 400_000


def _read(p: Path) -> str | None:
    try:
        if p.stat().st_size > MAX_BYTES or p.stat().st_size < 64:
            return None
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.count("\n") + 1
    if len(text) / lines > 300:  # minified
        return None
    return text


def _files(roots: list[str], patterns: list[str], limit: int, exclude=("test", "tests", "idlelib")) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        r = Path(root)
        if not r.is_dir():
            continue
        for pat in patterns:
            found += [p for p in r.rglob(pat) if p.is_file() and not set(exclude) & set(p.parts)]
    found = sorted(set(found))
    random.Random(0).shuffle(found)
    return found[:limit]


def _scripts(limit: int) -> list[Path]:
    out = []
    for p in sorted(Path("/usr/bin").iterdir()):
        try:
            with open(p, "rb") as f:
                head = f.read(64)
        except OSError:
            continue
        if head.startswith(b"#!") and (b"sh" in head.split(b"\n")[0]):
            out.append(p)
    random.Random(0).shuffle(out)
    return out[:limit]


def code_sets(n: int) -> dict[str, list[tuple[str, str]]]:
    """name -> [(path, text)]."""
    stdlib = sysconfig.get_paths()["stdlib"]
    sets = {
        "python (stdlib)": _files([stdlib], ["*.py"], n, exclude=("test", "tests", "idlelib", "site-packages")),
        "c (/usr/include headers)": _files(["/usr/include"], ["*.h"], n),
        "c (.c files on the machine)": _files(["/usr/share/doc", "/root/.pyenv", "/usr/src", "/usr/lib"], ["*.c"], n),
        "c++ (.cpp/.hpp on the machine)": _files(
            ["/usr/include", "/usr/share/doc", "/root/.pyenv", "/usr/lib"], ["*.cpp", "*.hpp", "*.cc"], n
        ),
        "go (/usr/share/doc)": _files(["/usr/share/doc", "/usr/lib/go", "/usr/share/go"], ["*.go"], n),
        "shell (/usr/bin scripts, *.sh)": _scripts(n // 2)
        + _files(["/etc", "/usr/share", "/root/.pyenv"], ["*.sh"], n // 2),
        "perl (*.pm, *.pl)": _files(
            ["/usr/share/perl", "/usr/share/perl5", "/usr/lib"], ["*.pm", "*.pl"], n, exclude=("unicore",)
        ),
        "javascript (*.js)": _files(
            [str(Path(stdlib).parent), "/usr/share/javascript", "/usr/share/doc"],
            ["*.js"],
            n,
            exclude=("node_modules",),
        ),
        "typescript (*.ts)": _files(["/usr/share", "/usr/lib", "/root/.pyenv"], ["*.ts"], n, exclude=("node_modules",)),
    }
    out = {}
    for name, paths in sets.items():
        docs = [(str(p), t) for p in paths if (t := _read(p)) is not None and t.strip()]
        if docs:
            out[name] = docs
    return out


def prose_sets(n: int) -> dict[str, list[str]]:
    from pydoc_data.topics import topics

    from pipeline.demo import multilingual_docs, prose_docs

    out = {
        "pydoc topics, as they are (with code examples)": [topics[k] for k in sorted(topics)][:n],
        "pydoc topics and docstrings, unwrapped (demo prose)": [d["text"] for d in prose_docs(n)],
        "gettext catalogs, 20 messages (demo multilingual)": [d["text"] for d in multilingual_docs(8)][: n * 4],
    }
    try:
        from bench.data import dev_sentences_by_language, long_documents

        out["langid dev set, 150+ words, 75 languages"] = [
            t for _, t in long_documents(dev_sentences_by_language(), min_words=150)
        ][: n * 4]
    except (OSError, FileNotFoundError):
        pass
    return out


def bench_corpus(n: int) -> tuple[list[str], list[str], list[str]]:
    """(code, english prose, multilingual prose) documents of the benchmark corpus."""
    try:
        from bench.data import iter_bench_corpus

        code, en, multi = [], [], []
        for rec in iter_bench_corpus():
            c = rec["category"]
            if c == "c_code" and len(code) < n:
                code.append(rec["text"])
            elif c == "b_english" and len(en) < n:
                en.append(rec["text"])
            elif c == "a_multilingual" and len(multi) < n:
                multi.append(rec["text"])
        return code, en, multi
    except (OSError, FileNotFoundError):
        return [], [], []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer documents per set")
    args = ap.parse_args()
    n = 150 if args.quick else 600
    rows = []  # (kind, name, docs, detected, seconds, extra)
    misses: dict[str, list[str]] = defaultdict(list)
    langs: dict[str, dict] = {}

    def run(kind, name, texts, paths=None):
        t0 = time.process_time()
        verdicts = [detect_code(t, p) for t, p in zip(texts, paths or [None] * len(texts))]
        dt = time.process_time() - t0
        hit = sum(v.is_code for v in verdicts)
        rows.append((kind, name, len(texts), hit, dt, sum(len(t) for t in texts)))
        counts: dict[str, int] = defaultdict(int)
        for t, v, p in zip(texts, verdicts, paths or [None] * len(texts)):
            if v.is_code:
                counts[v.language] += 1
            if v.is_code != (kind == "code") and len(misses[name]) < 5:
                misses[name].append((p or t[:60].replace("\n", " ")) + f" [{v.reason}]")
        langs[name] = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:4])

    for name, docs in code_sets(n).items():
        run("code", name, [t for _, t in docs])
        run("code", name + ", with its path", [t for _, t in docs], [p for p, _ in docs])
    bc_code, bc_en, bc_multi = bench_corpus(n * 4)
    if bc_code:
        run("code", "bench corpus c_code (stdlib + Go src), no path", bc_code)
    for name, texts in prose_sets(n).items():
        run("prose", name, texts)
    if bc_en:
        run("prose", "bench corpus b_english (GNOME/LibreOffice help, pydoc)", bc_en)
        run("prose", "bench corpus a_multilingual (dev set, 75 languages)", bc_multi)

    code_rows = [r for r in rows if r[0] == "code" and "with its path" not in r[1]]
    prose_rows = [r for r in rows if r[0] == "prose"]
    tp = sum(r[3] for r in code_rows)
    pos = sum(r[2] for r in code_rows)
    fp = sum(r[3] for r in prose_rows)
    neg = sum(r[2] for r in prose_rows)
    secs = sum(r[4] for r in rows)
    chars = sum(r[5] for r in rows)
    docs = sum(r[2] for r in rows)
    lines = [
        "# Code detector: precision and recall",
        "",
        "`python -m bench.code_detect_eval" + (" --quick" if args.quick else "") + "`"
        " (classifiers/code_detect.py; documents as a text source holds them, no path unless stated)",
        "",
        "| set | kind | documents | taken for code | rate | top languages named |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for kind, name, nd, hit, _, _ in rows:
        lines.append(
            f"| {name} | {kind} | {nd:,} | {hit:,} | {100 * hit / max(nd, 1):.1f}% |"
            f" {', '.join(f'{k} {v}' for k, v in langs[name].items())} |"
        )
    lines += [
        "",
        f"- recall (code, no path): **{100 * tp / max(pos, 1):.1f}%** ({tp:,} of {pos:,})",
        f"- false-positive rate (prose taken for code): **{100 * fp / max(neg, 1):.2f}%** ({fp:,} of {neg:,})",
        f"- precision over these sets: **{100 * tp / max(tp + fp, 1):.1f}%**",
        f"- speed: {docs / secs:,.0f} documents/s, {chars / secs / 1e6:.1f} M characters/s on one core"
        " (the head of each document only)",
        "",
        "Misses (first 5 per set):",
        "",
    ]
    for name, m in misses.items():
        for x in m:
            lines.append(f"- {name}: {x}")
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
