"""Token counts for the mixture (`n_tokens`): which tokenizer, and counting with it. No Beam.

Three kinds (config `tokenizer.kind`):

- `llama3` (default): Llama 3's 128,256-token BPE, exact. Its tokenizer.json is built once from
  llama.cpp's copy of the vocabulary (classifiers/artifacts.py: `llama3_tokenizer_dir`) into
  the cache (`$CURATE_CACHE`, else ~/.cache/curate); `make setup` builds it, else the first
  run does (one line on stderr).
- `file`: any Hugging Face tokenizer.json (`tokenizer.path`), exact.
- `approx`: UTF-8 bytes / 4, an estimate, only when asked for; the manifest says so.

A count is `len(tokenizer.encode(text, add_special_tokens=False).ids)` with the tokenizer.json:
no BOS/EOS. (Text that spells a special token, e.g. "<|eot_id|>", counts as that one token, as
the tokenizer.json encodes it.) Llama 3's is computed through tiktoken (`tiktoken_encoding`:
the same ids, ~3.5x less CPU than `tokenizers`), any other tokenizer.json through `tokenizers`.

`TokenizerSpec` names what was resolved on the machine that plans the job (name, source, sha256
of the tokenizer.json) and travels to the workers; `TokenCounter.load(spec)` opens the same
file there (a `file` whose sha256 differs from the spec's is refused, so that every worker
counts with the tokenizer the manifest names), or for llama3 the worker's own cache entry of
the same recipe (the worker image builds it; a worker without it builds it on first use).
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from classifiers.text import APPROX_TOKENIZER_NAME, approx_token_count

LLAMA3, FILE, APPROX = "llama3", "file", "approx"
KINDS = (LLAMA3, FILE, APPROX)
LLAMA3_SOURCE = (
    "Meta Llama 3's 128,256-token BPE (Meta Llama 3 Community License), tokenizer.json"
    " built from llama.cpp's ggml-vocab-llama-bpe.gguf in PyPI's llama-cpp-python {version}"
    " source archive"
)


class TokenizerError(RuntimeError):
    """The configured tokenizer cannot be had here; the message is one line that names the fix."""


@dataclass(frozen=True)
class TokenizerSpec:
    kind: str  # llama3 | file | approx
    name: str  # "llama3", the tokenizer.json's path, or "approx:utf8_bytes/4"
    source: str  # where it comes from, in words
    path: str | None = None  # the tokenizer.json this machine counts with (None: approx)
    sha256: str | None = None  # of that file

    @property
    def approximate(self) -> bool:
        return self.kind == APPROX

    def manifest(self) -> dict:
        return asdict(self)


def label(manifest_value) -> str:
    """A manifest's `tokenizer` in a few words ("llama3 (sha256 0123456789ab)"); older manifests
    hold the name alone."""
    if not isinstance(manifest_value, dict):
        return str(manifest_value or "")
    sha = manifest_value.get("sha256")
    return f"{manifest_value.get('name')}" + (f" (sha256 {sha[:12]})" if sha else " (estimate)")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def llama3_tokenizer_json(cache: Path | None = None, log: Callable[[str], None] | None = None) -> Path:
    """The Llama 3 tokenizer.json in the cache, built first if missing (saying so with `log`)."""
    from classifiers import artifacts

    cache = cache or artifacts.default_cache()
    version = artifacts.LLAMA_CPP_PYTHON.split("==")[1]
    final = cache / f"llama3-tokenizer-{version}-{artifacts.REV}" / "tokenizer.json"
    if final.is_file():
        return final
    if log is not None:
        log(
            f"building Llama 3's tokenizer into {final.parent} (once: llama.cpp's vocabulary from PyPI's"
            f" {artifacts.LLAMA_CPP_PYTHON} source archive, ~77 MB)"
        )
    try:
        return artifacts.llama3_tokenizer_dir(cache) / "tokenizer.json"
    except Exception as e:  # noqa: BLE001 - network, disk, a changed archive: one line, with the fix
        detail = " ".join(str(e).split())[:300]
        raise TokenizerError(
            f"tokenizer error: cannot build Llama 3's tokenizer in {cache} ({type(e).__name__}: {detail});"
            " run `make setup` (or `python -m classifiers.artifacts llama3`) where PyPI is reachable and copy"
            " the cache here ($CURATE_CACHE), or set tokenizer.path to a tokenizer.json"
            " (tokenizer.kind=approx estimates bytes/4)"
        ) from None


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def resolve(
    kind: str = LLAMA3, path: str | None = None, cache: Path | None = None, log: Callable[[str], None] | None = _stderr
) -> TokenizerSpec:
    """The tokenizer a run counts with: builds Llama 3's on first use; raises TokenizerError."""
    if kind == APPROX:
        return TokenizerSpec(APPROX, APPROX_TOKENIZER_NAME, "UTF-8 bytes / 4, rounded up (an estimate)")
    if kind == FILE:
        if not path or not Path(path).is_file():
            raise TokenizerError(f"config error: tokenizer.path: {path} does not exist")
        check_tokenizer_file(path)
        return TokenizerSpec(FILE, path, "tokenizer.path", str(path), file_sha256(path))
    if kind == LLAMA3:
        from classifiers.artifacts import LLAMA_CPP_PYTHON

        json_path = llama3_tokenizer_json(cache, log)
        return TokenizerSpec(
            LLAMA3,
            LLAMA3,
            LLAMA3_SOURCE.format(version=LLAMA_CPP_PYTHON.split("==")[1]),
            str(json_path),
            file_sha256(json_path),
        )
    raise TokenizerError(f"config error: tokenizer.kind: {kind!r} is not one of {', '.join(KINDS)}")


