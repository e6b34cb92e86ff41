"""Parameters of the heuristic filters: the product's defaults, one sub-model per rule set.

Every rule is switched off by setting its threshold to None (or its switch to False); every
rule set has `enabled`. Defaults are the published values; where we depart from a paper, or
where a paper's line-level rule had to become a document-level one, the field says why.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Fraction = float  # readability only: a number in [0, 1]


class GopherQualityParams(BaseModel):
    """Gopher quality filter (Rae et al. 2021, "Scaling Language Models: Methods, Analysis &
    Insights from Training Gopher", appendix A.1.1). Word counts weigh unspaced scripts
    (Chinese, Japanese, Thai, ...) by characters per word, so the bounds mean the same in
    every language."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    min_words: int | None = Field(50, ge=0, description="drop documents with fewer words")
    max_words: int | None = Field(100_000, ge=0, description="drop documents with more words")
    min_mean_word_length: float | None = Field(
        3.0,
        ge=0,
        description="drop if the mean word length (letters) is below; not applied to "
        "documents mostly in an unspaced script",
    )
    max_mean_word_length: float | None = Field(10.0, ge=0)
    max_symbol_word_ratio: float | None = Field(0.1, ge=0, description="('#' + '...' + '…') per word")
    max_bullet_line_fraction: Fraction | None = Field(
        0.9, ge=0, le=1, description="fraction of lines starting with a bullet"
    )
    max_ellipsis_line_fraction: Fraction | None = Field(
        0.3, ge=0, le=1, description="fraction of lines ending with an ellipsis"
    )
    min_alpha_word_fraction: Fraction | None = Field(
        0.8, ge=0, le=1, description="fraction of words containing a letter"
    )
    min_stop_words: int | None = Field(
        2,
        ge=0,
        description="occurrences of the language's stop words (English: Gopher's "
        "the/be/to/of/and/that/have/with); languages without a list skip the rule",
    )


class GopherRepetitionParams(BaseModel):
    """Gopher repetition filter (Rae et al. 2021, appendix A.1.1, table A1)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    max_duplicate_line_fraction: Fraction | None = Field(0.3, ge=0, le=1)
    max_duplicate_paragraph_fraction: Fraction | None = Field(0.3, ge=0, le=1)
    max_duplicate_line_char_fraction: Fraction | None = Field(0.2, ge=0, le=1)
    max_duplicate_paragraph_char_fraction: Fraction | None = Field(0.2, ge=0, le=1)
    # Characters covered by the single most frequent word n-gram.
    max_top_2gram_char_fraction: Fraction | None = Field(0.20, ge=0, le=1)
    max_top_3gram_char_fraction: Fraction | None = Field(0.18, ge=0, le=1)
    max_top_4gram_char_fraction: Fraction | None = Field(0.16, ge=0, le=1)
    # Characters covered by word n-grams that occur more than once.
    max_duplicate_5gram_char_fraction: Fraction | None = Field(0.15, ge=0, le=1)
    max_duplicate_6gram_char_fraction: Fraction | None = Field(0.14, ge=0, le=1)
    max_duplicate_7gram_char_fraction: Fraction | None = Field(0.13, ge=0, le=1)
    max_duplicate_8gram_char_fraction: Fraction | None = Field(0.12, ge=0, le=1)
    max_duplicate_9gram_char_fraction: Fraction | None = Field(0.11, ge=0, le=1)
    max_duplicate_10gram_char_fraction: Fraction | None = Field(0.10, ge=0, le=1)
    ngram_word_limit: int | None = Field(
        20_000,
        ge=1,
        description="n-gram rules read only the first this many words (bounds "
        "the work on very long documents; None reads all)",
    )


class C4Params(BaseModel):
    """C4's rules (Raffel et al. 2020, section 2.2; constants of TFDS `c4_utils.py`).

    C4 removes offending *lines* and then drops pages with too few sentences. This stage
    decides per document and never rewrites text, so each line rule becomes a document rule on
    the share of the text C4 would remove for that reason (characters of the offending lines
    over the characters of all lines): a page whose prose C4 keeps but whose title and menu
    lines it strips passes; a page that is mostly lines C4 strips is dropped. Weighing by
    characters, not by lines, keeps short titles and list items from deciding for the page.
    The page-level rules of C4 ("lorem ipsum", "{") stay whole-document drops, as in C4.
    The sentence count is taken over the whole document."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    max_unpunctuated_line_char_fraction: Fraction | None = Field(
        0.5,
        ge=0,
        le=1,
        description="C4 keeps only lines ending in terminal punctuation: share "
        "of the text in lines that do not (not applied to Thai/Lao)",
    )
    max_javascript_line_char_fraction: Fraction | None = Field(
        0.25, ge=0, le=1, description="share of the text in lines mentioning 'javascript'"
    )
    max_policy_line_char_fraction: Fraction | None = Field(
        0.25,
        ge=0,
        le=1,
        description="share of the text in lines with 'terms of use', "
        "'privacy policy', 'cookie policy', 'uses cookies', 'use of cookies', 'use cookies'",
    )
    min_words_per_line: int = Field(5, ge=1, description="a line with fewer words is one C4 removes (TFDS c4_utils: 5)")
    max_few_words_line_char_fraction: Fraction | None = Field(
        0.5, ge=0, le=1, description="share of the text in lines of fewer than min_words_per_line words"
    )
    drop_lorem_ipsum: bool = Field(True, description="drop documents containing 'lorem ipsum'")
    drop_curly_bracket: bool = Field(True, description="drop documents containing '{'")
    min_sentences: int | None = Field(
        3, ge=0, description="drop documents with fewer sentences (TFDS c4_utils: 3; not applied to Thai/Lao)"
    )


