"""The rule tables: for every rule, the signal it reads, how that signal is computed and the
threshold that fails it. `evaluate` (in __init__) walks these tables; SIGNAL_NAMES and
RULE_NAMES are derived from them, so a rule cannot exist without its name and column.

A rule fails when its signal is on the wrong side of its threshold. A threshold of None
switches the rule off (and its signal is not computed, unless another rule needs it); a
signal of None means "does not apply to this document" (no stop-word list for the language,
no lines, a language without sentence-final punctuation) and the rule is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from classifiers.heuristics.codestats import CodeStats
from classifiers.heuristics.textstats import (
    BULLETS,
    DUPLICATE_NGRAM_SIZES,
    ELLIPSES,
    JAVASCRIPT,
    POLICY_PHRASES,
    TOP_NGRAM_SIZES,
    TextStats,
)

Stats = Any  # TextStats or CodeStats
Params = Any  # the rule set's params model


@dataclass(frozen=True)
class Rule:
    name: str
    signal: str
    compute: Callable[[Stats, Params], float | bool | int | None]
    low: str | None = None  # params field: fail if signal < it
    high: str | None = None  # params field: fail if signal > it
    switch: str | None = None  # params field (bool): fail if on and the signal is true

    def thresholds(self, p: Params) -> tuple[float | None, float | None, bool] | None:
        """(low, high, switch) from the params, or None if the rule is switched off."""
        low = getattr(p, self.low) if self.low else None
        high = getattr(p, self.high) if self.high else None
        switch = bool(getattr(p, self.switch)) if self.switch else False
        if low is None and high is None and not switch:
            return None
        return low, high, switch


def _share(flags: list[bool] | None) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _share_of_lines(s: TextStats, flags: Iterable[bool]) -> float | None:
    """Share of the lines whose flag (one per line of `s.lines`) is true."""
    return sum(flags) / len(s.lines) if s.lines else None


def _phrase_line_char_fraction(s: TextStats, phrases: tuple[str, ...]) -> float | None:
    """Share of the line characters in lines containing one of the (lower-case) phrases."""
    if not s.lines:
        return None
    lower = s.lower
    if not any(phrase in lower for phrase in phrases):
        return 0.0
    return s.line_char_fraction([any(ph in line.lower() for ph in phrases) for line in s.lines])


def _duplicate_fraction(pair: tuple[int, int], items: list[str]) -> float | None:
    return pair[0] / len(items) if items else None


def _duplicate_char_fraction(pair: tuple[int, int], text: str) -> float | None:
    """Characters of the repeated lines/paragraphs over the document's characters."""
    return pair[1] / len(text) if text else None


def _ngram_rule(name: str, kind: str, n: int) -> Rule:
    """A Gopher n-gram rule: its signal is one entry of TextStats.ngram_fractions (all sizes are
    computed in one climb; each rule reads its own, by a key made once here)."""
    key = (kind, n)
    return Rule(
        f"{name}_{n}gram",
        f"{name}_{n}gram_char_fraction",
        lambda s, p: s.ngram_fractions(p.ngram_word_limit)[key],
        high=f"max_{name}_{n}gram_char_fraction",
    )


def _top(n: int) -> Rule:
    return _ngram_rule("top", "top", n)


def _dup(n: int) -> Rule:
    return _ngram_rule("duplicate", "dup", n)


GOPHER_QUALITY: tuple[Rule, ...] = (
    Rule("word_count", "word_count", lambda s, p: s.word_count, low="min_words", high="max_words"),
    Rule(
        "mean_word_length",
        "mean_word_length",
        lambda s, p: s.mean_word_length,
        low="min_mean_word_length",
        high="max_mean_word_length",
    ),
    Rule(
        "symbol_word_ratio",
        "symbol_word_ratio",
        lambda s, p: (
            (s.text.count("#") + s.text.count("...") + s.text.count("…")) / s.word_count if s.word_count else None
        ),
        high="max_symbol_word_ratio",
    ),
    Rule(
        "bullet_lines",
        "bullet_line_fraction",
        lambda s, p: _share_of_lines(s, map(str.startswith, s.lines, repeat(BULLETS))),
        high="max_bullet_line_fraction",
    ),
    Rule(
        "ellipsis_lines",
        "ellipsis_line_fraction",
        lambda s, p: _share_of_lines(s, map(str.endswith, s.lines, repeat(ELLIPSES))),
        high="max_ellipsis_line_fraction",
    ),
    Rule("alpha_words", "alpha_word_fraction", lambda s, p: s.alpha_word_fraction, low="min_alpha_word_fraction"),
    Rule("stop_words", "stop_word_count", lambda s, p: s.stop_word_count, low="min_stop_words"),
)

