"""Every heuristic signal and verdict, on real text in every language of the language-ID sample
and on the benchmark sample (prose, help pages, Python and Go code, near-duplicates), equals the
golden file recorded from the code before the heuristics were sped up (issue 18). Floats are
compared by repr, so "identical" means bit for bit.

The golden file, tests/data/heuristics-golden.json.zst, is regenerated (only when a change to
the signals is meant, and the diff then explained in the commit) with

    .venv/bin/python -m tests.test_heuristics_identical --regenerate

The cases (`cases()`): per language, one-line paragraphs of 5 sentences and multi-line documents
(lines of 2 sentences, a blank line every 3 lines, some lines repeated); every document of the
benchmark sample with its manifest language and kind; language tags in other spellings; a bounded
(`max_chars`) run; and small edge texts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import zstandard

from classifiers.heuristics import HeuristicsParams, evaluate
from tests.corpus import DATA, dev_sentences_by_language, paragraphs, sample_docs

GOLDEN = DATA / "heuristics-golden.json.zst"
PER_LANGUAGE = 12  # one-line paragraphs per language (of 5 sentences)
MULTILINE_PER_LANGUAGE = 4
_BOUNDED = HeuristicsParams(max_chars=2000)
EDGE_TEXTS = (
    "",
    " ",
    "\n\n\n",
    "a",
    "。",
    "...",
    "…",
    "lorem ipsum {",
    "# # # #",
    "- a\n- b\n- c",
    "Hello world.\nHello world.\n\nHello world.\n\nHello world.",
    "日本語の文です。これはテストです。",
    "한국어 문장입니다. 두 번째 문장.",
    "Τι κάνεις; Καλά είμαι; Ναι;",
    "ภาษาไทย ภาษาไทย ภาษาไทย",
    "\t\x0b\x0c\r\n\u2028\u2029\x85 mixed separators \u00a0 here.",
    "This site uses cookies to work. Read our privacy policy and the terms of use.\n"
    "We are a shop of fine things and we sell them to you at a fair price every day.",
    "Tags: # news # sport # music # film # art # books ... and more # here ... ok # yes",
    "x = 1\n" + "y = '" + "ab" * 600 + "'\n",
    "\n".join(f"v{i} = [" + ", ".join(f"'{w}'" for w in "alpha beta gamma".split() * 12) + "]" for i in range(5)),
)


def _multiline(sentences: list[str], start: int) -> str:
    chunk = sentences[start : start + 18]
    lines = [" ".join(chunk[i : i + 2]) for i in range(0, len(chunk), 2)]
    if len(lines) > 4:
        lines.insert(4, lines[1])  # a repeated line
    blocks = ["\n".join(lines[i : i + 3]) for i in range(0, len(lines), 3)]
    return "\n\n".join(blocks) + "\n"


def cases() -> Iterator[tuple[str, str, str | None, str, HeuristicsParams | None]]:
    """(case id, text, language, kind, params or None for the defaults)."""
    dev = dev_sentences_by_language()
    for lang in sorted(dev):
        sents = dev[lang]
        for i, (_, text) in enumerate(paragraphs({lang: sents}, 5)[:PER_LANGUAGE]):
            yield f"dev/{lang}/p5/{i}", text, lang, "text", None
        for i in range(MULTILINE_PER_LANGUAGE):
            yield f"dev/{lang}/ml/{i}", _multiline(sents, 18 * i), lang, "text", None
        yield f"dev/{lang}/nolang", " ".join(sents[:10]), None, "text", None
    for d in sample_docs():
        kind = "code" if d["category"] == "c_code" else "text"
        yield f"bench/{d['id']}", d["text"], d.get("lang"), kind, None
    for i, d in enumerate(d for d in sample_docs() if len(d["text"]) > 4000):
        if i >= 40:
            break
        kind = "code" if d["category"] == "c_code" else "text"
        yield f"bounded/{d['id']}", d["text"], d.get("lang"), kind, _BOUNDED
    text = " ".join(dev["zh"][:20])
    for tag in ("zh-Hant", "ZH", "zh_CN", "  zh  ", "", "xx"):
        yield f"tag/{tag!r}", text, tag, "text", None
    for i, text in enumerate(EDGE_TEXTS):
        for lang in ("en", "ja", "th", "el", None):
            yield f"edge/{i}/{lang}", text, lang, "text", None
        yield f"edge/{i}/code", text, None, "code", None


def record(text: str, language: str | None, kind: str, params: HeuristicsParams | None) -> dict:
    r = evaluate(text, language, kind, params)
    fast = evaluate(text, language, kind, params, first_failure_only=True)
    return {
        "rule": r.rule,
        "failed": list(r.failed_rules),
        "first_only": fast.rule,
        "signals": {k: repr(v) for k, v in r.signals.items()},
    }


def compute() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for case_id, text, language, kind, params in cases():
        assert case_id not in out, case_id
        out[case_id] = record(text, language, kind, params)
    return out


def test_signals_and_verdicts_equal_the_golden_file():
    golden = json.loads(zstandard.ZstdDecompressor().decompress(GOLDEN.read_bytes()))
    got = compute()
    assert got.keys() == golden.keys()
    diffs = [(k, golden[k], got[k]) for k in golden if got[k] != golden[k]]
    assert not diffs, f"{len(diffs)} cases differ; first: {diffs[:3]}"
    # the cases exercise every rule (a golden file of all-keep documents would prove little)
    fired = {rule for v in golden.values() for rule in v["failed"]}
    from classifiers.heuristics import RULE_NAMES

    assert fired == set(RULE_NAMES), sorted(set(RULE_NAMES) - fired)
    assert len(golden) > 2000


def test_a_lone_surrogate_is_measured_not_raised():
    # JSON input can carry one ("\\ud800"); the code rules read the UTF-8 bytes
    r = evaluate("x = '\ud800' + 1\nprint(x)\n", None, "code")
    assert 0 < r.signals["data_char_fraction"] < 1 and 0 < r.signals["alphanumeric_fraction"] < 1


def test_the_compiled_word_pass_is_the_python_one():
    """The numba word pass (spaced scripts) gives the pure-Python pass's tuple, words included, and
    its per-line word counts (str.splitlines' line breaks, blank lines skipped), on
    every case text without an unspaced script, and on text made to hit the edges: Unicode
    whitespace, digits of other scripts, numerics that are not decimal, punctuation-only and
    underscore tokens, a lone surrogate, astral characters."""
    from classifiers.heuristics.textstats import TextStats

    texts = [text for _, text, _, _, _ in cases()]
    texts += [
        "",
        "   \t\n ",
        "a\u00a0b\u2003c\u3000d\x1ce\x85f",  # no-break, em and ideographic spaces, separators
        "٣٤ ৫ x² ½ Ⅻ __ _a_ -- «»… (1999) 3.5% #tag",
        "¿qué? «sí»—dijo, ‘bien’… “ok”",
        "x\ud800y \ud800 🙂 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈",
        "one two\r\nthree\r\r four\x0bfive\x0c\x1csix\u2028seven\u2029 \x85eight\n\n  \n",
        "\n\nlast line without a break",
        'End. Really?! "Yes." (No.) x.y ... Wait… 終わり。はい！！ «Fin.»\tok.) a.',
        "?)! no.)x end?",
        "fine。 right？！ ok｡ so。。",  # CJK full stops in text without an unspaced script
    ]
    checked = 0
    for text in texts:
        stats = TextStats(text, None)
        if stats.has_unspaced_script:
            continue
        assert (*stats._word_pass, stats.normalized_words) == stats._word_pass_python(), text[:80]
        assert stats.line_word_counts == stats._line_word_counts_python(), text[:80]
        assert stats._spaced_pass[3] == stats._sentence_ends_python(), text[:80]
        checked += 1
    assert checked > 2000


def test_the_compiled_unspaced_pass_is_the_python_one():
    """For text with an unspaced script, the numba pass gives the pure-Python word pass's tuple
    (_TOKEN_RE's tokens of the lower-cased text, words included), the regexes' count of each
    script's characters, line_word_count and line_length of every line, and the sentence-end
    regexes' count: on every case text with an unspaced script (Chinese, Japanese, Thai, Lao,
    Khmer, Myanmar, mixed), and on text made to hit the edges: punctuation glued before and after
    an unspaced character or to nothing, Latin words with capitals beside CJK (lower-casing that
    changes lengths: İ), half-width katakana, astral Han, Unicode line breaks and separators, a
    lone surrogate."""
    from classifiers.heuristics.textstats import TextStats

    texts = [text for _, text, _, _, _ in cases()]
    texts += [
        "中",
        "「中文」，（测试）。。。abc,def 中",
        "..中.. ..abc.. 。。 ，，中，，x",
        "İstanbul 東京 ĞÜŞ İİ 大阪。Straße ﬁ 京都！",
        "ｶﾀｶﾅ ｶﾅ｡ｶﾅ､ 𠀀𠀁 𪜀 ー・ヶ",
        "ภาษาไทย ๆ ภาษา\u2028ລາວ ພາສາ\u2029ខ្មែរ។ ၿမန်မာ။",
        "一行目\r\n二行目\r\r\n  \n三行目\x0b四\x0c五\x1c六\x85七\n\n",
        "中\ud800文 \ud800 x\ud800中",
        "日本語 abc123 x² ½ ٣ 文_字 __ -- 中-文",
        "   中   ",
        "\n\n中\n\n",
    ]
    checked = 0
    for text in texts:
        stats = TextStats(text, None)
        if not stats.has_unspaced_script:
            continue
        assert (*stats._word_pass, stats.normalized_words) == stats._word_pass_python(), text[:80]
        assert tuple(stats._unspaced_pass[2]) == stats._unspaced_chars_python(), text[:80]
        assert stats.line_word_counts == list(map(stats.line_word_count, stats.lines)), text[:80]
        assert stats.line_lengths == list(map(stats.line_length, stats.lines)), text[:80]
        assert stats.sentence_count is None or stats._unspaced_pass[6] == stats._sentence_ends_python(), text[:80]
        checked += 1
    assert checked >= 90


def test_the_compiled_data_count_is_the_regexes_one():
    """CodeStats' compiled count of literal data gives the regexes' fraction on every case text
    and on escapes and numbers at the edges (cut escapes, octal runs, separators, blobs)."""
    from classifiers.heuristics.codestats import CodeStats

    texts = [text for _, text, _, _, _ in cases()]
    texts += ["", "\\", "\\x", "\\x4", "1", "9,", "\\7,", "a1 _1 .5 é9 5.5.5 0x1F 12,34;", "\\\\x41"]
    texts += ["\\x41\\u12345\\U0001F600,\\0\\777\\8 " + "A" * 70 + " =+/" + "b" * 63 + " \ud800"]
    for text in texts:
        for scan in (None, 64):
            stats = CodeStats(text)
            assert stats.data_char_fraction(scan) == stats.data_char_fraction_regex(scan), text[:80]


def test_code_lines_are_measured_as_split_would():
    """CodeStats measures lines without splitting the text (and counts letters and digits in the
    same compiled pass): the same lengths, head of the file and share as str.split("\\n") and
    str.isalnum give, on every case text and at the edges (no line feed, a trailing one,
    non-ASCII, a lone surrogate, fewer lines than asked for)."""
    from classifiers.heuristics.codestats import CodeStats

    texts = [text for _, text, _, _, _ in cases()]
    texts += ["", "\n", "a", "a\n", "\nab\nc", "é\n\ud800x\nyz", "x" * 5 + "\n" * 3 + "y", "1\n2\n3\n4\n5\nGENERATED\n"]
    for text in texts:
        stats, lines = CodeStats(text), text.split("\n")
        assert stats.max_line_length == float(max(map(len, lines))), text[:60]
        assert stats.mean_line_length == (len(text) - (len(lines) - 1)) / len(lines), text[:60]
        if text:
            assert stats.alphanumeric_fraction == sum(map(str.isalnum, text)) / len(text), text[:60]
        for first in (1, 5, 50):
            head = "\n".join(lines[:first]).lower()
            for markers in (("generated",), ("do not edit", "auto-generated")):
                assert stats.has_autogenerated_marker(markers, first) == any(m in head for m in markers), text[:60]


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        raise SystemExit("usage: python -m tests.test_heuristics_identical --regenerate")
    blob = json.dumps(compute(), ensure_ascii=False, sort_keys=True).encode()
    GOLDEN.write_bytes(zstandard.ZstdCompressor(level=19).compress(blob))
    print(f"{GOLDEN}: {len(blob):,} bytes of JSON, {GOLDEN.stat().st_size:,} compressed")
