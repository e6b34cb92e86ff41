"""Token counts for the mixture (`n_tokens`): which tokenizer, and counting with it. No Beam.

Three kinds (config `tokenizer.kind`):

- `llama3` (default): Llama 3's 128,256-token BPE, exact. Its tokenizer.json is built once from
  llama.cpp's copy of the vocabulary (classifiers/artifacts.py: `llama3_tokenizer_dir`) into
  the cache (`$CURATE_CACHE`, else ~/.cache/curate); `make setup` builds it, else the first
  run does (one line on stderr).
- `file`: any Hugging Face tokenizer.json (`tokenizer.path`), exact.
- `approx`: UTF-8 bytes / 4, an estimate, only when asked for; the manifest says so.

A count is `len(tokenizer.encode(text, add_special_tokens=False).ids)`: no BOS/EOS. (Text that
spells a special token, e.g. "<|eot_id|>", counts as that one token, as the tokenizer.json
encodes it.)

`TokenizerSpec` names what was resolved on the machine that plans the job (name, source, sha256
of the tokenizer.json) and travels to the workers; `TokenCounter.load(spec)` opens the same
file there (a `file` whose sha256 differs from the spec's is refused, so that every worker
counts with the tokenizer the manifest names), or for llama3 the worker's own cache entry of
the same recipe (the worker image builds it; a worker without it builds it on first use).
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from classifiers.text import APPROX_TOKENIZER_NAME, approx_token_count

LLAMA3, FILE, APPROX = "llama3", "file", "approx"
KINDS = (LLAMA3, FILE, APPROX)
LLAMA3_SOURCE = ("Meta Llama 3's 128,256-token BPE (Meta Llama 3 Community License), tokenizer.json"
                 " built from llama.cpp's ggml-vocab-llama-bpe.gguf in PyPI's llama-cpp-python {version}"
                 " source archive")


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
        log(f"building Llama 3's tokenizer into {final.parent} (once: llama.cpp's vocabulary from PyPI's"
            f" {artifacts.LLAMA_CPP_PYTHON} source archive, ~77 MB)")
    try:
        return artifacts.llama3_tokenizer_dir(cache) / "tokenizer.json"
    except Exception as e:  # noqa: BLE001 - network, disk, a changed archive: one line, with the fix
        detail = " ".join(str(e).split())[:300]
        raise TokenizerError(
            f"tokenizer error: cannot build Llama 3's tokenizer in {cache} ({type(e).__name__}: {detail});"
            " run `make setup` (or `python -m classifiers.artifacts llama3`) where PyPI is reachable and copy"
            " the cache here ($CURATE_CACHE), or set tokenizer.path to a tokenizer.json"
            " (tokenizer.kind=approx estimates bytes/4)") from None


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def resolve(kind: str = LLAMA3, path: str | None = None, cache: Path | None = None,
            log: Callable[[str], None] | None = _stderr) -> TokenizerSpec:
    """The tokenizer a run counts with: builds Llama 3's on first use; raises TokenizerError."""
    if kind == APPROX:
        return TokenizerSpec(APPROX, APPROX_TOKENIZER_NAME, "UTF-8 bytes / 4, rounded up (an estimate)")
    if kind == FILE:
        if not path or not Path(path).is_file():
            raise TokenizerError(f"config error: tokenizer.path: {path} does not exist")
        return TokenizerSpec(FILE, path, "tokenizer.path", str(path), file_sha256(path))
    if kind == LLAMA3:
        from classifiers.artifacts import LLAMA_CPP_PYTHON
        json_path = llama3_tokenizer_json(cache, log)
        return TokenizerSpec(LLAMA3, LLAMA3, LLAMA3_SOURCE.format(version=LLAMA_CPP_PYTHON.split("==")[1]),
                             str(json_path), file_sha256(json_path))
    raise TokenizerError(f"config error: tokenizer.kind: {kind!r} is not one of {', '.join(KINDS)}")


class TokenCounter:
    """Counts tokens with a resolved spec, batched (`encode_batch_fast` runs in Rust, on
    RAYON_NUM_THREADS threads, all cores by default)."""

    def __init__(self, spec: TokenizerSpec, tokenizer=None):
        self.spec, self.tok = spec, tokenizer
        self._encode = None
        if tokenizer is not None:
            self._encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch

    @classmethod
    def load(cls, spec: TokenizerSpec) -> "TokenCounter":
        if spec.approximate:
            return cls(spec)
        from tokenizers import Tokenizer

        path = spec.path
        if spec.kind == LLAMA3:
            if not (path and Path(path).is_file()):
                # a worker that did not plan the job: its own cache's copy, same recipe (the cache
                # entry's name), checked against llama.cpp's test vectors when it was built
                path = str(llama3_tokenizer_json())
            return cls(spec, Tokenizer.from_file(path))
        if not (path and Path(path).is_file()):
            raise TokenizerError(f"tokenizer error: {spec.name}: {path} does not exist on this machine")
        if spec.sha256 and file_sha256(path) != spec.sha256:
            raise TokenizerError(f"tokenizer error: {path} is not the tokenizer this job was planned with"
                                 f" (sha256 {spec.sha256[:12]}...)")
        return cls(spec, Tokenizer.from_file(path))

    def count(self, texts: list[str]) -> list[int]:
        if self.tok is None:
            return [approx_token_count(len(t.encode("utf-8", "surrogatepass"))) for t in texts]
        return [len(e.ids) for e in self._encode(texts, add_special_tokens=False)]

    def count_bytes(self, texts: list[str], n_bytes: list[int]) -> list[int]:
        """`count`, with the approximation taken from known UTF-8 sizes."""
        if self.tok is None:
            return [approx_token_count(n) for n in n_bytes]
        return self.count(texts)
