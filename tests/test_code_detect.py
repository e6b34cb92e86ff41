"""Code inside text sources: the detector (classifiers/code_detect.py) on real code and real prose,
the pipeline routing what it finds to the code bucket, `--input`/`--code` with several paths, and
the warning for mixture targets no source can feed. Real text from this machine only: the
standard library (code), pydoc topics and docstrings, the system's gettext catalogs (prose)."""

from __future__ import annotations

import json
import re
import sysconfig
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from classifiers.code_detect import SYNTAX_CHARS, detect_code, path_language, syntax_density
from pipeline.cli import main, parser, resolve_config
from pipeline.config import load_config
from pipeline.demo import code_docs, multilingual_docs, prose_docs
from tests.corpus import bench_docs, write_jsonl

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module")
def code():
    return code_docs(200)


@pytest.fixture(scope="module")
def prose():
    docs = [d["text"] for d in prose_docs(120)]
    docs += [d["text"] for d in multilingual_docs(4, {"de", "fr", "es", "ru", "ja", "zh", "ar", "pl", "tr", "vi"})]
    return docs


def test_standard_library_is_code_without_its_path(code):
    verdicts = [detect_code(d["text"]) for d in code]
    recall = sum(v.is_code for v in verdicts) / len(verdicts)
    assert recall >= 0.9, recall
    named = [v.language for v in verdicts if v.is_code]
    assert named.count("python") / len(named) >= 0.95


def test_with_a_path_the_extension_names_the_language(code):
    verdicts = [detect_code(d["text"], d["path"]) for d in code]
    assert sum(v.is_code for v in verdicts) / len(verdicts) >= 0.95
    assert {v.language for v in verdicts if v.is_code} == {"python"}
    assert path_language("src/main.go") == "go" and path_language("index.html") is None
    assert path_language("https://example.com/page.php?id=3") is None  # a web page is not evidence


def test_prose_is_rarely_taken_for_code(prose):
    assert len(prose) >= 140
    fp = [t[:80] for t in prose if detect_code(t).is_code]
    assert len(fp) / len(prose) <= 0.01, fp
    # a prose document named like code is still prose
    assert not detect_code(prose[0], "notes.py").is_code


def test_syntax_density_counts_characters_not_bytes(code, prose):
    """The one-pass count over UTF-8 bytes is the per-character definition, on real code, real
    prose in many scripts (the gettext catalogs) and text with tabs, lone surrogates and
    multi-byte characters around syntax characters."""

    def by_characters(text):
        n = sum(1 for ch in text if ch not in " \n\t")
        return sum(1 for ch in text if ch in SYNTAX_CHARS) / n if n else 0.0

    texts = (
        [d["text"][:6000] for d in code[:40]]
        + prose[:80]
        + [
            "",
            "   \n\t",
            "x = {ä: [1]};\tñ()\n",
            "\ud800(lone surrogate)$",
            "日本語{テキスト}_ü|ö&",
            "€" * 50 + "<>" + "\\",
        ]
    )
    for text in texts:
        assert syntax_density(text) == by_characters(text), text[:60]


def _whole_code_line():
    """_CODE_LINE with the alternative that looks_like_code tests without a regex: the definition."""
    from classifiers.code_detect import _CODE_LINE

    head = _CODE_LINE.pattern.rstrip()
    assert head.endswith(")")
    return re.compile(head[:-1] + r"| .*(?:[;{]|\)\s*:|=>|->)\s*$" + "\n)", re.VERBOSE)


_WHOLE_CODE_LINE = _whole_code_line()


