"""Run configuration: the schema, its defaults and its validation, in one place.

Each stage's parameters are the pydantic model that lives next to its logic in `classifiers/`
(so the defaults exist once); this module composes them into the run config, loads YAML with
a safe loader, applies `--set dotted.key=value` overrides and turns validation errors into one
line that names the key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from classifiers.extract import ExtractParams
from classifiers.heuristics import HeuristicsParams
from classifiers.judge import QualityParams
from classifiers.langid import LangIdParams
from classifiers.line_dedup import LineDedupParams
from classifiers.minhash import MinHashParams
from classifiers.quality_fasttext import DistillParams

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"

MiB = 1 << 20


class ConfigError(Exception):
    """A configuration problem, reported as one line before any work starts."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_Strict):
    name: str = Field(min_length=1)
    paths: list[str] = Field(min_length=1)
    # jsonl covers .jsonl, .jsonl.gz and .jsonl.zst (compression from the suffix); warc covers
    # .warc, .warc.gz and .warc.zst (HTML pages go through stages.extract; text_field, id_field,
    # url_field and timestamp_field do not apply: WARC-Record-ID, WARC-Target-URI, WARC-Date)
    format: Literal["jsonl", "parquet", "warc"] | None = None
    text_field: str = "text"
    id_field: str | None = "id"
    kind: Literal["text", "code"] = "text"
    url_field: str | None = None
    timestamp_field: str | None = None
    path_field: str | None = None  # file path metadata, used to name a code document's language

    def has_urls(self) -> bool:
        """Whether its documents can carry a URL: a url_field, or WARC (WARC-Target-URI)."""
        return bool(self.url_field) or self.format == "warc" or any(".warc" in p.lower() for p in self.paths)


class NormalizeParams(_Strict):
    """normalize/validate cannot be switched off: it is what accounts for unreadable records."""

    enabled: Literal[True] = True
    max_record_bytes: int = Field(64 * MiB, gt=0)  # larger records are quarantined unread
    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    min_chars: int = Field(1, ge=1)  # shorter (after stripping) is rejected as normalize/empty


class UrlDedupParams(_Strict):
    """Documents of a source with `url_field` that share a URL (fragment dropped, scheme and
    host lower-cased): one survives, the latest by the source's `timestamp_field` (ISO 8601
    strings or numbers; a missing timestamp counts as oldest), or the first read."""

    enabled: bool = True
    keep: Literal["latest", "first"] = "latest"


class ExactDedupParams(_Strict):
    """Exact duplicates of the normalised text; the survivor follows
    stages.minhash_dedup.survivor, so both levels keep the same document of a cluster."""

    enabled: bool = True
    scope: Literal["global", "bucket", "language"] = "global"


class MixtureParams(_Strict):
    enabled: bool = True
    # token shares per bucket: "code", "multilingual" (split over the configured languages by
    # available tokens ** alpha) or explicit per-language shares; English takes the rest.
    targets: dict[str, float] = Field(default_factory=lambda: {"code": 0.17, "multilingual": 0.08})
    alpha: float = Field(0.3, ge=0.0, le=1.0)
    max_repeats: float = Field(1.0, ge=1.0)
    total_tokens: int | None = Field(None, gt=0)
    seed: int = 0

    @field_validator("targets")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        for k, s in v.items():
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"share for {k!r} must be within [0, 1], got {s}")
        if "en" in v:
            raise ValueError("'en' takes the rest of the mixture; do not set its share")
        total = sum(v.values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"shares add up to {total:.4g} > 1")
        return v


class Stages(_Strict):
    normalize: NormalizeParams = NormalizeParams()
    extract: ExtractParams = ExtractParams()  # WARC sources: HTML -> main text, as they are read
    langid: LangIdParams = LangIdParams()
    heuristics: HeuristicsParams = HeuristicsParams()
    quality: QualityParams = QualityParams()
    url_dedup: UrlDedupParams = UrlDedupParams()
    exact_dedup: ExactDedupParams = ExactDedupParams()
    minhash_dedup: MinHashParams = MinHashParams()
    line_dedup: LineDedupParams = LineDedupParams()
    mixture: MixtureParams = MixtureParams()


class TokenizerConfig(_Strict):
    """What counts `n_tokens` (classifiers/tokens.py), exactly and without special tokens:
    `llama3` Llama 3's tokenizer (built once into the cache), `file` the tokenizer.json at
    `path` (setting `path` alone means `file`), `approx` UTF-8 bytes / 4 (an estimate, named so in
    the manifest)."""

    kind: Literal["llama3", "file", "approx"] = "llama3"
    path: str | None = None  # a Hugging Face tokenizer.json (e.g. Llama 2's)

    @model_validator(mode="after")
    def _path_means_file(self) -> TokenizerConfig:
        if self.path is not None and self.kind != "file":
            if "kind" in self.model_fields_set:
                raise ValueError(f"path is set, so kind must be file (or left out), not {self.kind}")
            self.kind = "file"
        if self.kind == "file" and not self.path:
            raise ValueError("kind file needs path: a tokenizer.json")
        return self


