"""The demo corpus, built at run time from text every machine with Python has: the standard
library's sources (code), `pydoc_data.topics` (English prose), and the system's translated
gettext catalogs under /usr/share/locale (other languages). Nothing is downloaded and no
third-party text lives in the repository. A few near-duplicates (2% of words edited) and two
unreadable records are added so that dedup and the quarantine show up in the summary.
"""

from __future__ import annotations

import ast
import gettext
import json
import random
import sysconfig
from pathlib import Path

import zstandard

from pipeline.config import DemoConfig, Source

LOCALE_DIR = Path("/usr/share/locale")
MESSAGES_PER_DOC = 20
VERSION = "5"  # bump when the demo's content changes


def _write(path: Path, records: list[dict | str]) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_bytes(zstandard.ZstdCompressor(level=6).compress(("\n".join(lines) + "\n").encode()))


def code_docs(n: int) -> list[dict]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p
        for p in stdlib.rglob("*.py")
        if p.is_file() and not {"test", "tests", "idlelib", "site-packages"} & set(p.relative_to(stdlib).parts)
    )
    files = files[:: max(1, len(files) // n)][:n] if n else []  # spread over the library
    out = []
    for p in files:
        rel = p.relative_to(stdlib).as_posix()
        out.append({"id": f"stdlib/{rel}", "text": p.read_text(encoding="utf-8", errors="replace"), "path": rel})
    return out


def _unwrap(text: str) -> list[str]:
    """Paragraphs of hard-wrapped text, each on one line; indented blocks (code) left out."""
    out = []
    for para in text.split("\n\n"):
        lines = [ln for ln in para.split("\n") if ln.strip()]
        if lines and not any(ln.startswith((" ", "\t", ">>>")) for ln in lines):
            out.append(" ".join(ln.strip() for ln in lines))
    return out


def prose_docs(n: int) -> list[dict]:
    """English prose: pydoc topics, then the standard library's longer docstrings, unwrapped
    (one paragraph a line, as web text is) and without their code examples."""
    from pydoc_data.topics import topics

    candidates = [(f"pydoc/{k}", topics[k]) for k in sorted(topics)]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for p in sorted(stdlib.rglob("*.py")):
        if {"test", "tests", "idlelib", "site-packages"} & set(p.relative_to(stdlib).parts):
            continue
        try:
            tree = ast.parse(p.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    name = ".".join(p.relative_to(stdlib).with_suffix("").parts)
                    candidates.append((f"docstring/{name}.{getattr(node, 'name', '')}", doc))
    out = []
    for doc_id, text in candidates:
        paras = [q for q in _unwrap(text) if "{" not in q]
        body = "\n".join(paras)
        if len(body.split()) >= 80:
            out.append({"id": doc_id, "text": body})
            if len(out) == n:
                break
    return out


def catalog_messages(lang_dir: Path) -> list[str]:
    msgs: set[str] = set()
    for mo in sorted((lang_dir / "LC_MESSAGES").glob("*.mo")):
        try:
            with open(mo, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog  # msgid -> translation
        except Exception:  # noqa: BLE001 - a broken system catalog is skipped, not fatal
            continue
        for k, v in cat.items():
            if (
                isinstance(k, str)
                and k
                and isinstance(v, str)
                and v != k
                and len(v) >= 25
                and "%" not in v
                and v[-1] in ".!?。！？।"
            ):  # sentences, not menu labels
                msgs.add(" ".join(v.split()))
    return sorted(msgs)


def multilingual_docs(per_language: int, languages: set[str] | None = None) -> list[dict]:
    """Up to `per_language` documents of MESSAGES_PER_DOC translated messages per locale
    (only locales whose language, the part before `_`, is in `languages` when given)."""
    out = []
    if not LOCALE_DIR.is_dir():
        return out
    for lang_dir in sorted(LOCALE_DIR.iterdir()):
        name = lang_dir.name
        if "@" in name or name.count("_") > 1 or not (lang_dir / "LC_MESSAGES").is_dir():
            continue
        if languages is not None and name.split("_")[0] not in languages:
            continue
        msgs = catalog_messages(lang_dir)
        random.Random(name).shuffle(msgs)
        for i in range(min(per_language, len(msgs) // MESSAGES_PER_DOC)):
            chunk = msgs[i * MESSAGES_PER_DOC : (i + 1) * MESSAGES_PER_DOC]
            out.append({"id": f"locale/{name}/{i}", "text": "\n".join(chunk), "lang": name})
    return out


def near_duplicate(doc: dict, rng: random.Random, edit_rate: float = 0.02) -> dict:
    words = doc["text"].split(" ")
    for _ in range(max(1, int(len(words) * edit_rate))):
        words[rng.randrange(len(words))] = rng.choice(["data", "the", "value", "new", "x"])
    return {**doc, "id": doc["id"] + "#near-dup", "text": " ".join(words)}


def build_demo(cfg: DemoConfig) -> list[Source]:
    root = Path(cfg.path)
    stamp = root / f"BUILT-v{VERSION}-{cfg.code_files}-{cfg.prose_docs}-{cfg.docs_per_language}"
    if not stamp.exists():
        root.mkdir(parents=True, exist_ok=True)
        rng = random.Random(0)
        prose = prose_docs(cfg.prose_docs)
        multi = multilingual_docs(cfg.docs_per_language)
        prose += [near_duplicate(d, rng) for d in prose[::20]]
        multi += [near_duplicate(d, rng) for d in multi[::25]]
        _write(root / "code.jsonl.zst", code_docs(cfg.code_files))
        _write(root / "prose.jsonl.zst", prose + ['{"id": "broken", "text": "unterminated', '{"id": "no-text"}'])
        _write(root / "multilingual.jsonl.zst", multi)
        for old in root.glob("BUILT-*"):
            old.unlink()
        stamp.write_text("ok\n")
    return [
        Source(name="demo-code", paths=[str(root / "code.jsonl.zst")], kind="code", path_field="path"),
        Source(name="demo-prose", paths=[str(root / "prose.jsonl.zst")]),
        Source(name="demo-multilingual", paths=[str(root / "multilingual.jsonl.zst")]),
    ]