def test_a_line_looks_like_code_as_the_whole_regex_says(code, prose):
    """looks_like_code (a statement's or block's end tested with rstrip and endswith, then the
    regex) answers as the one regex with that test as its last alternative: on every line of real
    code, prose and the benchmark sample, and on ends made to hit the edges (Unicode white space,
    `)` and `:` apart, a lone `:`, `=>` and `->` and their halves, a line break character)."""
    from classifiers.code_detect import looks_like_code

    lines = [ln for d in code + bench_docs(60) for ln in d["text"].split("\n")]
    lines += [ln for t in prose for ln in t.split("\n")]
    lines += [
        "x;",
        "x; \u2003",
        "f()  :",
        "f()\u00a0:\x1c",
        "f() x:",
        ":",
        ")",
        "a =>",
        "a = >",
        "a -",
        "-> \r",
        "{ \x0b",
    ]
    lines += ["", " ", "\u3000;", "(x):y", "g() : # no", "done;\x85", "x =\u2028>"]
    assert len(lines) > 50_000
    for line in lines:
        assert looks_like_code(line) == (_WHOLE_CODE_LINE.match(line) is not None), repr(line[:80])


def test_line_share_answers_as_the_share_does(code, prose):
    """LineShare stops scanning where its answer is decided; every answer, asked in any order
    and repeated, is the whole share's comparison: on real code, prose, the benchmark sample and
    texts at the edges (no lines, blank lines only, exactly at a threshold)."""
    import random

    from classifiers.code_detect import MAX_LINES, RULES, LineShare, body_of

    def code_line_share(text):  # the share, scanned whole
        lines = [ln for ln in text.split("\n", MAX_LINES)[:MAX_LINES] if ln.strip()]
        return sum(1 for ln in lines if _WHOLE_CODE_LINE.match(ln)) / len(lines) if lines else 0.0

    thresholds = sorted({r[0] for r in RULES} | {0.0, 0.1, 1.0, 1.5})
    texts = [body_of(d["text"]) for d in code[:60] + bench_docs(30)] + prose[:60]
    texts += ["", "\n\n  \n", "x = 1\nhello\n", "x = 1\ny = 2\nhello there\nfine words\n" * 3]
    rng = random.Random(7)
    for text in texts:
        share = code_line_share(text)
        asked = LineShare(text)
        order = thresholds * 2
        rng.shuffle(order)
        for t in order:
            assert asked.at_least(t) == (share >= t), (text[:60], t, share)


def test_shebang_scripts_are_code():
    v = detect_code("#!/usr/bin/env bash\nset -e\necho hello\n")
    assert v.is_code and v.language == "shell" and v.reason == "shebang"
    text = (STDLIB / "base64.py").read_text()  # starts "#! /usr/bin/env python3"
    v = detect_code(text)
    assert text.startswith("#!") and v.is_code and v.language == "python" and v.reason == "shebang"


def test_input_and_code_take_several_paths():
    args = parser().parse_args(
        [
            "run",
            "--input",
            "a.jsonl",
            "b.jsonl",
            "--input",
            "c.jsonl",
            "--code",
            "x.jsonl",
            "y.jsonl",
            "--set",
            "mode=filter",
        ]
    )
    config = resolve_config(args)
    src = {s.name: s for s in config.sources}
    assert src["input"].paths == ["a.jsonl", "b.jsonl", "c.jsonl"] and src["input"].kind == "text"
    assert src["code"].paths == ["x.jsonl", "y.jsonl"] and src["code"].kind == "code"
    assert src["code"].path_field == "path"


def test_warns_for_targets_no_source_can_feed():
    from pipeline.config import Source
    from pipeline.stages.mixture import unfed_targets

    config = load_config(None, ['stages.mixture.targets={"code": 0.2, "multilingual": 0.1, "de": 0.01, "xx": 0.01}'])
    only_code = config.model_copy(update={"sources": [Source(name="c", paths=["x"], kind="code")]})
    unfed = unfed_targets(only_code)
    assert [u.split()[0] for u in unfed] == ["multilingual", "de", "xx"]
    text = config.model_copy(update={"sources": [Source(name="t", paths=["x"])]})
    assert [u.split()[0] for u in unfed_targets(text)] == ["xx"]  # code comes from text by detection
    no_detect = load_config(None, ["stages.langid.detect_code=false", 'stages.mixture.targets={"code": 0.2}'])
    no_detect = no_detect.model_copy(update={"sources": [Source(name="t", paths=["x"])]})
    assert [u.split()[0] for u in unfed_targets(no_detect)] == ["code"]