def check_tokenizer_file(path: str | Path) -> None:
    """Load the tokenizer.json at `path` once, so that a file that is not one is a setup error
    (one line) rather than a failure of every worker at its first batch."""
    try:
        from tokenizers import Tokenizer

        Tokenizer.from_file(str(path))
    except ImportError:
        return  # counted with tokenizers: the workers say so
    except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception for a bad file
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise TokenizerError(
            f"config error: tokenizer.path: {path} is not a Hugging Face tokenizer.json ({detail})"
        ) from None


def _byte_decoder() -> dict[str, int]:
    """Byte-level BPE's printable stand-in for each byte (GPT-2's bytes_to_unicode), inverted."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, n = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(keep, chars)}


_ENCODINGS: dict[tuple, object] = {}  # one tiktoken Encoding per file and process (~0.1 s from cached ranks)


def tiktoken_encoding(tokenizer_json: str | Path):
    st = os.stat(tokenizer_json)
    key = (str(tokenizer_json), st.st_size, st.st_mtime_ns)
    if key not in _ENCODINGS:
        _ENCODINGS[key] = _tiktoken_encoding(tokenizer_json)
    return _ENCODINGS[key]


def _tiktoken_encoding(tokenizer_json: str | Path):
    """Llama 3's tokenizer.json as a tiktoken Encoding (ranks = token ids, the same pre-tokenizer
    regex, the added tokens as special tokens), or None without tiktoken or for a tokenizer.json
    of another shape. tiktoken is the library of Meta's reference tokenizer and encodes 3-5x
    faster per core than `tokenizers` here (bench/results/tokens.md); its ids equal the
    tokenizer.json's (llama.cpp's test vectors when the file is built, tests/test_tokens.py on
    real text), so the count is the same whichever runs. Rank-ordered merging equals BPE over
    the merges list only with `ignore_merges` and merges ranked like the tokens, as in Llama 3.
    The ranks read from a file are kept in the artefact cache under the file's SHA-256: every
    process that counts tokens (each worker) reads them in ~0.05 s instead of parsing 7 MB of
    JSON (0.5 s)."""
    try:
        import tiktoken
    except ImportError:
        return None
    from classifiers.artifacts import LLAMA3_PATTERN

    tables = _cached_ranks(Path(tokenizer_json))
    if tables is None:
        return None
    ranks, specials = tables
    return tiktoken.Encoding(
        f"curate:{Path(tokenizer_json).name}", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens=specials
    )


TIKTOKEN_CHUNK = 32  # texts per task of the tiktoken pool
# "0": Llama 3's tokens are counted by tiktoken (or `tokenizers`) only, not by the compiled
# kernel (NativeLlama3): the same counts, for a comparison or a machine without the kernels
NATIVE_ENV = "CURATE_NATIVE_TOKENS"
_RANKS_REVISION = 1  # of what _tiktoken_tables returns: a new one invalidates the cached ranks


def _cached_ranks(tokenizer_json: Path) -> tuple[dict[bytes, int], dict[str, int]] | None:
    """(ranks, special tokens) of a Llama-3-shaped tokenizer.json (_tiktoken_tables), else None;
    kept in the artefact cache under the file's SHA-256."""
    raw = tokenizer_json.read_bytes()
    return _ranks(raw, hashlib.sha256(raw).hexdigest())