class OutputConfig(_Strict):
    path: str = "out"
    # target compressed bytes per shard; below 4 KiB a shard would be mostly Parquet's own metadata
    shard_bytes: int = Field(256 * MiB, ge=4096)
    row_group_bytes: int = Field(32 * MiB, gt=0)  # target uncompressed bytes per row group
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    compression_level: int | None = None
    rejected_text: bool = False  # also write the text of rejected documents to OUT/rejected/
    # filter mode: the text of this many rejected documents per rule (those with the smallest id
    # hashes) is written in their OUT/rejected/ rows anyway, so that a user (and `curate report`)
    # can see what each rule drops; 0: none (the text column stays null unless rejected_text)
    rejected_text_sample: int = Field(20, ge=0)
    quarantine_raw_bytes: int = Field(1024, ge=0)


class DemoConfig(_Strict):
    # with no source configured, build the demo corpus here from text every Python machine has
    path: str = ".cache/demo-corpus"
    code_files: int = Field(600, ge=0)
    prose_docs: int = Field(3000, ge=0)
    docs_per_language: int = Field(40, ge=0)


class RunnerConfig(_Strict):
    workers: int = Field(1, ge=1)  # > 1: the in-process runner's multi-processing mode
    batch_size: int = Field(256, ge=1)  # documents per batch through the per-document stages
    # dedup shuffles hashes in this many partitions; None = one per 32 MiB of (estimated) text, at
    # least 4 (pipeline.graph.shuffle_partitions)
    shuffle_partitions: int | None = Field(None, ge=1)
    # the last pass re-reads input in chunks of this many records (bounds its memory per worker)
    records_per_chunk: int = Field(100_000, ge=1)


class Config(_Strict):
    mode: Literal["filter", "annotate"] = "filter"
    sources: list[Source] = Field(default_factory=list)
    demo: DemoConfig = DemoConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    stages: Stages = Stages()
    output: OutputConfig = OutputConfig()
    runner: RunnerConfig = RunnerConfig()
    distill: DistillParams = DistillParams()  # `curate distill` training settings

    @model_validator(mode="after")
    def _names_unique(self) -> Config:
        names = [s.name for s in self.sources]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"source names must be unique, repeated: {sorted(dup)}")
        return self

    def digest(self) -> str:
        """sha256 of the canonical JSON of the whole validated config."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def _format_error(err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
    msg = e["msg"]
    if e["type"] == "extra_forbidden":
        near = suggest(e["loc"])
        msg = "unknown key" + (f" (did you mean {near}?)" if near else "")
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"config error: {loc}: {msg}{more}"


def _parse_value(key: str, raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: value is not valid YAML: {e.__class__.__name__}") from None
    except (RecursionError, ValueError):  # nested too deeply; an int too long for Python
        raise ConfigError(f"--set {key}: value is not a usable YAML value (nested too deeply or too large)") from None


def set_dotted(data: dict, dotted: str) -> tuple[tuple[str, ...], Any, str]:
    """Apply one `key.sub=value` override; the value is parsed as YAML and typed by the schema.
    Returns (key parts, parsed value, raw value) for `load_config`'s literal-string fallback."""
    if "=" not in dotted:
        raise ConfigError(f"--set {dotted!r}: expected dotted.key=value")
    key, raw = dotted.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {dotted!r}: empty key component")
    value = _parse_value(key, raw)
    _assign(data, parts, key, value)
    return tuple(parts), value, raw


def _assign(data: dict, parts: list[str], key: str, value: Any) -> None:
    node: Any = data
    for i, p in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not p.isdigit() or int(p) >= len(node):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not an index of the list")
            node = node[int(p)]
        else:
            node = node.setdefault(p, {})
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a mapping")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"--set {key}: {last} is not an index of the list")
        node[int(last)] = value
    else:
        node[last] = value


def _literal_fallbacks(data: dict, sets: list[tuple[tuple[str, ...], Any, str]], err: ValidationError) -> bool:
    """The --set rule: a value is parsed as YAML, but where YAML made it a scalar that is not a
    string (null, a bool, a number, a date) and the schema refuses that at its key, the value is
    the literal string typed (`--set stages.quality.on_error=null` is the string "null" where the
    field is an enum of strings). Applies those fallbacks; False when there were none to apply."""
    refused = {tuple(str(p) for p in e["loc"]) for e in err.errors()}
    changed = False
    for parts, value, raw in sets:
        if isinstance(value, (str, list, dict)):
            continue
        if any(loc[: len(parts)] == parts for loc in refused):
            _assign(data, list(parts), ".".join(parts), raw.strip())
            changed = True
    return changed


def _validate(data: dict, sets: list) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        if sets and _literal_fallbacks(data, sets, e):
            return _validate(data, [])
        raise ConfigError(_format_error(e)) from None


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"config error: cannot read {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)  # safe loader: no tags, no objects
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config error: {path}{where}: not valid YAML") from None
    except RecursionError:
        raise ConfigError(f"config error: {path}: nested too deeply to be a config") from None
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"config error: {path}: not a usable YAML value: {str(e).split(';')[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config error: {path}: the top level must be a mapping")
    sets = [set_dotted(data, o) for o in overrides]
    try:
        return _validate(data, sets)
    except RecursionError:
        raise ConfigError(f"config error: {path}: nested too deeply to be a config") from None