class FineWebParams(BaseModel):
    """FineWeb's own filters (Penedo et al. 2024, "The FineWeb Datasets", section 3.5)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    min_line_punct_ratio: Fraction | None = Field(
        0.12, ge=0, le=1, description="share of lines ending in terminal punctuation (not applied to Thai/Lao)"
    )
    max_duplicate_line_char_fraction: Fraction | None = Field(
        0.1, ge=0, le=1, description="characters in lines that repeat an earlier line"
    )
    short_line_chars: int = Field(
        30,
        ge=1,
        description="a line shorter than this is short; an unspaced-script "
        "character counts as the Latin characters of the word share it stands for",
    )
    max_short_line_fraction: Fraction | None = Field(0.67, ge=0, le=1)


class CodeParams(BaseModel):
    """Rules for source code (`kind: code`), after StarCoder's data filters (Li et al. 2023,
    "StarCoder: may the source be with you!", section 3; and The Stack's line-length and
    alphanumeric filters)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    max_line_length: int | None = Field(1000, ge=1, description="drop if any line is longer")
    max_mean_line_length: float | None = Field(100.0, ge=0)
    min_alphanumeric_fraction: Fraction | None = Field(0.25, ge=0, le=1)
    autogenerated_markers: tuple[str, ...] | None = Field(
        ("auto-generated", "autogenerated", "automatically generated", "generated by", "do not edit"),
        description="drop if one of these (case-insensitive) is in the first lines",
    )
    autogenerated_lines: int = Field(5, ge=1, description="how many first lines to search")
    max_data_char_fraction: Fraction | None = Field(
        0.5,
        ge=0,
        le=1,
        description="share of the non-space characters that are numeric "
        "literals, byte escapes or long base64/hex runs (data files, tables)",
    )
    data_scan_chars: int | None = Field(
        32_768,
        ge=2,
        description="the data rule reads at most this many characters, half "
        "from each end of the file (bounds the work on huge files; None reads all)",
    )


class HeuristicsParams(BaseModel):
    """The heuristic filter stage. Natural-language rule sets apply to `kind: text`, the code
    rules to `kind: code`."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    max_chars: int | None = Field(
        1_000_000,
        ge=1000,
        description="longer documents are measured on their first max_chars "
        "characters (cut at a line break), word counts scaled to the whole length: bounds the "
        "time and memory a giant document costs (None measures everything)",
    )
    gopher_quality: GopherQualityParams = GopherQualityParams()
    gopher_repetition: GopherRepetitionParams = GopherRepetitionParams()
    c4: C4Params = C4Params()
    fineweb: FineWebParams = FineWebParams()
    code: CodeParams = CodeParams()