def _ranks(raw: bytes, digest: str) -> tuple[dict[bytes, int], dict[str, int]] | None:
    import pickle

    from classifiers.artifacts import default_cache

    entry = default_cache() / "tiktoken-ranks" / f"{digest}-r{_RANKS_REVISION}.pickle"
    try:
        return pickle.loads(entry.read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError):
        pass
    tables = _tiktoken_tables(raw)
    _write_entry(entry, lambda f: pickle.dump(tables, f, protocol=pickle.HIGHEST_PROTOCOL))
    return tables


def _cached_native_arrays(tokenizer_json: Path) -> tuple[dict[str, np.ndarray], dict[str, int]] | None:
    """The native counter's tables (_native_arrays) and the special tokens of a Llama-3-shaped
    tokenizer.json, else None; kept in the artefact cache beside the ranks they are made from."""
    from classifiers.artifacts import default_cache

    raw = tokenizer_json.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    entry = default_cache() / "llama3-native" / f"{digest}-r{_RANKS_REVISION}.{_NATIVE_REVISION}.npz"
    try:
        with np.load(entry) as z:
            loaded = {k: z[k] for k in z.files}
        specials = loaded.pop("specials").tolist()
        return loaded, dict(zip(specials[0::2], map(int, specials[1::2])))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # none yet, or damaged
        pass
    tables = _ranks(raw, digest)
    if tables is None:
        return None
    native, specials = _native_arrays(tables[0]), tables[1]
    flat = np.array([x for kv in specials.items() for x in (kv[0], str(kv[1]))], dtype=object).astype(str)
    _write_entry(entry, lambda f: np.savez(f, specials=flat, **native))
    return native, specials