@pytest.mark.slow
def test_code_mixed_into_a_text_source_reaches_the_code_bucket(tmp_path, code, capsys):
    """`--input` with two files (a shell-expanded glob): code files without a path among English
    prose; with the mixture off, what survives is what the routing and the filters decided."""
    files = [{"id": d["id"], "text": d["text"]} for d in code[:120]]
    english = prose_docs(120)
    write_jsonl(tmp_path / "a.jsonl", files[:60] + english[:60])
    write_jsonl(tmp_path / "b.jsonl", files[60:] + english[60:])
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                "--input",
                str(tmp_path / "a.jsonl"),
                str(tmp_path / "b.jsonl"),
                "--output",
                str(out),
                "--set",
                "stages.mixture.enabled=false",
            ]
        )
        == 0
    )
    assert "warning: mixture targets" not in capsys.readouterr().err
    t = (
        ds.dataset(out / "mixture", format="parquet", partitioning="hive")
        .to_table(columns=["id", "bucket", "language"])
        .to_pylist()
    )
    code_ids = {d["id"] for d in files}
    in_code = {r["id"] for r in t if r["bucket"] == "code"}
    reached = len(in_code & code_ids) / len(code_ids)
    print(f"\ncode files reaching the code bucket from a text source: {reached:.3f}")
    assert reached >= 0.8, reached
    assert not in_code - code_ids  # no prose in the code bucket
    assert {r["language"] for r in t if r["bucket"] == "code"} <= {"python", "unknown"}
    m = json.loads((out / "manifest.json").read_text())
    assert m["ledger"]["balanced"]
    rejected = ds.dataset(out / "rejected", format="parquet").to_table(columns=["id", "rule"]).to_pylist()
    prose_rules = [
        r
        for r in rejected
        if r["id"] in code_ids
        and (
            r["rule"].startswith("langid/")
            or (r["rule"].startswith("heuristics/") and not r["rule"].startswith("heuristics/code."))
        )
    ]
    # code is judged by the code rules: prose rules only see what the detector missed (data tables)
    assert len(prose_rules) <= 0.1 * len(code_ids), prose_rules[:5]


