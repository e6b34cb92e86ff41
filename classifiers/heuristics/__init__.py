"""Heuristic quality filters: Gopher quality and repetition, C4, FineWeb, and code rules.

    result = evaluate(text, language="de", kind="text", params=HeuristicsParams())
    result.keep, result.rule        # True, None  /  False, "gopher_quality.word_count"
    result.signals                  # {"word_count": 212.0, "mean_word_length": 5.8, ...}

Pure functions of (text, language, kind, params). The signals are the numbers behind the
decision, keyed by the names in SIGNAL_NAMES (annotate mode writes one column per name; a
signal that was not computed, because its rule is off or does not apply, is absent).
`rule` is the first failing rule as "<rule set>.<rule>", in the order of RULE_NAMES;
`failed_rules` lists all of them. Natural-language rule sets run on `kind="text"`, the code
rules on `kind="code"`; neither runs on the other.

Language awareness: unspaced scripts (Chinese, Japanese, Thai, ...) are counted in words by a
characters-per-word figure; stop words come from a list for the document's language, or the
rule is skipped; sentence-final punctuation covers the scripts we see (。！？ ۔ ؟ । ។ ። ...),
and rules built on it are skipped for Thai and Lao, which end sentences with a space. See
textstats.py and stopwords.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from classifiers.heuristics.params import (
    C4Params,
    CodeParams,
    FineWebParams,
    GopherQualityParams,
    GopherRepetitionParams,
    HeuristicsParams,
)
from classifiers.heuristics.rules import CODE_RULE_SETS, STATS_FOR_KIND, TEXT_RULE_SETS
from classifiers.heuristics.stopwords import LANGUAGES_WITH_STOP_WORDS

__all__ = [
    "C4Params",
    "CodeParams",
    "FineWebParams",
    "GopherQualityParams",
    "GopherRepetitionParams",
    "HeuristicResult",
    "HeuristicsParams",
    "KINDS",
    "LANGUAGES_WITH_STOP_WORDS",
    "RULE_NAMES",
    "SIGNAL_NAMES",
    "evaluate",
]

KINDS = tuple(STATS_FOR_KIND)


def _ordered_unique(items):
    return tuple(dict.fromkeys(items))


_ALL_RULE_SETS = TEXT_RULE_SETS + CODE_RULE_SETS
SIGNAL_NAMES: tuple[str, ...] = _ordered_unique(rule.signal for _, rules in _ALL_RULE_SETS for rule in rules)
RULE_NAMES: tuple[str, ...] = tuple(f"{set_name}.{rule.name}" for set_name, rules in _ALL_RULE_SETS for rule in rules)


@dataclass(frozen=True, slots=True)
class HeuristicResult:
    rule: str | None  # first failing rule, "<rule set>.<rule>"; None: keep
    signals: dict[str, float]
    failed_rules: tuple[str, ...] = ()

    @property
    def keep(self) -> bool:
        return self.rule is None


def bounded(text: str, max_chars: int | None) -> tuple[str, float]:
    """`text`, or its first `max_chars` characters cut at a line break, with the length ratio."""
    if max_chars is None or len(text) <= max_chars:
        return text, 1.0
    cut = text.rfind("\n", max_chars // 2, max_chars)
    prefix = text[: cut if cut > 0 else max_chars]
    return prefix, len(text) / len(prefix)


def evaluate(
    text: str, language: str | None, kind: str, params: HeuristicsParams | None = None, first_failure_only: bool = False
) -> HeuristicResult:
    """Run every enabled rule set for `kind` ("text" or "code") on one document;
    `first_failure_only` stops at the first failing rule (filter mode needs no more: the
    verdict and its rule are the same, the signals and `failed_rules` are partial)."""
    if params is None:
        params = _DEFAULT_PARAMS
    try:
        stats_cls, _ = STATS_FOR_KIND[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}") from None
    signals: dict[str, float] = {}
    failed: list[str] = []
    if not params.enabled:
        return HeuristicResult(None, signals)
    text, scale = bounded(text, params.max_chars)
    stats = stats_cls(text, language, scale) if kind == "text" else stats_cls(text)
    for full_name, signal, compute, p, low, high, switch in _plan(params, kind):
        value = compute(stats, p)
        if value is None:
            continue
        value = float(value)
        signals[signal] = value
        # fails: on the wrong side of a threshold, or a switched-on signal that is not 0 (rules.py)
        if (switch and value != 0) or (low is not None and value < low) or (high is not None and value > high):
            failed.append(full_name)
            if first_failure_only:
                return HeuristicResult(full_name, signals, tuple(failed))
    return HeuristicResult(failed[0] if failed else None, signals, tuple(failed))


# The rules to run for (params, kind), with their thresholds read once: evaluate() is called
# per document with the same few params objects (the stage's), and reading ~30 thresholds
# through getattr for every document was a tenth of its time. Keyed by identity, holding the
# params object (so its id cannot be reused); params are not to be changed once in use.
_PLANS: dict[tuple[int, str], tuple[HeuristicsParams, tuple]] = {}


def _plan(params: HeuristicsParams, kind: str) -> tuple:
    entry = _PLANS.get((id(params), kind))
    if entry is not None and entry[0] is params:
        return entry[1]
    plan = []
    for set_name, rules in STATS_FOR_KIND[kind][1]:
        p = getattr(params, set_name)
        if not p.enabled:
            continue
        for rule in rules:
            bounds = rule.thresholds(p)
            if bounds is not None:
                plan.append((f"{set_name}.{rule.name}", rule.signal, rule.compute, p, *bounds))
    if len(_PLANS) >= 64:
        _PLANS.clear()
    _PLANS[id(params), kind] = (params, tuple(plan))
    return tuple(plan)


_DEFAULT_PARAMS = HeuristicsParams()