def _write_entry(entry: Path, write: Callable) -> None:
    """A cache entry written whole by `write(file)`, then renamed: a concurrent reader sees all of
    it or nothing. In a read-only cache nothing is written (it is made again next time)."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}")
        with open(tmp, "wb") as f:
            write(f)
        tmp.replace(entry)
    except OSError:
        pass


def special_prefix(specials) -> str:
    """What every special token's text starts with (Llama 3's: "<|"): a text without it holds
    none of them. "" where they share no prefix, or there are none."""
    return os.path.commonprefix(sorted(specials)) if specials else ""


def _tiktoken_tables(raw: bytes) -> tuple[dict[bytes, int], dict[str, int]] | None:
    """(mergeable ranks, special tokens) of a Llama-3-shaped tokenizer.json, else None."""
    import json

    from classifiers.artifacts import LLAMA3_PATTERN

    spec = json.loads(raw.decode("utf-8"))
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers") or []
    if (
        model.get("type") != "BPE"
        or not model.get("ignore_merges")
        or spec.get("normalizer")
        or [st.get("type") for st in steps] != ["Split", "ByteLevel"]
        or steps[0].get("pattern", {}).get("Regex") != LLAMA3_PATTERN
        or steps[1].get("use_regex")
    ):
        return None
    byte_of = _byte_decoder()
    try:
        ranks = {bytes(byte_of[c] for c in piece): i for piece, i in model["vocab"].items()}
    except KeyError:  # a piece that is not byte-level
        return None
    specials = {t["content"]: t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
    for t in specials:
        ranks.pop(t.encode("utf-8"), None)
    return ranks, specials


_NATIVE_REVISION = 1  # of what _native_arrays returns: a new one invalidates the cached tables


class NativeLlama3:
    """Llama 3's token counts by the compiled kernel (classifiers/bpe_kernel.py): its vocabulary
    as the kernel's tables (cached per tokenizer file, like the ranks), the pre-tokenizer's
    character classes, and its BPE cache. `count` gives -1 for a text it leaves to the library:
    one holding the special tokens' common prefix ("<|": tiktoken counts a special token's text
    as that token) or a code point Python's Unicode database does not know."""

    def __init__(self, arrays: dict, special_prefix: str):
        from classifiers.bpe_consts import CACHE_BITS, CACHE_WIDTH
        from classifiers.unicode_tables import pretokenizer_classes

        self.arrays = tuple(arrays[k] for k in ("blob", "starts", "rank", "slots", "pair"))
        self.classes = pretokenizer_classes()
        self.special_prefix = special_prefix
        self.cache_keys = np.full(1 << CACHE_BITS, -1, np.int64)
        self.cache = np.zeros((1 << CACHE_BITS) * CACHE_WIDTH, np.uint8)

    @classmethod
    def load(cls, tokenizer_json: Path) -> NativeLlama3 | None:
        """The counter of a Llama-3-shaped tokenizer.json, else None."""
        tables = _cached_native_arrays(tokenizer_json)
        if tables is None:
            return None
        arrays, specials = tables
        prefix = special_prefix(specials)
        if specials and not prefix:  # no cheap test for a special token's text: the library counts
            return None
        return cls(arrays, prefix)

    def pieces(self, text: str) -> list[str]:
        """The pre-tokenizer's pieces of `text` as the kernel scans them (the regex's findall)."""
        from classifiers.kernels import kernels

        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
        ends = kernels().bpe_piece_ends(cps, self.classes).tolist()
        return [text[a:b] for a, b in zip([0, *ends], ends)]

    def count(self, texts: list[str]) -> list[int]:
        from classifiers.kernels import kernels

        prefix = self.special_prefix
        mine = [i for i, t in enumerate(texts) if not (prefix and prefix in t)]
        out = [-1] * len(texts)
        if mine:
            chosen = [texts[i] for i in mine]
            cps = np.frombuffer("".join(chosen).encode("utf-32-le", "surrogatepass"), np.uint32)
            offsets = np.zeros(len(chosen) + 1, np.int64)
            np.cumsum([len(t) for t in chosen], out=offsets[1:])
            counts = kernels().bpe_count_batch(cps, offsets, self.classes, *self.arrays, self.cache_keys, self.cache)
            for i, n in zip(mine, counts.tolist()):
                out[i] = n
        return out


def _native_arrays(ranks: dict[bytes, int]) -> dict[str, np.ndarray]:
    """The kernel's vocabulary tables: every entry's bytes (`blob`, entry t at
    starts[t]:starts[t + 1], in rank order) and `rank`; `slots`, the hash table over them
    (a power of two, at most half full); `pair`, the rank of each 2-byte entry by its bytes."""
    from classifiers.kernels import kernels

    items = sorted(ranks.items(), key=lambda kv: kv[1])
    blob = np.frombuffer(b"".join(k for k, _ in items), np.uint8).copy()
    starts = np.zeros(len(items) + 1, np.int32)
    np.cumsum([len(k) for k, _ in items], out=starts[1:])
    rank = np.array([r for _, r in items], np.int32)
    slots = np.full(1 << max(10, (2 * len(items)).bit_length()), -1, np.int64)
    kernels().bpe_fill_slots(blob, starts, slots)
    pair = np.full(65536, -1, np.int32)
    for k, r in items:
        if len(k) == 2:
            pair[k[0] * 256 + k[1]] = r
    return {"blob": blob, "starts": starts, "rank": rank, "slots": slots, "pair": pair}