# ----------------------------------------------------------------------------- every key, with its help

HELP_WIDTH = 110  # characters of help shown per key (`curate config show`)


def _comments(cls: type) -> dict[str, str]:
    """{field: its comment} from the class's source: a trailing comment on the field's lines,
    else the comment lines right above it (the models document their keys there)."""
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = src.splitlines()
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.COMMENT:
                text = tok.string.lstrip("#").strip()
                # a section rule (`# --- the judge ----`) names a group of keys, not the next key
                comments[tok.start[0]] = "" if text.startswith("---") else text
    except (tokenize.TokenError, SyntaxError):
        return {}
    out: dict[str, str] = {}
    body = ast.parse(src).body[0].body
    for node in body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        text = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        if not text:
            above, n = [], node.lineno - 1
            while n >= 1 and n in comments and lines[n - 1].lstrip().startswith("#"):
                above.insert(0, comments[n])
                n -= 1
            text = above
        if any(text):
            out[node.target.id] = " ".join(t for t in text if t)
    return out


def field_help(cls: type, name: str) -> str:
    """One line of help for `cls.name`: its Field description, else its comment in the source,
    else (a nested model) the first sentence of the model's docstring."""
    info = cls.model_fields[name]
    text = info.description
    if not text:
        for klass in cls.__mro__:
            if issubclass(klass, BaseModel) and name in getattr(klass, "__annotations__", {}):
                text = _comments(klass).get(name)
                break
    sub = info.annotation
    if not text and isinstance(sub, type) and issubclass(sub, BaseModel) and sub.__doc__:
        text = sub.__doc__.strip().split("\n\n")[0]
    import typing

    choices = [a for t in (sub, *typing.get_args(sub)) if typing.get_origin(t) is Literal for a in typing.get_args(t)]
    if len(choices) > 1:
        text = f"{' | '.join(map(str, choices))}" + (f"; {text}" if text else "")
    text = " ".join((text or "").split())
    if len(text) > HELP_WIDTH:
        text = text[: HELP_WIDTH - 1].rsplit(" ", 1)[0] + " …"
    return text


def _flow(value: Any) -> str:
    """A value as one line of YAML (flow style)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    dumped = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True, sort_keys=False)
    return dumped.removesuffix("\n").removesuffix("\n...").strip()


def _show(model: BaseModel, depth: int, out: list[str]) -> None:
    cls = type(model)
    pad = "  " * depth
    for name, info in cls.model_fields.items():
        value = getattr(model, name)
        help_ = field_help(cls, name)
        if isinstance(value, BaseModel):
            out.append((f"{pad}{name}:", help_))
            _show(value, depth + 1, out)
            continue
        default = info.get_default(call_default_factory=True)
        same = _flow(value) == _flow(default)
        out.append((f"{pad}{name}: {_flow(value)}", help_ if same else f"(default: {_flow(default)}) {help_}".strip()))


def show(config: Config) -> str:
    """The effective configuration as YAML that loads back: every key, its value, and one line
    of help; a value that is not the default says what the default is."""
    rows: list = []
    _show(config, 0, rows)
    width = min(48, max(len(k) for k, _ in rows))
    return "\n".join(f"{k:<{width}}  # {h}" if h else k for k, h in rows) + "\n"


def known_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (a list's items as `*`)."""
    import typing

    out = []
    for name, info in cls.model_fields.items():
        key = f"{prefix}{name}"
        out.append(key)
        sub = info.annotation
        if typing.get_origin(sub) is list and typing.get_args(sub):
            sub, key = typing.get_args(sub)[0], f"{key}.*"
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out += known_keys(sub, f"{key}.")
    return out


def suggest(loc: tuple) -> str | None:
    """The known key nearest to an unknown one (`stages.langid.enable` -> `stages.langid.enabled`)."""
    import difflib

    parts = [str(p) for p in loc]
    pattern = ".".join("*" if p.isdigit() else p for p in parts)
    keys = known_keys()
    same_level = [k for k in keys if k.count(".") == pattern.count(".")]
    best = (
        difflib.get_close_matches(pattern, same_level, n=1, cutoff=0.75)
        or difflib.get_close_matches(
            parts[-1],
            [k.rsplit(".", 1)[-1] for k in same_level if k.rsplit(".", 1)[0] == pattern.rpartition(".")[0]],
            n=1,
            cutoff=0.6,
        )
        or difflib.get_close_matches(pattern, keys, n=1, cutoff=0.75)
    )
    if not best:
        return None
    hit = best[0] if "." in best[0] or not pattern.count(".") else best[0]
    if "." not in hit and pattern.count("."):  # a leaf name matched under the same parent
        hit = f"{pattern.rpartition('.')[0]}.{hit}"
    indices = iter(p for p in parts if p.isdigit())
    return ".".join(next(indices, "0") if p == "*" else p for p in hit.split("."))
