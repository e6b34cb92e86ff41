"""Is this document source code? A fast detector for documents of text sources, so that code
mixed into web text reaches the `code` bucket (with its programming language) and is judged by
the code rules instead of being dropped by prose rules.

    detect_code(text, path=None) -> CodeVerdict(is_code, language, reason)

Evidence, cheapest first, all on a bounded head of the document (SCAN_CHARS):
  1. a `#!` line naming a known interpreter (python, sh, node, perl, ...);
  2. a file path (a record's path field) with a source-code extension, backed by a little
     syntax (web-page extensions such as .html and .php are not evidence: pages are prose);
  3. the content: the density of syntax characters (`{}[]();=<>_&|$\\`; prose has ~1%, code
     5-25%), the share of lines that look like code (ending in `;` `{` `}` `:` after `)`, opening
     with a keyword of some language, assignments, comment markers), and the per-language keyword
     patterns of `langid.detect_programming_language`.
A cheap pre-check (syntax density and line shape) answers "prose" for most prose without the
line scan. Pure functions, no Beam; `bench/code_detect_eval.py` measures precision and recall on
real code and real prose (results in the README).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from classifiers.langid import (
    EXTENSION_LANGUAGE,
    FILENAME_LANGUAGE,
    _language_from_shebang,
    content_scores,
    detect_programming_language,
    language_from_scores,
)

SCAN_CHARS = 6000  # the head of the document looked at (after its leading comments) ...
MAX_LINES = 150  # ... its first lines for the shape of code lines ...
KEYWORD_CHARS = 2000  # ... and its first characters for the languages' keyword patterns (the slow part)
SYNTAX_CHARS = "{}[]();=<>_&|$\\"
# below this syntax density, with no shebang or code path, a document is prose (pre-check)
PROSE_DENSITY = 0.01
# content decisions, each (min share of code-like lines, min syntax density, min keyword score of
# the best language): the prose sets of the benchmark stay below every one of them
RULES = (
    (0.20, 0.04, 4.0),  # some code lines, some syntax, a language's keywords
    (0.15, 0.025, 8.0),  # a language's keywords all over (tables of data in code)
    (0.50, 0.0, 4.0),  # mostly code lines with keywords (C headers of #defines)
    (0.50, 0.02, 0.0),  # mostly code lines
    (0.45, 0.07, 0.0),  # code lines and syntax, no known language
    (0.10, 0.12, 0.0),  # dense syntax (template-heavy C++, minified-ish code)
)
# a code path needs only this much syntax (it rules out a prose file misnamed .py)
PATH_DENSITY, PATH_LINES = 0.02, 0.1

# extensions that name markup, data or a web page rather than a program: not evidence on their own
NOT_CODE_EXTENSIONS = {
    "html",
    "htm",
    "xhtml",
    "php",
    "phtml",
    "md",
    "markdown",
    "rst",
    "tex",
    "sty",
    "cls",
    "json",
    "yaml",
    "yml",
    "toml",
    "xml",
    "xsd",
    "xsl",
    "xslt",
    "ini",
    "cfg",
    "mat",
    "s",
    "d",
    "r",
    "m",
    "pp",
    "sc",
    "ss",
    "edn",
    "cmd",
    "diff",
    "patch",
    "css",
    "scss",
    "sass",
    "sql",
}
CODE_EXTENSIONS = {e for e in EXTENSION_LANGUAGE if e not in NOT_CODE_EXTENSIONS}

_CODE_LINE = re.compile(
    r"""^\s*(?:
        \#\s*(?:include|define|ifn?def|endif|if|else|elif|pragma|undef)\b   # C preprocessor
      | (?:import|from\s+[\w.]+\s+import|package|using|namespace|require|use)\s+[\w.:"'<{*(]
      | (?:def|class|func|fn|pub|impl|struct|enum|interface|trait|typedef|module|export|async)\s+\w
      | (?:let|const|var|local|my|static|final|public|private|protected|void|int|char|bool|auto)\s+[\w*&(]
      | (?:return|yield|raise|throw|break|continue|pass|else|end|fi|done|esac)\b\s*[^\s\w]?.{0,80}$
      | (?:if|for|while|switch|catch|elif|foreach|unless)\s*\(
      | (?:if|for|while|elif|with|try|except|finally)\b[^.!?]*:\s*$
      | case\s+.+:\s*$
      | [})\]];?\s*$ | [}\]]\s*[,;)]
      | (?://|/\*|\*/|--\s|;;|<!--|@\w+)
      | [\w.\[\]'"]+\s*(?::=|[-+*/|&]?=)\s*\S
    )""",
    re.VERBOSE,
)
_STATEMENT_ENDS = (";", "{", "=>", "->")


def looks_like_code(line: str) -> bool:
    r"""Does a line look like code: it ends like a statement or a block (right-stripped of white
    space: `;`, `{`, `=>`, `->`, or `:` after `)` and white space), or _CODE_LINE matches it.
    The first test is the regex alternative `.*(?:[;{]|\)\s*:|=>|->)\s*$` without a regex, whose
    `.*` backtracked through every line that does not end so (60% of the regex's time on the
    full race corpus); rstrip's white space is re's \s (both str.isspace)."""
    end = line.rstrip()
    if end.endswith(_STATEMENT_ENDS) or (end.endswith(":") and end[:-1].rstrip().endswith(")")):
        return True
    return _CODE_LINE.match(line) is not None


# a leading block of comments (licence headers) or a module docstring: skipped before the content
# is measured (it is prose inside code), the preprocessor's `#include`/`#define` kept
_LEAD = re.compile(
    r"""\A(?:\s*(?:
        \#(?!!|\s*(?:include|define|if|ifdef|ifndef|endif|pragma|undef|else|elif|import)\b)[^\n]*
      | //[^\n]* | /\*[\s\S]*?\*/ | --[^\n]* | ;[^\n]*
      | [rRuU]?\"\"\"[\s\S]*?\"\"\" | [rRuU]?\'\'\'[\s\S]*?\'\'\'
    ))+""",
    re.VERBOSE,
)


def body_of(text: str) -> str:
    """The document's head after its leading comments and docstring (SCAN_CHARS of it)."""
    head = text[: 4 * SCAN_CHARS]
    m = _LEAD.match(head)
    if m and m.end() < len(head) - 200:
        return head[m.end() : m.end() + SCAN_CHARS]
    return head[:SCAN_CHARS]


@dataclass(frozen=True)
class CodeVerdict:
    is_code: bool
    language: str | None  # programming language when is_code ("unknown" when none clearly wins)
    reason: str  # shebang | path | keywords | syntax | prose


PROSE = CodeVerdict(False, None, "prose")


_SYNTAX_BYTES = SYNTAX_CHARS.encode("ascii")


def syntax_density(text: str) -> float:
    """Share of non-space characters that are syntax characters (SYNTAX_CHARS). The syntax
    characters are counted in one pass over the UTF-8 bytes (an ASCII byte there is only ever
    an ASCII character): half the time of a str.count per syntax character."""
    n = len(text) - text.count(" ") - text.count("\n") - text.count("\t")
    if n <= 0:
        return 0.0
    b = text.encode("utf-8", "surrogatepass")
    return (len(b) - len(b.translate(None, _SYNTAX_BYTES))) / n


class LineShare:
    """Whether the share of the first MAX_LINES non-blank lines of a text that look like code
    (looks_like_code) is at least t, answered while the lines are scanned: the scan stops where the
    answer can no longer change (enough code lines seen, or too few lines left), and a later
    question goes on from there. The answer is the whole share's comparison exactly: c / n >= t
    can only go from False to True as the count c of code lines grows."""

    __slots__ = ("_lines", "_n", "_next", "_code")

    def __init__(self, text: str):
        self._lines = [ln for ln in text.split("\n", MAX_LINES)[:MAX_LINES] if ln.strip()]
        self._n, self._next, self._code = len(self._lines), 0, 0

    def at_least(self, t: float) -> bool:
        n = self._n
        if not n:
            return 0.0 >= t
        match, lines = looks_like_code, self._lines
        i, c = self._next, self._code
        while i < n and not c / n >= t and (c + n - i) / n >= t:
            if match(lines[i]):
                c += 1
            i += 1
        self._next, self._code = i, c
        return c / n >= t


def keyword_scores(text: str) -> dict[str, float]:
    """Per programming language, the score of langid's content patterns over the first
    KEYWORD_CHARS characters (>= langid's minimum score: that language's keywords are there)."""
    return content_scores(text[:KEYWORD_CHARS])


def path_language(path: str | None) -> str | None:
    """The programming language a path's file name or extension names, when it names one."""
    if not path:
        return None
    name = os.path.basename(path.replace("\\", "/").split("?", 1)[0]).lower()
    if name in FILENAME_LANGUAGE:
        return FILENAME_LANGUAGE[name]
    stem, dot, ext = name.rpartition(".")
    if dot and stem and ext in CODE_EXTENSIONS:
        return EXTENSION_LANGUAGE[ext]
    return None


def detect_code(text: str, path: str | None = None) -> CodeVerdict:
    head = text[:SCAN_CHARS].lstrip("\ufeff")  # the shebang is looked for on the first line
    first = head.split("\n", 1)[0]
    if first.startswith("#!") and _language_from_shebang(first):
        return CodeVerdict(True, _language_from_shebang(first), "shebang")
    head = body_of(head if len(text) <= SCAN_CHARS else text)
    density = syntax_density(head)
    by_path = path_language(path)
    if by_path is None and density < PROSE_DENSITY:
        return PROSE
    lines = LineShare(head)
    if by_path is not None:
        if density >= PATH_DENSITY and lines.at_least(PATH_LINES):
            return CodeVerdict(True, detect_programming_language(path, head[:KEYWORD_CHARS]), "path")
        if density < PROSE_DENSITY:
            return PROSE
    scores = None
    for min_lines, min_density, min_kw in RULES:
        if density >= min_density and lines.at_least(min_lines):
            if min_kw:
                scores = keyword_scores(head) if scores is None else scores
                if max(scores.values()) < min_kw:
                    continue
            scores = keyword_scores(head) if scores is None else scores
            return CodeVerdict(True, language_from_scores(scores), "keywords" if min_kw else "syntax")
    return PROSE


def is_code(text: str, path: str | None = None) -> bool:
    return detect_code(text, path).is_code
