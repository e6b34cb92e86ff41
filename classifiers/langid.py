"""Language identification: fastText (lid.176 by default) for natural language, and a cheap
programming-language detector for `kind: code` documents.

Labels of any fastText LID model are normalised to ISO 639-1 where the language has a 639-1
code, else to ISO 639-3:
  * `__label__en` (lid.176, Wikipedia language codes) -> `en`
  * `__label__eng_Latn` (GlotLID, OpenLID: ISO 639-3 + ISO 15924 script) -> `en`; the script
    suffix is dropped, and the individual language that is the standard written form of a
    macrolanguage maps to the macrolanguage (`arb` -> `ar`, `zsm` -> `ms`, `cmn` -> `zh`, ...).
lid.176's quirky labels, decided here once:
  * `no` (trained on the Bokmål Wikipedia; ~90% of written Norwegian is Bokmål) -> `nb`.
    Nynorsk stays `nn`. Every Norwegian macrolanguage label (`no`, `nor`) becomes `nb`.
  * `sh` (Serbo-Croatian Wikipedia, mostly Latin script) -> the group label `hbs` (its
    ISO 639-3 code; 639-1 `sh` is withdrawn). At prediction time its probability is split over
    the configured members of the group {hr, sr, bs} in proportion to their own probabilities;
    with none of them configured the document stays `hbs`.
  * `als` is the Wikipedia code of Alemannic -> `gsw` (in ISO 639-3, `als` is Tosk Albanian,
    which is what GlotLID/OpenLID mean by `als_Latn` -> `sq`).
  * `zh`, `wuu` (Wu), `yue` (Cantonese) stay distinct: Wu and Cantonese are separate written
    languages. `label_aliases` merges them (or Egyptian `arz` into `ar`, ...) when wanted.

What `LanguageIdentifier.predict` adds to the raw top-1 of the model (each step measured by
`python -m bench.langid_eval`, results in bench/results/langid.md):
  1. the whole document is classified at once (fastText otherwise predicts per line): line
     breaks folded to spaces, long documents sampled to `max_chars` in `sample_windows`
     windows spread over the document, the text lower-cased;
  2. the top-k labels are normalised and merged (aliases sum their probabilities); `hbs`,
     when it or a configured member wins, is split over the configured members — this is
     what keeps Croatian paragraphs above their minimum score;
  3. orthography: when the top candidate's alphabet lacks letters that lower-case words of
     the text use (Serbian Cyrillic `ђ ћ ј` for Russian/Macedonian, `ř ů ě` for Slovak, `õ`
     for Finnish, `à è ò ç` for Spanish, kana for Chinese, ...) and a competitor is close,
     the ruled-out candidates are down-weighted before the argmax;
  4. optionally (`prefer_configured_ratio`, off by default: it raises accuracy on the
     configured languages but not once minimum scores apply, and leaks more unconfigured
     text) a configured language close behind an unconfigured top label takes its place;
  5. the lingua cascade (`cascade`, on by default; LinguaCascade): where fastText names a
     member of a group of languages it confuses (hr/sr/sl, cs/sk, da/nb/sv, es/ca, ...: measured,
     DEFAULT_CASCADE_GROUPS) without being sure of it, or is unsure of any language,
     lingua-language-detector decides among the group's configured languages (or fastText's
     candidates), on at most `cascade_max_chars` of the same windows; the score is lingua's
     confidence times fastText's probability of the group. `Prediction.model` says which model
     decided (the stage's `language_model` column). lingua runs on ~13% of 500-word documents
     and of paragraphs and takes ~10% of the stage's CPU time (bench/results/langid.md).
Scores are probabilities clamped to [0, 1] (the quantised .ftz returns up to 1.0001).

No Beam import here: the stage in pipeline/stages/langid.py wraps this module.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from classifiers.kernels import kernels

BUNDLED_MODEL = Path(__file__).resolve().parent / "models" / "lid.176.ftz"
LABEL_PREFIX = "__label__"
UNDETERMINED = "und"  # ISO 639-2 code for "undetermined": empty text
OTHER_BUCKET = "other"

# --------------------------------------------------------------------------------------------
# Label normalisation
# --------------------------------------------------------------------------------------------

# ISO 639-1 -> ISO 639-3 (the macrolanguage code where the 639-1 code names a macrolanguage),
# all 183 current 639-1 codes (checked against the ISO 639-3 registration authority's tables).
_ISO_639_1_TO_3 = (
    "aa:aar ab:abk ae:ave af:afr ak:aka am:amh an:arg ar:ara as:asm av:ava ay:aym az:aze "
    "ba:bak be:bel bg:bul bi:bis bm:bam bn:ben bo:bod br:bre bs:bos ca:cat ce:che ch:cha co:cos "
    "cr:cre cs:ces cu:chu cv:chv cy:cym da:dan de:deu dv:div dz:dzo ee:ewe el:ell en:eng eo:epo "
    "es:spa et:est eu:eus fa:fas ff:ful fi:fin fj:fij fo:fao fr:fra fy:fry ga:gle gd:gla gl:glg "
    "gn:grn gu:guj gv:glv ha:hau he:heb hi:hin ho:hmo hr:hrv ht:hat hu:hun hy:hye hz:her ia:ina "
    "id:ind ie:ile ig:ibo ii:iii ik:ipk io:ido is:isl it:ita iu:iku ja:jpn jv:jav ka:kat kg:kon "
    "ki:kik kj:kua kk:kaz kl:kal km:khm kn:kan ko:kor kr:kau ks:kas ku:kur kv:kom kw:cor ky:kir "
    "la:lat lb:ltz lg:lug li:lim ln:lin lo:lao lt:lit lu:lub lv:lav mg:mlg mh:mah mi:mri mk:mkd "
    "ml:mal mn:mon mr:mar ms:msa mt:mlt my:mya na:nau nb:nob nd:nde ne:nep ng:ndo nl:nld nn:nno "
    "no:nor nr:nbl nv:nav ny:nya oc:oci oj:oji om:orm or:ori os:oss pa:pan pi:pli pl:pol ps:pus "
    "pt:por qu:que rm:roh rn:run ro:ron ru:rus rw:kin sa:san sc:srd sd:snd se:sme sg:sag si:sin "
    "sk:slk sl:slv sm:smo sn:sna so:som sq:sqi sr:srp ss:ssw st:sot su:sun sv:swe sw:swa ta:tam "
    "te:tel tg:tgk th:tha ti:tir tk:tuk tl:tgl tn:tsn to:ton tr:tur ts:tso tt:tat tw:twi ty:tah "
    "ug:uig uk:ukr ur:urd uz:uzb ve:ven vi:vie vo:vol wa:wln wo:wol xh:xho yi:yid yo:yor za:zha "
    "zh:zho zu:zul"
)
# ISO 639-2/B (bibliographic) codes that differ from the 639-3 ones, as some data sets use them.
_ISO_639_2B = (
    "tib:bo cze:cs wel:cy ger:de gre:el baq:eu per:fa fre:fr arm:hy ice:is geo:ka mac:mk mao:mi "
    "may:ms bur:my dut:nl rum:ro slo:sk alb:sq chi:zh"
)
# Individual languages that are the standard written form of a macrolanguage (the codes
# GlotLID, OpenLID and FLORES-200 use) -> the macrolanguage's 639-1 code. Dialects with their
# own written tradition (arz, ary, yue, wuu, azb, ckb, ...) keep their own code.
_STANDARD_VARIETIES = (
    "arb:ar pes:fa prs:fa zsm:ms cmn:zh ekk:et lvs:lv swh:sw npi:ne ory:or uzn:uz uzs:uz khk:mn "
    "plt:mg azj:az ydd:yi gaz:om quy:qu quz:qu pbt:ps als:sq kmr:ku fil:tl"
)


def _pairs(table: str) -> Iterable[tuple[str, str]]:
    for item in table.split():
        a, b = item.split(":")
        yield a, b


ISO_639_1_TO_3: dict[str, str] = dict(_pairs(_ISO_639_1_TO_3))
_ISO3_TO_CODE: dict[str, str] = {
    **{three: one for one, three in ISO_639_1_TO_3.items()},
    **dict(_pairs(_ISO_639_2B)),
    **dict(_pairs(_STANDARD_VARIETIES)),
}
# lid.176 uses Wikipedia language codes; these differ from ISO 639 (see the module docstring).
_LID176_QUIRKS = {"als": "gsw", "sh": "hbs"}
# The Norwegian macrolanguage is reported as Bokmål, whatever model said it.
_MACRO_AS = {"no": "nb"}
# Group labels: split over the configured member languages at prediction time.
GROUP_LABELS: dict[str, tuple[str, ...]] = {"hbs": ("hr", "sr", "bs")}

_SCRIPT_SUFFIXED = re.compile(r"^([a-z]{2,3})_[A-Z][a-z]{3}$")  # eng_Latn, zho_Hans, ...


def normalize_label(label: str) -> str:
    """A fastText LID label (with or without `__label__`) -> ISO 639-1 code where one exists,
    else ISO 639-3 (or the label itself for the few non-ISO codes lid.176 has, e.g. `eml`)."""
    code = label[len(LABEL_PREFIX) :] if label.startswith(LABEL_PREFIX) else label
    code = code.strip()
    m = _SCRIPT_SUFFIXED.match(code)
    if m:  # ISO 639-3 namespace: never apply the Wikipedia-code quirks
        code = m.group(1)
    else:
        code = code.lower().replace("-", "_")
        if "_" in code:  # a region or script suffix in lower case: pt_br, zh_hans
            code = code.split("_", 1)[0]
        code = _LID176_QUIRKS.get(code, code)
    if len(code) == 3:
        code = _ISO3_TO_CODE.get(code, code)
    return _MACRO_AS.get(code, code)


# --------------------------------------------------------------------------------------------
# Parameters and the bucket decision
# --------------------------------------------------------------------------------------------

# The default multilingual mix: English and 42 of the largest other languages of web crawls (the
# top of CulturaX's and FineWeb-2's size rankings) that lid.176 identifies. Malay (ms) is left
# out on purpose: lid.176 cannot tell it from Indonesian (0.11 of the dev set's Malay sentences,
# 0.03 of its paragraphs come out as ms; bench/results/langid.md), so an `ms` bucket would hold
# misidentified Indonesian. Add it with a model that separates them (GlotLID's zsm/ind, through
# `model_path`), with its own minimum score. A value is that
# language's own minimum score; None uses `default_min_score`. The explicit ones are the
# languages whose probability lid.176 splits with a close neighbour (hr/sr/bs, sl, nb/nn/da,
# ms/id when configured): the 2nd percentile of their correct 5-sentence paragraphs' scores, rounded down to
# 0.05 (measured by `python -m bench.langid_eval`, table "Minimum scores"), so that ~98% of
# their clean paragraphs pass. Every other language's 2nd percentile is above 0.55.
DEFAULT_LANGUAGES: dict[str, float | None] = {
    "en": None,
    "de": None,
    "fr": None,
    "es": None,
    "it": None,
    "pt": None,
    "nl": None,
    "ru": None,
    "pl": None,
    "uk": None,
    "cs": None,
    "sk": None,
    "sv": None,
    "da": None,
    "nb": 0.45,
    "fi": None,
    "et": None,
    "lv": None,
    "lt": None,
    "hu": None,
    "ro": None,
    "bg": None,
    "el": None,
    "tr": None,
    "az": None,
    "ar": None,
    "he": None,
    "fa": None,
    "hi": None,
    "bn": None,
    "ur": None,
    "ta": None,
    "id": None,
    "vi": None,
    "th": None,
    "zh": None,
    "ja": None,
    "ko": None,
    "ca": None,
    "hr": 0.4,
    "sr": None,
    "sl": 0.35,
    "sq": None,
}


# The 75 languages of lingua-language-detector 2.1 (ISO 639-1), a fact of the package, listed
# here so that configs are validated without importing it.
LINGUA_LANGUAGES = frozenset(
    "af ar az be bg bn bs ca cs cy da de el en eo es et eu fa fi fr ga gu he hi hr hu hy id is it "
    "ja ka kk ko la lg lt lv mi mk mn mr ms nb nl nn pa pl pt ro ru sk sl sn so sq sr st sv sw ta "
    "te th tl tn tr ts uk ur vi xh yo zh zu".split()
)
# Groups of languages that lid.176 (with our re-ranking) confuses: the connected sets of pairs
# where >= 2% of one side's dev-set sentences go to the other (`python -m bench.langid_eval`,
# "Cascade groups", lists every pair of >= 1% and these sets); lingua knows all of them. Left
# out: English, whose confusions are other languages' sentences quoting English (and which is
# half of web text); Bosnian, which lingua itself identifies in only 35-42% of its own test
# sentences (it calls them Croatian), so asking it would move Croatian to Bosnian, not the
# reverse; the languages lid.176 knows poorly (yo, so, sw, ga, la, cy), confused with many.
# Pairs of 1-2% (ca/fr, ca/it, ro/es, cs/pl, hi/mr, be/ru, sr/ru) are left out too: grouping
# them sends more documents to lingua and, measured, leaks more text of languages neither
# model knows (Occitan, Asturian, Friulian) into the Romance buckets, for no gain in accuracy.
# Only the configured members are asked unless `cascade_unconfigured` (so id/ms and af/nl act
# only when ms or af is configured).
DEFAULT_CASCADE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("hr", "sr", "sl", "mk"),
    ("ru", "bg", "mn"),
    ("cs", "sk"),
    ("da", "nb", "nn", "sv"),
    ("id", "ms"),
    ("es", "ca"),
    ("et", "fi"),
    ("az", "tr"),
    ("af", "nl"),
)


class LangIdParams(BaseModel):
    """Language ID of natural-language documents (code documents skip it; code found in a text
    source is routed to the code bucket first, see `detect_code`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # a fastText LID model (lid.176.bin, GlotLID, OpenLID, ...); None = the bundled lid.176.ftz
    model_path: str | None = None
    # the mixture's languages (ISO codes) -> their minimum score (None = default_min_score);
    # every other language, and any score below the minimum, goes to `other`
    languages: dict[str, float | None] = Field(default_factory=lambda: dict(DEFAULT_LANGUAGES))
    default_min_score: float = Field(0.5, ge=0.0, le=1.0)
    # long documents are classified on at most this many characters ...
    max_chars: int = Field(1000, ge=50)
    # ... taken as this many equal windows spread over the document (1 = its beginning);
    # 3 windows agree with the whole-document prediction more often than the beginning alone
    sample_windows: int = Field(3, ge=1, le=16)
    # how many of the model's labels are merged and re-ranked
    top_k: int = Field(5, ge=1, le=50)
    # an unconfigured top label is replaced by the best configured one among the top-k when
    # that one has at least this fraction of the top label's probability; None = never
    prefer_configured_ratio: float | None = Field(None, ge=0.0, le=1.0)
    # down-weight candidates whose alphabet lacks letters the text uses (see _FOREIGN_LETTERS)
    orthography_rules: bool = True
    # merge labels into another language after normalisation, e.g. {"yue": "zh", "arz": "ar"}
    label_aliases: dict[str, str] = Field(default_factory=dict)
    # documents of text sources that are source code (classifiers/code_detect.py) go to the `code`
    # bucket with their programming language and are judged by the code rules
    detect_code: bool = True
    # The lingua cascade (see LinguaCascade): a second opinion from lingua, restricted to a few
    # languages, where fastText is unsure or names a member of a group it confuses.
    cascade: bool = True
    # groups of languages lid.176 confuses with each other (measured: bench/results/langid.md);
    # a winner's candidates are the members of every group that holds it
    cascade_groups: list[list[str]] = Field(default_factory=lambda: [list(g) for g in DEFAULT_CASCADE_GROUPS])
    # a group member that fastText gives less than this probability goes to lingua ...
    cascade_sure: float = Field(0.8, ge=0.0, le=1.0)
    # ... and so does one with a rival member of its group at this probability or more
    cascade_rival: float = Field(0.1, ge=0.0, le=1.0)
    # any other winner under this probability goes to lingua, which then chooses among the
    # top-k labels of at least `cascade_candidate` (and their groups)
    cascade_unsure: float = Field(0.5, ge=0.0, le=1.0)
    cascade_candidate: float = Field(0.05, ge=0.0, le=1.0)
    # whether lingua may also answer group members that are not in `languages` (mk, mn, nn, ms,
    # af in the default groups); off, it chooses among the configured members only
    cascade_unconfigured: bool = False
    # lingua knows some languages in one script only (its Serbian is Cyrillic), so by default
    # Serbian in Latin script becomes Croatian (or Slovene) where lingua decides. True: a
    # fastText winner that lingua cannot judge in the text's script keeps fastText's answer, and
    # such languages keep fastText's probability (Latin-script Serbian stays `sr` as often as
    # fastText says so; Croatian is then less accurate: bench/results/langid.md)
    cascade_keep_unjudged: bool = False
    # lingua reads at most this many characters of the text fastText saw, from the same windows
    # (lingua's cost grows with the text: ~1.2 us per character)
    cascade_max_chars: int = Field(300, ge=50)
    # lingua reads a text of 120 characters or more with its trigram models in either of its
    # modes; only shorter ones differ: its high-accuracy mode reads them with 1- to 5-gram models,
    # which take ~30 MB of memory per language (its low-accuracy mode: trigrams, ~2 MB), loaded
    # by the first short text that asks for the language (bench/results/langid.md, Cascade options)
    cascade_high_accuracy: bool = False

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for code, score in v.items():
            norm = normalize_label(code)
            if norm in out:
                raise ValueError(f"language {code!r} is listed twice (as {norm!r})")
            if score is not None and not 0.0 <= score <= 1.0:
                raise ValueError(f"min score of {code!r} must be within [0, 1], got {score}")
            out[norm] = score
        return out

    @field_validator("cascade_groups")
    @classmethod
    def _groups(cls, v: list[list[str]]) -> list[list[str]]:
        out = []
        for group in v:
            codes = list(dict.fromkeys(normalize_label(c) for c in group))
            unknown = [c for c in codes if c not in LINGUA_LANGUAGES]
            if unknown:
                raise ValueError(
                    f"lingua does not know {', '.join(unknown)} (it knows: {' '.join(sorted(LINGUA_LANGUAGES))})"
                )
            if len(codes) < 2:
                raise ValueError(f"a cascade group needs two languages or more, got {group}")
            out.append(codes)
        return out

    @field_validator("label_aliases")
    @classmethod
    def _aliases(cls, v: dict[str, str]) -> dict[str, str]:
        return {normalize_label(a): normalize_label(b) for a, b in v.items()}

    def min_score(self, language: str) -> float:
        s = self.languages.get(language)
        return self.default_min_score if s is None else s


def decide(language: str, score: float, params: LangIdParams) -> tuple[str, str | None]:
    """(bucket, None) for a configured language scoring at least its minimum; else
    ("other", rule) with rule `not_in_mixture` or `low_score`. English's bucket is `en`,
    every other configured language's bucket is its code."""
    if language not in params.languages:
        return OTHER_BUCKET, "not_in_mixture"
    if score < params.min_score(language):
        return OTHER_BUCKET, "low_score"
    return language, None


# --------------------------------------------------------------------------------------------
# Text preparation
# --------------------------------------------------------------------------------------------


def fold_newlines(text: str) -> str:
    """fastText predicts one line at a time: fold line breaks so the document is one line."""
    if "\n" in text:
        text = text.replace("\n", " ")
    if "\r" in text:
        text = text.replace("\r", " ")
    return text


def _cut_to_word(text: str, start: int, end: int) -> str:
    """text[start:end], its ends moved inwards to whitespace when they fall inside a word
    (unless that would lose more than a quarter of the slice)."""
    slack = (end - start) // 4
    if start > 0 and not text[start - 1].isspace():
        found = [i for i in (text.find(" ", start, start + slack), text.find("\n", start, start + slack)) if i != -1]
        if found:
            start = min(found) + 1
    if end < len(text) and not text[end].isspace():
        sp = max(text.rfind(" ", end - slack, end), text.rfind("\n", end - slack, end))
        if sp > start:
            end = sp
    return text[start:end]


def sample_text(text: str, max_chars: int, windows: int = 1) -> str:
    """At most ~max_chars of the document: its beginning (windows=1) or `windows` equal slices
    spread evenly from beginning to end, each cut at word boundaries."""
    n = len(text)
    if n <= max_chars:
        return text
    if windows <= 1:
        return _cut_to_word(text, 0, max_chars)
    w = max_chars // windows
    step = (n - w) / (windows - 1)
    return " ".join(_cut_to_word(text, int(i * step), int(i * step) + w) for i in range(windows))


def prepare_text(text: str, params: LangIdParams) -> str:
    """The bounded, one-line sample of a document that language ID looks at (the model is
    given it lower-cased: lid.176 is slightly more accurate so, see bench/results/langid.md)."""
    return fold_newlines(sample_text(text, params.max_chars, params.sample_windows))


# --------------------------------------------------------------------------------------------
# Orthography rules
# --------------------------------------------------------------------------------------------

_SOUTH_SLAVIC_LATIN_NOT = "ěřůäôľĺŕłąęśźżőű"
_SERBIAN_CYRILLIC = "абвгдђежзијклљмнњопрстћуфхцчџш"
# Letters a language's standard orthography does not use but a close neighbour does (lower
# case, NFC). A text using them repeatedly (see _letter_evidence) is unlikely to be in that
# language, whatever the character n-grams say. Facts of the alphabets, not fitted numbers.
_FOREIGN_LETTERS: dict[str, str] = {
    "cs": "äľĺŕôłąęśźżőű",  # Slovak ä ľ ĺ ŕ ô; Polish; Hungarian
    "sk": "ěřůłąęśźżőű",  # Czech ě ř ů
    "pl": "čšžřěůťďňýäöü",  # Czech/Slovak/Slovene carons, German umlauts
    "sl": "ćđ" + _SOUTH_SLAVIC_LATIN_NOT,  # ć đ are Croatian/Bosnian/Serbian Latin
    "hr": _SOUTH_SLAVIC_LATIN_NOT + _SERBIAN_CYRILLIC,  # Croatian is written in Latin only
    "bs": _SOUTH_SLAVIC_LATIN_NOT,
    "sr": _SOUTH_SLAVIC_LATIN_NOT + "ёйщъыьэюяєіїґѓќѕў",
    "ru": "ђјљњћџѓќѕєіїґў",  # Serbian/Macedonian/Ukrainian/Belarusian letters
    "uk": "ёъыэђјљњћџѓќѕў",
    "bg": "ёыэєіїґђјљњћџѓќѕў",
    "mk": "йщъьюяёыэєіїґђћў",  # Macedonian writes ј, not й; no щ ъ ь ю я
    "be": "иъщїєґђјљњћџѓќѕ",  # Belarusian writes і ў, never и щ ъ
    "ca": "áñãõâêôìù",  # Catalan: à é è í ï ó ò ú ü ç, never á ñ
    "es": "àèòçïãõâêôìùë",
    "pt": "ñèòïìùëäö",
    "it": "ñçãõâêôäöüß",
    "fr": "ñãõáíóúìòåäöß",
    "ro": "ñçõáàèéíóúòåäöü",  # (ã is a common misspelling of ă)
    "et": "åæøç",  # Estonian õ ä ö ü (š ž in loans), never å
    "fi": "õüæøç",
    "sv": "æøõü",
    "da": "äöõü",
    "nb": "äöõü",
    "nn": "äöõü",
    "lv": "ąęėįųõōäöüåøæ",  # (ō: Latgalian and pre-1946 only; Māori uses it)
    "lt": "āēģīķļņõäöü",
}


def _both_cases(letters: str) -> str:
    # one-character upper cases only: "ß".upper() is "SS", which would make every S foreign
    return letters + "".join(u for u in (ch.upper() for ch in letters) if len(u) == 1)


_FOREIGN_WORD = {
    code: re.compile(r"\w*[" + _both_cases(letters) + r"]\w*") for code, letters in _FOREIGN_LETTERS.items()
}
_FOREIGN_ANY = {code: frozenset(_both_cases(letters)) for code, letters in _FOREIGN_LETTERS.items()}
_KANA = re.compile("[\u3040-\u30ff]")
_HAN = re.compile("[\u4e00-\u9fff]")
_LETTER_PENALTY = 0.05  # probability multiplier of a candidate the orthography rules out
# A rule needs one lower-case word with a foreign letter per this many characters (at least
# one): capitalised words are skipped, since names (Mirović in Slovene text) carry letters of
# other alphabets.
_CHARS_PER_EVIDENCE = 300
_MIN_HAN_WITHOUT_KANA = 5  # Japanese text of 5+ Han characters practically always has kana


def _ruled_out(code: str, text: str, chars: set[str], need: int) -> bool:
    """Whether this text's letters rule out `code`."""
    foreign = _FOREIGN_ANY.get(code)
    if foreign is not None:
        if chars.isdisjoint(foreign):
            return False
        return sum(w[:1].islower() for w in _FOREIGN_WORD[code].findall(text)) >= need
    if code == "ja":
        return not _KANA.search(text) and len(_HAN.findall(text)) >= _MIN_HAN_WITHOUT_KANA
    if code == "zh":
        return len(_KANA.findall(text)) >= max(2, need)
    return False


def _apply_orthography(merged: dict[str, float], text: str) -> dict[str, float]:
    """Down-weight the candidates the text's letters rule out, when the top candidate is one
    of them and the penalty can change the winner (otherwise nothing changes, which also
    keeps the common case cheap). The top-k's probability mass is kept."""
    ranked = sorted(merged, key=merged.__getitem__, reverse=True)
    top = ranked[0]
    if merged[top] * _LETTER_PENALTY >= merged[ranked[1]]:
        return merged
    chars = set(text)
    need = max(1, len(text) // _CHARS_PER_EVIDENCE)
    if not _ruled_out(top, text, chars, need):
        return merged
    out = [c for c in ranked[1:] if _ruled_out(c, text, chars, need)]
    out.append(top)
    if len(out) == len(ranked):
        return merged
    before = sum(merged.values())
    new = dict(merged)
    for c in out:
        new[c] *= _LETTER_PENALTY
    scale = before / sum(new.values())
    return {c: p * scale for c, p in new.items()}


# --------------------------------------------------------------------------------------------
# Re-ranking of the model's top-k (pure; the class below only holds the model)
# --------------------------------------------------------------------------------------------


def rerank(codes: list[str], probs: list[float], text: str, params: LangIdParams) -> tuple[str, float]:
    """Normalised top-k codes (aliases already applied, duplicates allowed) and their
    probabilities -> (language, score). `text` is the sample the model saw (before
    lower-casing)."""
    best, merged = rerank_scores(codes, probs, text, params)
    return best, _clamp(merged[best])


def _clamp(score: float) -> float:
    return 0.0 if score < 0.0 else 1.0 if score > 1.0 else score


def rerank_scores(
    codes: list[str], probs: list[float], text: str, params: LangIdParams
) -> tuple[str, dict[str, float]]:
    """`rerank`'s winner and the re-ranked probabilities of every candidate (what the lingua
    cascade re-weights)."""
    merged: dict[str, float] = {}
    for c, p in zip(codes, probs):
        merged[c] = merged.get(c, 0.0) + p
    configured = params.languages
    if params.orthography_rules and len(merged) > 1:
        merged = _apply_orthography(merged, text)
    best = max(merged, key=merged.__getitem__)
    for group, members in GROUP_LABELS.items():
        # a group label that wins (or a winning configured member) shares its mass among the
        # configured members in proportion to their own probabilities
        if group in merged and (best == group or (best in members and best in configured)):
            live = [m for m in members if m in configured and merged.get(m, 0.0) > 0.0]
            if live:
                mass = merged.pop(group)
                total = sum(merged[m] for m in live)
                for m in live:
                    merged[m] += mass * merged[m] / total
                best = max(merged, key=merged.__getitem__)
    ratio = params.prefer_configured_ratio
    if ratio is not None and best not in configured:
        alt = [c for c in merged if c in configured]
        if alt:
            cand = max(alt, key=merged.__getitem__)
            if merged[cand] >= ratio * merged[best]:
                best = cand
    return best, merged


# --------------------------------------------------------------------------------------------
# The lingua cascade
# --------------------------------------------------------------------------------------------

FASTTEXT, LINGUA = "fasttext", "lingua"  # which model decided (annotate column `language_model`)

# lingua models these languages in one script only (its Serbian is Cyrillic: on Latin-script
# Serbian it answers Croatian or Bosnian). With `cascade_keep_unjudged`, on text in another
# script they are not asked and keep fastText's probability.
_SCRIPT_ONLY: dict[str, str] = {c: "cyrillic" for c in ("sr", "mk", "ru", "uk", "bg", "be", "kk", "mn")}
_CYRILLIC = re.compile("[\u0400-\u04ff]")
_LATIN = re.compile("[A-Za-z\u00c0-\u024f]")


def text_script(text: str) -> str:
    """`cyrillic` or `latin`, whichever has more letters in the text (`other` for neither)."""
    cyr, lat = len(_CYRILLIC.findall(text)), len(_LATIN.findall(text))
    if not cyr and not lat:
        return "other"
    return "cyrillic" if cyr > lat else "latin"


_LINGUA_DECIMALS = 9  # lingua's confidences are rounded to this many decimals (see decide)
_MAX_DETECTORS = 512  # cached lingua detectors (a few kB each: the models are shared)


class Prediction(NamedTuple):
    language: str
    score: float
    model: str  # FASTTEXT or LINGUA: which one decided
    fasttext: str  # fastText's answer (after re-ranking), whatever decided
    asked: bool = False  # whether lingua was run (it decides when its answer wins)


class LinguaCascade:
    """Routing and lingua detectors, built once per worker: one detector per set of candidate
    languages (a group, or a group with the candidates of an unsure prediction), cached; lingua
    loads each language's model once, shared by every detector."""

    def __init__(self, params: LangIdParams):
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        self.params = params
        self._builder, self._language = LanguageDetectorBuilder, Language
        self._iso = IsoCode639_1
        self.neighbours: dict[str, frozenset[str]] = {}
        for group in params.cascade_groups:
            if not params.cascade_unconfigured:
                group = [c for c in group if c in params.languages]
            if len(group) < 2:
                continue
            for code in group:
                self.neighbours[code] = self.neighbours.get(code, frozenset()) | frozenset(group)
        self._detectors: dict[frozenset[str], object] = {}
        self._codes: dict[object, str] = {}

    def candidates(self, best: str, merged: dict[str, float]) -> frozenset[str] | None:
        """The languages lingua chooses among for this fastText result, or None: fastText
        decides. A group member goes to lingua when fastText is not sure of it or a rival of
        its group is in the running; any other winner when fastText is unsure."""
        p = self.params
        score = merged[best]
        group = self.neighbours.get(best)
        if group is not None:
            rival = max((merged.get(c, 0.0) for c in group if c != best), default=0.0)
            if score < p.cascade_sure or rival >= p.cascade_rival or score < p.cascade_unsure:
                cands = set(group)
                if score < p.cascade_unsure:
                    cands |= self._runners_up(merged)
                return frozenset(cands)
            return None
        if score < p.cascade_unsure and self._askable(best):
            return frozenset(self._runners_up(merged) | {best})
        return None

    def _askable(self, code: str) -> bool:
        return code in LINGUA_LANGUAGES and (self.params.cascade_unconfigured or code in self.params.languages)

    def _runners_up(self, merged: dict[str, float]) -> set[str]:
        out = set()
        for c, q in merged.items():
            if q >= self.params.cascade_candidate and self._askable(c):
                out |= self.neighbours.get(c, frozenset({c}))
        return out

    def detector(self, languages: frozenset[str]):
        det = self._detectors.get(languages)
        if det is None:
            if len(self._detectors) >= _MAX_DETECTORS:  # unsure documents' candidate sets vary
                self._detectors.clear()
            langs = [self._language.from_iso_code_639_1(getattr(self._iso, c.upper())) for c in sorted(languages)]
            for lang, code in zip(langs, sorted(languages)):
                self._codes[lang] = code
            builder = self._builder.from_languages(*langs)
            if not self.params.cascade_high_accuracy:
                builder = builder.with_low_accuracy_mode()
            det = self._detectors[languages] = builder.build()
        return det

    def decide(self, best: str, merged: dict[str, float], text: str) -> tuple[str, float, str, bool]:
        """(language, score, model, whether lingua was run) for one document: fastText's `best`
        and re-ranked probabilities `merged`, `text` the sample fastText saw. A language lingua is asked about
        scores lingua's confidence times the probability fastText gives it and the members of
        its groups (fastText's mass is spread over languages it confuses, so it is pooled, but
        only within a group); every other candidate keeps fastText's probability."""
        kept = best, _clamp(merged[best]), FASTTEXT, False
        cands = self.candidates(best, merged)
        if cands is None:
            return kept
        asked = cands
        if self.params.cascade_keep_unjudged:
            script = text_script(text)
            if _SCRIPT_ONLY.get(best, script) != script:
                return kept
            asked = frozenset(c for c in cands if _SCRIPT_ONLY.get(c, script) == script)
        if len(asked) < 2:
            return kept
        sample = sample_text(text, self.params.cascade_max_chars, self.params.sample_windows)
        # lingua's confidences vary from call to call in their last bits (measured: 282 distinct
        # results in 300 calls on one text), so they are rounded, and taken in a fixed order, for
        # the same text to get the same score and language every time
        confidences = sorted(
            (self._codes[cv.language], round(cv.value, _LINGUA_DECIMALS))
            for cv in self.detector(asked).compute_language_confidence_values(sample)
        )
        total = sum(value for _, value in confidences)
        if total <= 0.0:  # lingua recognises none of them (e.g. no letters): fastText decides
            return best, _clamp(merged[best]), FASTTEXT, True
        labels = [g for g, members in GROUP_LABELS.items() if g in merged and asked & set(members)]
        new = {c: q for c, q in merged.items() if c not in asked and c not in labels}
        for code, value in confidences:
            # fastText's probability of the languages it confuses with this one (its groups, and
            # a group label such as hbs), not of every candidate: fastText tells es from it
            pool = (self.neighbours.get(code, frozenset()) | {code}) & asked
            mass = sum(merged.get(c, 0.0) for c in sorted(pool))  # a fixed order: same bits in every process
            mass += sum(merged[g] for g in labels if code in GROUP_LABELS[g])
            new[code] = mass * value / total
        winner = max(new, key=new.__getitem__)
        return winner, _clamp(new[winner]), (LINGUA if winner in asked else FASTTEXT), True


class LanguageIdentifier:
    """Holds a loaded fastText LID model (and the lingua cascade); construct once per worker."""

    def __init__(self, params: LangIdParams | None = None):
        self.params = params or LangIdParams()
        self.model_path = Path(self.params.model_path) if self.params.model_path else BUNDLED_MODEL
        self.model = _load_fasttext(self.model_path)
        aliases = self.params.label_aliases
        # raw label -> normalised code with aliases applied, computed once per model
        self._codes = {}
        for label in self.model.get_labels():
            code = normalize_label(label)
            self._codes[label] = aliases.get(code, code)
        self.cascade = LinguaCascade(self.params) if self.params.cascade else None

    def predict_raw(self, texts: list[str], k: int = 1) -> list[list[tuple[str, float]]]:
        """The model's own top-k (normalised labels, clamped), on folded full texts."""
        labels, probs = self.model.predict([fold_newlines(t) for t in texts], k=k)
        return [
            [(normalize_label(lb), min(1.0, max(0.0, p))) for lb, p in zip(ls, ps.tolist())]
            for ls, ps in zip(labels, probs)
        ]

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """(ISO code, score in [0, 1]) per document, batched through fastText (and lingua
        where the cascade asks it)."""
        return [(p.language, p.score) for p in self.predict_detailed(texts)]

    def predict_detailed(self, texts: list[str]) -> list[Prediction]:
        """A Prediction per document: language, score, the model that decided, and fastText's
        own answer."""
        params = self.params
        prepared = [prepare_text(t, params) for t in texts]
        labels, probs = self.model.predict([t.lower() for t in prepared], k=params.top_k)
        codes = self._codes
        cascade = self.cascade
        out: list[Prediction] = []
        for text, ls, ps in zip(prepared, labels, probs):
            if not text.strip():
                out.append(Prediction(UNDETERMINED, 0.0, FASTTEXT, UNDETERMINED))
                continue
            best, merged = rerank_scores([codes[lb] for lb in ls], ps.tolist(), text, params)
            if cascade is None:
                out.append(Prediction(best, _clamp(merged[best]), FASTTEXT, best))
            else:
                lang, score, model, asked = cascade.decide(best, merged, text)
                out.append(Prediction(lang, score, model, best, asked))
        return out


def _load_fasttext(path: Path):
    from classifiers.fasttext_model import load_predictor

    if not Path(path).exists():
        raise FileNotFoundError(f"fastText LID model not found: {path}")
    return load_predictor(path)


# --------------------------------------------------------------------------------------------
# Programming language of code documents
# --------------------------------------------------------------------------------------------

_EXTENSIONS = {
    "python": "py pyw pyi pyx pxd",
    "go": "go",
    "c": "c h",
    "cpp": "cc cpp cxx c++ hpp hh hxx h++ ipp",
    "java": "java",
    "javascript": "js mjs cjs jsx",
    "typescript": "ts mts cts tsx",
    "rust": "rs",
    "shell": "sh bash zsh ksh",
    "ruby": "rb rake gemspec",
    "php": "php phtml",
    "csharp": "cs",
    "kotlin": "kt kts",
    "swift": "swift",
    "scala": "scala sc",
    "objective-c": "m mm",
    "perl": "pl pm",
    "lua": "lua",
    "r": "r",
    "julia": "jl",
    "haskell": "hs lhs",
    "ocaml": "ml mli",
    "elixir": "ex exs",
    "erlang": "erl hrl",
    "clojure": "clj cljs cljc edn",
    "dart": "dart",
    "sql": "sql",
    "html": "html htm xhtml",
    "css": "css",
    "scss": "scss sass",
    "json": "json",
    "yaml": "yaml yml",
    "toml": "toml",
    "xml": "xml xsd xsl xslt",
    "markdown": "md markdown",
    "restructuredtext": "rst",
    "tex": "tex sty cls",
    "fortran": "f f77 f90 f95 f03 f08",
    "assembly": "asm s",
    "powershell": "ps1 psm1 psd1",
    "batchfile": "bat cmd",
    "vim": "vim",
    "emacs-lisp": "el",
    "lisp": "lisp lsp cl",
    "scheme": "scm ss",
    "zig": "zig",
    "nim": "nim",
    "vhdl": "vhd vhdl",
    "verilog": "sv svh",
    "protobuf": "proto",
    "cmake": "cmake",
    "groovy": "groovy gradle",
    "makefile": "mk mak",
    "dockerfile": "dockerfile",
    "cuda": "cu cuh",
    "matlab": "mat",
    "d": "d",
    "pascal": "pas pp",
    "awk": "awk",
    "tcl": "tcl",
    "graphql": "graphql gql",
    "terraform": "tf",
    "solidity": "sol",
    "ini": "ini cfg",
    "diff": "diff patch",
}
EXTENSION_LANGUAGE: dict[str, str] = {ext: lang for lang, exts in _EXTENSIONS.items() for ext in exts.split()}
FILENAME_LANGUAGE: dict[str, str] = {
    "makefile": "makefile",
    "gnumakefile": "makefile",
    "dockerfile": "dockerfile",
    "cmakelists.txt": "cmake",
    "rakefile": "ruby",
    "gemfile": "ruby",
    "build": "starlark",
    "build.bazel": "starlark",
    "workspace": "starlark",
    "go.mod": "go-module",
    "meson.build": "meson",
    "jenkinsfile": "groovy",
    "vagrantfile": "ruby",
}
# interpreter named on a `#!` line -> language
_SHEBANG = {
    "python": "python",
    "python2": "python",
    "python3": "python",
    "pypy": "python",
    "pypy3": "python",
    "sh": "shell",
    "bash": "shell",
    "zsh": "shell",
    "ksh": "shell",
    "dash": "shell",
    "fish": "shell",
    "node": "javascript",
    "nodejs": "javascript",
    "deno": "typescript",
    "ruby": "ruby",
    "perl": "perl",
    "php": "php",
    "lua": "lua",
    "rscript": "r",
    "julia": "julia",
    "tclsh": "tcl",
    "awk": "awk",
    "gawk": "awk",
    "pwsh": "powershell",
    "escript": "erlang",
    "make": "makefile",
}
_SHEBANG_LINE = re.compile(r"^#!\s*(\S+)(?:\s+(\S+))?")
_VERSIONED = re.compile(r"^([a-z]+?)[\d.]*$")


def _at_word(words: str, then: str) -> re.Pattern:
    r"""`\b(?:w1|w2|...)` + `then` for the space-separated `words`, each starting with a word
    character, each word (`nil`) written `n(?<!\wn)il`: `\b` before a word character is "no
    word character before it", which the lookbehind checks once that first character is read. The
    same matches at the same places, but re skips to the words' first characters instead of
    trying `\b` at every position of the text (3-10x faster on the benchmark's code)."""
    alternatives = []
    for w in words.split():
        if not re.match(r"\w", w[0]):
            raise ValueError(f"{w!r} does not start with a word character")
        c = re.escape(w[0])
        alternatives.append(f"{c}(?<!\\w{c}){re.escape(w[1:])}")
    return re.compile(f"(?:{'|'.join(alternatives)}){then}")


# A pattern whose required strings are common words runs its regex on most heads; its gate, a
# necessary condition that re finds fast, is searched for first. The TypeScript annotation's gate
# is the pattern from its ':' on: every match of the pattern holds a match of it (the same
# characters, the closing \b in the same context), and re skips from ':' to ':'.
_TS_ANNOTATION = re.compile(r"\b\w++\s*+:\s*(string|number|boolean|any|void)\b")
_GATES = {_TS_ANNOTATION: re.compile(r":\s*(string|number|boolean|any|void)\b")}

# Content patterns (multiline regexes) with weights; the best language must reach
# _CODE_MIN_SCORE and beat the runner-up by _CODE_MIN_MARGIN.
_M = re.MULTILINE
_CONTENT_RULES: dict[str, list[tuple[re.Pattern, float]]] = {
    "python": [
        (re.compile(r"^\s*def \w+\(.*\)\s*(->\s*[^:]+)?:\s*$", _M), 3),
        (re.compile(r"^\s*import [\w., ]+$", _M), 2),
        (re.compile(r"^\s*from \.*[\w.]* import [\w., ()*]+$", _M), 3),
        (re.compile(r"^\s*class \w+(\(.*\))?:\s*$", _M), 3),
        (re.compile(r"^\s*(elif .*|else|try|finally|except.*):\s*$", _M), 2),
        (_at_word("self", r"\.\w+"), 1),
        (re.compile(r"^\s*@\w+", _M), 1),
        (re.compile(r'^\s*"""', _M), 1),
        (_at_word("None True False", r"\b"), 0.5),
    ],
    "go": [
        (re.compile(r"^package \w+\s*$", _M), 5),
        (re.compile(r'^import "C"$|^//(go:build|\s*\+build) ', _M), 4),
        (re.compile(r"^func (\(.*?\) )?\w+\(", _M), 3),
        (re.compile(r":= "), 1),
        (re.compile(r"^import \($", _M), 3),
        (_at_word("fmt errors strings os", r"\.[A-Z]\w*\("), 1),
        (_at_word("nil", r"\b"), 0.5),
    ],
    "c": [
        (re.compile(r"^#include [<\"][\w/.]+\.h[>\"]", _M), 3),
        (re.compile(r"^\s*#\s*(define|ifdef|ifndef|endif|undef|if defined)\b", _M), 2),
        (
            re.compile(
                r"^(static |extern |const |unsigned )*(void|int|char|long|size_t|double)"
                r"\s*\**\s*\w+\(",
                _M,
            ),
            2,
        ),
        (_at_word("malloc free printf sizeof NULL", r"\b"), 1),
        (re.compile(r"->\w+"), 0.5),
        (re.compile(r"^typedef struct", _M), 2),
    ],
    "cpp": [
        (re.compile(r"^#include <(iostream|vector|string|memory|map|algorithm|cstdint|cstdio)>", _M), 4),
        (re.compile(r"\bstd::\w+"), 2),
        (re.compile(r"^\s*template\s*<", _M), 3),
        (re.compile(r"^\s*namespace \w+", _M), 2),
        (re.compile(r"\b(public|private|protected):\s*$", _M), 2),
        (re.compile(r"\bnullptr\b|\bconstexpr\b|\bauto&"), 2),
    ],
    "java": [
        (re.compile(r"^import java(x)?\.[\w.]+;", _M), 4),
        (re.compile(r"^\s*(public|private|protected) (static )?(final )?(class|interface|enum) \w+", _M), 3),
        (re.compile(r"^\s*(public|private|protected) [\w<>\[\]]+ \w+\(.*\)\s*(throws [\w, ]+)?\s*\{", _M), 2),
        (re.compile(r"System\.out\.print"), 2),
        (re.compile(r"@Override\b"), 2),
        (re.compile(r"^package [\w.]+;", _M), 3),
    ],
    "javascript": [
        (re.compile(r"\b(const|let|var) \w+ = require\("), 3),
        (re.compile(r"^\s*(export )?(async )?function\s*\w*\s*\(", _M), 2),
        (re.compile(r"console\.log\("), 2),
        (re.compile(r"=>\s*\{"), 1),
        (_at_word("document window", r"\.\w+"), 2),
        (re.compile(r"^\s*(import .* from ['\"]|export (default|const) )", _M), 1),
        (re.compile(r"===|!=="), 1),
    ],
    "typescript": [
        (re.compile(r"^\s*(export )?(interface|type) \w+(<.*>)? (=|\{)", _M), 3),
        # \b first: a match never starts inside a word (the word's start matches too, and is
        # found first); possessive \w++ and \s*+: giving characters back can never let the ':'
        # match (the regex otherwise retries every shorter prefix of every word)
        (_TS_ANNOTATION, 2),
        (re.compile(r"^\s*import .* from ['\"]", _M), 1),
    ],
    "rust": [
        (re.compile(r"^\s*(pub )?fn \w+(<.*>)?\(", _M), 3),
        (re.compile(r"\blet mut\b"), 2),
        (re.compile(r"^\s*use (std|crate|super)::", _M), 3),
        (re.compile(r"^\s*impl\b", _M), 2),
        (re.compile(r"\b(println!|vec!|format!)\("), 2),
        (re.compile(r"&mut |->\s*Result<"), 1),
    ],
    "shell": [
        (re.compile(r"^\s*(if|while) \[\[? .*\]\]?; then", _M), 3),
        (re.compile(r"^\s*(fi|done|esac)\s*$", _M), 2),
        (re.compile(r"\$\{?\w+\}?"), 0.5),
        (re.compile(r"^\s*(echo|export|local|set -e|cd) ", _M), 1),
        (re.compile(r"\$\(.*\)"), 1),
    ],
    "ruby": [
        (re.compile(r"^\s*def \w+[?!]?(\(.*\))?\s*$", _M), 2),
        (re.compile(r"^\s*end\s*$", _M), 1),
        (re.compile(r"^\s*require ['\"]", _M), 2),
        (re.compile(r"\bdo \|\w+(, \w+)*\|"), 3),
        (re.compile(r"^\s*(module|class) \w+( < \w+)?\s*$", _M), 1),
        (re.compile(r"\battr_(reader|accessor)\b"), 3),
    ],
    "php": [
        (re.compile(r"<\?php"), 6),
        (re.compile(r"\$\w+\s*=\s*"), 0.5),
        (re.compile(r"\becho\b.*;"), 0.5),
        (re.compile(r"->\w+\("), 0.5),
    ],
    "html": [
        (re.compile(r"<!DOCTYPE html", re.I), 5),
        (re.compile(r"<html[\s>]", re.I), 3),
        (re.compile(r"</(div|p|body|head|span|table|a)>", re.I), 1),
    ],
    "sql": [(re.compile(r"^\s*(SELECT .* FROM|CREATE TABLE|INSERT INTO|UPDATE \w+ SET)\b", _M | re.I), 3)],
    "powershell": [
        (re.compile(r"^\s*(param\s*\(|function \w+-\w+)", _M | re.I), 3),
        (re.compile(r"\$\w+\s*=.*|Write-(Host|Output)|Get-\w+|Set-\w+", re.I), 1),
    ],
    "batchfile": [
        (re.compile(r"^@?echo off", _M | re.I), 5),
        (re.compile(r"^\s*(set|goto|rem|if exist) ", _M | re.I), 1),
        (re.compile(r"%~?\w+%?"), 0.5),
    ],
}
_CODE_SCAN_CHARS = 8000
_CODE_MIN_SCORE = 4.0
_CODE_MIN_MARGIN = 1.5  # best / runner-up


def _language_from_shebang(first_line: str) -> str | None:
    m = _SHEBANG_LINE.match(first_line)
    if not m:
        return None
    prog = os.path.basename(m.group(1)).lower()
    if prog == "env" and m.group(2):
        arg = m.group(2)
        prog = os.path.basename(arg).lower() if not arg.startswith("-") else ""
    v = _VERSIONED.match(prog)
    return _SHEBANG.get(prog) or (_SHEBANG.get(v.group(1)) if v else None)


def detect_programming_language(path: str | None, text: str) -> str:
    """Lowercase language name of a code document: from the file name/extension when a path
    is known, else from a `#!` line, else from weighted content patterns; "unknown" when no
    language clearly wins."""
    if path:
        name = os.path.basename(path.replace("\\", "/")).lower()
        if name in FILENAME_LANGUAGE:
            return FILENAME_LANGUAGE[name]
        if name.startswith("dockerfile"):
            return "dockerfile"
        stem, dot, ext = name.rpartition(".")
        if dot and stem and ext in EXTENSION_LANGUAGE:
            lang = EXTENSION_LANGUAGE[ext]
            if ext == "h" and _looks_cpp_header(text):
                return "cpp"
            return lang
    head = text[:_CODE_SCAN_CHARS]
    first = head.lstrip("\ufeff").split("\n", 1)[0]
    if first.startswith("#!"):
        lang = _language_from_shebang(first)
        if lang:
            return lang
    return language_from_scores(content_scores(head))


def _required_text(pattern: re.Pattern) -> tuple[str, ...] | None:
    """Strings of which every match of `pattern` contains at least one, or None when the pattern
    requires no literal text: of the literal runs and alternations (each branch's own longest
    run) that its sequence requires, the one whose shortest string is longest. A pattern none
    of them occurs in has no match, so `_score` skips its regex (the regexes' scan of every
    position is what costs; the substring test is C's memchr-fast search)."""
    from re import _constants as sre
    from re import _parser

    def needs(items) -> list[tuple[str, ...]]:
        """What a sequence requires: each entry's strings, one of which every match holds."""
        out, cur = [], []
        for op, av in items:
            if op is sre.LITERAL:
                cur.append(chr(av))
                continue
            if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):  # ^, $, \b, lookarounds: zero-width, the
                continue  # literal run goes on
            if cur:
                out.append(("".join(cur),))
                cur = []
            if op is sre.SUBPATTERN:  # a group (not optional: that is a repeat) is required
                out.extend(needs(av[3]))
            elif op is sre.BRANCH:  # one of the branches is: each must require a string
                per_branch = [best(needs(list(branch))) for branch in av[1]]
                if all(per_branch):
                    out.append(tuple(x for alternatives in per_branch for x in alternatives))
        if cur:
            out.append(("".join(cur),))
        return out

    def best(found: list[tuple[str, ...]]) -> tuple[str, ...] | None:
        return max(found, key=lambda alternatives: min(map(len, alternatives))) if found else None

    try:
        return best(needs(list(_parser.parse(pattern.pattern, pattern.flags))))
    except Exception:  # noqa: BLE001 - the parser's internals moved: no pre-filter
        return None


def _score(tests: list, head: str, present: int) -> float:
    """The weighted score of one language's content tests over `head`: weight x sqrt(matches)
    summed in pattern order. A pattern runs only where one of its required strings occurs
    (`present`: the needles of `_present`); a case-insensitive pattern's strings are looked for
    in the lower-cased head, on ASCII text only (elsewhere re's case folding matches more than
    str.lower does: ſ, K), so on other text it always runs. A line-anchored pattern counts
    through `_line_matches`."""
    total = 0.0
    nl_head = None
    for pattern, weight, _, bits, at_newline, gate in tests:
        if bits is not None and not present & bits:
            continue
        if gate is not None and gate.search(head) is None:
            continue
        if at_newline is None:
            n = len(pattern.findall(head))
        else:
            nl_head = "\n" + head if nl_head is None else nl_head
            n = _line_matches(pattern, at_newline, head, nl_head)
        if n:
            total += weight * n**0.5
    return total


def _line_matches(pattern: re.Pattern, at_newline: re.Pattern, head: str, nl_head: str) -> int:
    r"""len(pattern.findall(head)) for a pattern `^R` (re.MULTILINE), counted as the matches of
    `\nR` (`at_newline`) in "\n" + head: re scans for a leading literal with a tight C loop
    but tries `^` at every position (2.6x the time over the race corpus's heads). Each match of
    one is a match of the other, one character longer, at the same place: `^` holds exactly
    after a "\n" or at the start, and R sees the same text to its right. The two scans of
    non-overlapping matches then stay in step, except where a match ends just after a "\n"
    (the next match of `^R` may start right there, while `\nR` would need that "\n" again):
    where one does, the count is findall's own."""
    n = 0
    for m in at_newline.finditer(nl_head):
        if m.group().endswith("\n"):
            return len(pattern.findall(head))
        n += 1
    return n


def content_scores(head: str) -> dict[str, float]:
    """Each language's score of its weighted content patterns over `head`."""
    present = _present(head)
    return {lang: _score(tests, head, present) for lang, tests in _CONTENT_TESTS.items()}


def language_from_scores(scores: dict[str, float]) -> str:
    """The language whose patterns clearly win (content_scores), else "unknown"."""
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    (best, s1), (_, s2) = ranked[0], ranked[1]
    if best == "c" and scores["cpp"] >= _CODE_MIN_SCORE:
        best, s1, s2 = "cpp", scores["cpp"], max(v for k, v in scores.items() if k not in ("c", "cpp"))
    if best == "javascript" and scores["typescript"] >= _CODE_MIN_SCORE:
        best, s1, s2 = (
            "typescript",
            scores["typescript"],
            max(v for k, v in scores.items() if k not in ("javascript", "typescript")),
        )
    if s1 >= _CODE_MIN_SCORE and s1 >= _CODE_MIN_MARGIN * s2:
        return best
    return "unknown"


def _looks_cpp_header(text: str) -> bool:
    head = text[:_CODE_SCAN_CHARS]
    return _score(_CONTENT_TESTS["cpp"], head, _present(head)) >= _CODE_MIN_SCORE


def _at_newline(pattern: re.Pattern) -> re.Pattern | None:
    r"""For a multiline pattern `^R`, `\n(?:R)` (see _line_matches); None for any other, and
    where `^` does not govern all of it (`^A|B`: re's compiled code of the pattern and of
    `^(?:R)` differ), or R looks behind its start (a lookbehind, `\A`)."""
    from re import _compiler, _parser

    src = pattern.pattern
    if not (pattern.flags & re.MULTILINE) or not src.startswith("^") or "(?<" in src or "\\A" in src:
        return None
    rest = src[1:]
    try:
        as_one = _compiler._code(_parser.parse(src, pattern.flags), pattern.flags) == _compiler._code(
            _parser.parse(f"^(?:{rest})", pattern.flags), pattern.flags
        )
    except Exception:  # noqa: BLE001 - re's internals moved: findall as it is
        return None
    return re.compile(f"\n(?:{rest})", pattern.flags) if as_one else None


class _Needles:
    """The required strings of every content test as one table for the needle kernel
    (classifiers/needle_kernel.py), each (string, folded) pair numbered once: a test's `bits`
    are its strings' numbers as a bit mask (None: it runs on every head). A case-insensitive
    pattern's strings are folded (lower-cased, looked for in the lower-cased head). A string
    the kernel cannot look for (not ASCII, empty) leaves its test without a pre-filter."""

    def __init__(self):
        self.ids: dict[tuple[str, bool], int] = {}

    def bits(self, required: tuple[str, ...] | None, folded: bool) -> int | None:
        if required is None or not all(r and r.isascii() for r in required):
            return None
        mask = 0
        for r in required:
            mask |= 1 << self.ids.setdefault((r.lower() if folded else r, folded), len(self.ids))
        return mask

    def freeze(self) -> None:
        items = sorted(self.ids.items(), key=lambda kv: kv[1])
        encoded = [r.encode("ascii") for (r, _), _ in items]
        self.needles = np.frombuffer(b"".join(encoded), np.uint8)
        self.offsets = np.cumsum([0, *map(len, encoded)], dtype=np.int64)
        self.folded = np.array([f for (_, f), _ in items], np.uint8)
        keys = [e[0] + 256 * f for e, ((_, f), _) in zip(encoded, items)]
        self.order = np.argsort(keys, kind="stable").astype(np.int32)
        self.first = np.searchsorted(np.sort(keys), np.arange(513)).astype(np.int64)
        self.pairs = np.zeros(2 << 16, np.uint8)  # the kernel's filter on a position's two bytes
        for e, ((_, f), _) in zip(encoded, items):
            at = f << 16 | e[0] << 8
            self.pairs[at | e[1] if len(e) > 1 else slice(at, at + 256)] = 1
        self.n_words = (len(items) + 63) // 64 or 1
        # every folded string, "present" in a head that is not ASCII (its tests run there)
        self.folded_mask = sum(1 << k for (_, f), k in items if f)


def _present(head: str) -> int:
    """The needles (_NEEDLES) that occur in `head`, as a bit mask; on a head that is not ASCII,
    every folded needle as well."""
    t = _NEEDLES
    ascii_head = head.isascii()
    words = np.zeros(t.n_words, np.uint64)
    data = np.frombuffer(head.encode("utf-8", "surrogatepass"), np.uint8)
    kernels().needles_present(data, t.pairs, t.first, t.order, t.needles, t.offsets, t.folded, ascii_head, words)
    present = int.from_bytes(words.tobytes(), "little")
    return present if ascii_head else present | t.folded_mask


def _content_test(
    pattern: re.Pattern, weight: float
) -> tuple[re.Pattern, float, tuple[str, ...] | None, int | None, re.Pattern | None, re.Pattern | None]:
    """(pattern, weight, required strings, their needles' bits, at_newline, gate):
    `_required_text`, lower-cased for a case-insensitive pattern, `_at_newline` and `_GATES`."""
    required = _required_text(pattern)
    folded = bool(pattern.flags & re.IGNORECASE)
    if folded and required is not None:
        required = tuple(r.lower() for r in required)
    return pattern, weight, required, _NEEDLES.bits(required, folded), _at_newline(pattern), _GATES.get(pattern)


# _CONTENT_RULES as the tests `_score` runs, derived once, and their required strings' table
_NEEDLES = _Needles()
_CONTENT_TESTS = {lang: [_content_test(p, w) for p, w in rules] for lang, rules in _CONTENT_RULES.items()}
_NEEDLES.freeze()