GOPHER_REPETITION: tuple[Rule, ...] = (
    Rule(
        "duplicate_lines",
        "duplicate_line_fraction",
        lambda s, p: _duplicate_fraction(s.duplicate_lines, s.lines),
        high="max_duplicate_line_fraction",
    ),
    Rule(
        "duplicate_paragraphs",
        "duplicate_paragraph_fraction",
        lambda s, p: _duplicate_fraction(s.duplicate_paragraphs, s.paragraphs),
        high="max_duplicate_paragraph_fraction",
    ),
    Rule(
        "duplicate_line_chars",
        "duplicate_line_char_fraction",
        lambda s, p: _duplicate_char_fraction(s.duplicate_lines, s.text),
        high="max_duplicate_line_char_fraction",
    ),
    Rule(
        "duplicate_paragraph_chars",
        "duplicate_paragraph_char_fraction",
        lambda s, p: _duplicate_char_fraction(s.duplicate_paragraphs, s.text),
        high="max_duplicate_paragraph_char_fraction",
    ),
    *(_top(n) for n in TOP_NGRAM_SIZES),
    *(_dup(n) for n in DUPLICATE_NGRAM_SIZES),
)

C4: tuple[Rule, ...] = (
    Rule("lorem_ipsum", "has_lorem_ipsum", lambda s, p: "lorem ipsum" in s.lower, switch="drop_lorem_ipsum"),
    Rule("curly_bracket", "has_curly_bracket", lambda s, p: "{" in s.text, switch="drop_curly_bracket"),
    Rule(
        "terminal_punct_lines",
        "unpunctuated_line_char_fraction",
        lambda s, p: s.line_char_fraction(
            None if s.terminal_punct_line_flags is None else [not f for f in s.terminal_punct_line_flags]
        ),
        high="max_unpunctuated_line_char_fraction",
    ),
    Rule(
        "javascript_lines",
        "javascript_line_char_fraction",
        lambda s, p: _phrase_line_char_fraction(s, (JAVASCRIPT,)),
        high="max_javascript_line_char_fraction",
    ),
    Rule(
        "policy_lines",
        "policy_line_char_fraction",
        lambda s, p: _phrase_line_char_fraction(s, POLICY_PHRASES),
        high="max_policy_line_char_fraction",
    ),
    Rule(
        "short_lines",
        "few_words_line_char_fraction",
        lambda s, p: s.line_char_fraction([n < p.min_words_per_line for n in s.line_word_counts]),
        high="max_few_words_line_char_fraction",
    ),
    Rule("min_sentences", "sentence_count", lambda s, p: s.sentence_count, low="min_sentences"),
)

FINEWEB: tuple[Rule, ...] = (
    Rule(
        "line_punct_ratio",
        "terminal_punct_line_fraction",
        lambda s, p: _share(s.terminal_punct_line_flags),
        low="min_line_punct_ratio",
    ),
    Rule(
        "duplicate_line_chars",
        "duplicate_line_char_fraction",
        lambda s, p: _duplicate_char_fraction(s.duplicate_lines, s.text),
        high="max_duplicate_line_char_fraction",
    ),
    Rule(
        "short_lines",
        "short_line_fraction",
        lambda s, p: _share_of_lines(s, (n < p.short_line_chars for n in s.line_lengths)),
        high="max_short_line_fraction",
    ),
)

CODE: tuple[Rule, ...] = (
    Rule(
        "autogenerated",
        "autogenerated",
        lambda s, p: s.has_autogenerated_marker(p.autogenerated_markers, p.autogenerated_lines),
        switch="autogenerated_markers",
    ),
    Rule("max_line_length", "max_line_length", lambda s, p: s.max_line_length, high="max_line_length"),
    Rule("mean_line_length", "mean_line_length", lambda s, p: s.mean_line_length, high="max_mean_line_length"),
    Rule(
        "alphanumeric_fraction",
        "alphanumeric_fraction",
        lambda s, p: s.alphanumeric_fraction,
        low="min_alphanumeric_fraction",
    ),
    Rule(
        "data_file",
        "data_char_fraction",
        lambda s, p: s.data_char_fraction(p.data_scan_chars),
        high="max_data_char_fraction",
    ),
)

# (rule set name = params field, rules), in evaluation order, per kind.
TEXT_RULE_SETS: tuple[tuple[str, tuple[Rule, ...]], ...] = (
    ("gopher_quality", GOPHER_QUALITY),
    ("gopher_repetition", GOPHER_REPETITION),
    ("c4", C4),
    ("fineweb", FINEWEB),
)
CODE_RULE_SETS: tuple[tuple[str, tuple[Rule, ...]], ...] = (("code", CODE),)
STATS_FOR_KIND = {"text": (TextStats, TEXT_RULE_SETS), "code": (CodeStats, CODE_RULE_SETS)}