def test_keyword_patterns_skip_only_texts_they_cannot_match(code, prose):
    """The pre-filter (a pattern runs only where one of its required strings occurs, found by the
    needle kernel; where its gate matches) gives the regexes' own counts, and the patterns
    written for speed (`_at_word`) count what their plain `\\b` forms count: on the standard
    library, the benchmark sample's code and prose in many languages, and on texts made to hold
    a required string without a match, or a match only under re.IGNORECASE's folding (ſ matches
    s, K matches k), or a word glued to a word character (Unicode letters, digits, `_`). A
    line-anchored pattern (`^R`, counted as `\\nR`'s matches in "\\n" + text:
    langid._line_matches) gives the same counts too, also where its matches end just after a
    newline and the next starts there."""
    from classifiers.langid import _CONTENT_RULES, _CONTENT_TESTS, _at_word, _required_text, content_scores

    plain = {  # the patterns as `\b` regexes, and their rules' fast forms
        _at_word("self", r"\.\w+").pattern: r"\bself\.\w+",
        _at_word("None True False", r"\b").pattern: r"\bNone\b|\bTrue\b|\bFalse\b",
        _at_word("fmt errors strings os", r"\.[A-Z]\w*\(").pattern: r"\b(fmt|errors|strings|os)\.[A-Z]\w*\(",
        _at_word("nil", r"\b").pattern: r"\bnil\b",
        _at_word("malloc free printf sizeof NULL", r"\b").pattern: r"\b(malloc|free|printf|sizeof|NULL)\b",
        _at_word("document window", r"\.\w+").pattern: r"\b(document|window)\.\w+",
    }
    fast = [p.pattern for rules in _CONTENT_RULES.values() for p, _ in rules if "(?<!" in p.pattern]
    assert sorted(fast) == sorted(plain)

    def by_regex(head):
        scores = {}
        for lang, rules in _CONTENT_RULES.items():
            scores[lang] = 0.0
            for p, w in rules:
                scores[lang] += w * len(re.findall(plain.get(p.pattern, p.pattern), head, p.flags)) ** 0.5
        return scores

    required = {p.pattern: req for tests in _CONTENT_TESTS.values() for p, _, req, *_ in tests}
    anchored = [t for tests in _CONTENT_TESTS.values() for t in tests if t[4] is not None]
    assert len(anchored) >= 30 and all(t[4].pattern == "\n(?:" + t[0].pattern[1:] + ")" for t in anchored)
    assert not any(t[4] for t in _CONTENT_TESTS["go"] if "|^" in t[0].pattern)  # a second ^: as it is
    assert required[r"^package \w+\s*$"] == ("package ",)
    assert required[_at_word("malloc free printf sizeof NULL", r"\b").pattern] == (
        "malloc",
        "free",
        "printf",
        "sizeof",
        "NULL",
    )
    assert _required_text(re.compile(r"(a|b)c|x")) == ("c", "x")
    assert _required_text(re.compile(r"\d+|x")) is None  # a branch without a literal: no pre-filter
    assert sum(r is not None for r in required.values()) >= 0.9 * len(required)
    assert sum(t[5] is not None for tests in _CONTENT_TESTS.values() for t in tests) == 1  # TypeScript's
    texts = [d["text"][:2000] for d in code] + [d["text"][:2000] for d in bench_docs(30)] + prose
    texts += ["package main\nfunc main() {}\n", "x package y", "ſelect * from t\n", "<!doctype HTML>", "eCHO OFF"]
    # line-anchored matches back to back: `^\s*(fi|done|esac)\s*$` ends after a newline where a
    # blank line follows; at the very start; across \r\n and blank lines; `^\s*end\s*$` in a row
    texts += ["fi\n\nfi\n\n\ndone", "\nfi\n \nesac \n", "end\r\nend\n\n  end\n", "  import os\n\nimport re, sys\n"]
    texts += ["def f(x):\n\n\ndef g(y) -> int:\n\nclass A(B):\nelse:\n\n\n  finally:  \n"]
    # words glued to word characters, at the start, at the end, repeated back to back
    texts += ["nil", "xnil nil_ énil nil9 9nil _nil (nil) nilnil", "self.a myself.b _self.c éself.d self.self.e"]
    texts += ["os.Open( fmt.Println( xos.Open( errors.New(errors.New( strings.Map(", "NULL;sizeof(x) ÉNULL"]
    texts += ["None\nTrueFalse False_ (True)", "document.x window.y xdocument.z", "a : string, b:any; c :void"]
    texts += ["x: stringy, y: string: number", "ſelf.x ſizeof K"]
    for text in texts:
        assert content_scores(text) == by_regex(text), text[:80]


def test_needle_kernel_finds_what_in_finds(code, prose):
    """Which required strings occur, as the needle kernel answers it, is `in`'s answer: on real
    code and prose, on texts with the strings at the very start and end, cut short, in upper
    case (a folded string matches them only in the lower-cased text), and on text that is not
    ASCII (where every folded string counts as present: its pattern always runs there)."""
    from classifiers.langid import _NEEDLES, _present

    texts = [d["text"][:2000] for d in code[:80]] + prose[:60]
    texts += ["", "$", "%x%", "ECHO OFF", "Echo off", "<!DOCTYPE HTML>", "impl", "imp", "\udcff import java", "é$"]
    texts += [r for r, _ in _NEEDLES.ids] + [r.upper() for r, _ in _NEEDLES.ids] + [r[:-1] for r, _ in _NEEDLES.ids]
    assert len(_NEEDLES.ids) >= 100
    for text in texts:
        lower = text.lower() if text.isascii() else None
        present = _present(text)
        for (needle, folded), k in _NEEDLES.ids.items():
            expected = (needle in lower if lower is not None else True) if folded else needle in text
            assert bool(present >> k & 1) == expected, (text[:60], needle, folded)