class TokenCounter:
    """Counts tokens with a resolved spec, batched. Llama 3's through the compiled kernel
    (NativeLlama3; what it leaves, and everything with CURATE_NATIVE_TOKENS=0, through tiktoken:
    the same counts; `tokenizers` where tiktoken is missing), any other tokenizer.json through
    `tokenizers`' `encode_batch_fast` (Rust, RAYON_NUM_THREADS threads, all cores by default)."""

    def __init__(self, spec: TokenizerSpec, tokenizer=None, encoding=None, native=None, library_path=None):
        self.spec, self.tok, self.encoding, self.native = spec, tokenizer, encoding, native
        self._encode = None
        if tokenizer is not None:
            self._encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch
        # native: the tokenizer.json whose library counter counts the texts the kernel leaves
        self._library_path = library_path
        self._library: TokenCounter | None = None
        self._pool = None
        self.threads = min(8, os.cpu_count() or 1)  # tiktoken's: a pool of this many threads
        self._special_prefix: str | None = None  # what every special token starts with (tiktoken)

    @classmethod
    def load(cls, spec: TokenizerSpec) -> TokenCounter:
        if spec.approximate:
            return cls(spec)
        path = spec.path
        if spec.kind == LLAMA3:
            if not (path and Path(path).is_file()):
                # a worker that did not plan the job: its own cache's copy, same recipe (the cache
                # entry's name), checked against llama.cpp's test vectors when it was built
                path = str(llama3_tokenizer_json())
            if os.environ.get(NATIVE_ENV, "1") != "0":
                native = NativeLlama3.load(Path(path))
                if native is not None:
                    return cls(spec, native=native, library_path=path)
            return cls._library_counter(spec, path)
        if not (path and Path(path).is_file()):
            raise TokenizerError(f"tokenizer error: {spec.name}: {path} does not exist on this machine")
        if spec.sha256 and file_sha256(path) != spec.sha256:
            raise TokenizerError(
                f"tokenizer error: {path} is not the tokenizer this job was planned with (sha256 {spec.sha256[:12]}...)"
            )
        from tokenizers import Tokenizer

        return cls(spec, Tokenizer.from_file(path))

    @classmethod
    def _library_counter(cls, spec: TokenizerSpec, path: str) -> TokenCounter:
        """Llama 3's counter through a library: tiktoken, else `tokenizers`."""
        encoding = tiktoken_encoding(path)
        if encoding is not None:
            return cls(spec, encoding=encoding)
        from tokenizers import Tokenizer

        return cls(spec, Tokenizer.from_file(path))

    def count(self, texts: list[str]) -> list[int]:
        if self.native is not None:
            counts = self.native.count(texts)
            left = [i for i, n in enumerate(counts) if n < 0]
            if left:
                if self._library is None:  # loaded on first need: most runs never need it
                    self._library = self._library_counter(self.spec, self._library_path)
                for i, n in zip(left, self._library.count([texts[i] for i in left])):
                    counts[i] = n
            return counts
        if self.encoding is not None:
            return self._count_tiktoken(texts)
        if self.tok is None:
            return [approx_token_count(len(t.encode("utf-8", "surrogatepass"))) for t in texts]
        return [len(e.ids) for e in self._encode(texts, add_special_tokens=False)]

    def count_bytes(self, texts: list[str], n_bytes: list[int]) -> list[int]:
        """`count`, with the approximation taken from known UTF-8 sizes."""
        if self.tok is None and self.encoding is None and self.native is None:
            return [approx_token_count(n) for n in n_bytes]
        return self.count(texts)

    def _count_tiktoken(self, texts: list[str]) -> list[int]:
        # special-token strings in the text count as those tokens, as the tokenizer.json encodes
        # them; a text without their common prefix (Llama 3's "<|") holds none of them, and its
        # ordinary encoding is the same, without handing tiktoken the set of 256 each call
        enc, special = self.encoding, self.encoding.special_tokens_set
        if self._special_prefix is None:
            self._special_prefix = special_prefix(special)
        prefix = self._special_prefix

        def count(chunk: list[str]) -> list[int]:
            return [
                len(enc.encode_ordinary(t))
                if prefix and prefix not in t
                else len(enc.encode(t, allowed_special=special, disallowed_special=()))
                for t in chunk
            ]

        if self.threads <= 1 or len(texts) < 2:
            return count(texts)
        if self._pool is None:  # tiktoken encodes without the GIL
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tokens")
        # chunks of TIKTOKEN_CHUNK texts: a future per text cost more than its wait
        chunks = [texts[i : i + TIKTOKEN_CHUNK] for i in range(0, len(texts), TIKTOKEN_CHUNK)]
        return [n for counts in self._pool.map(count, chunks) for n in counts]
