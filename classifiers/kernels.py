"""The compiled kernels, compiled ahead of time: `kernels()` returns them.

The heuristics' word passes, stop-word count and code-file counts
(`heuristics/compiled_kernels.py`), the n-gram kernel (`heuristics/ngram_kernel.py`), MinHash's
(`minhash_kernel.py`), Llama 3's token counter (`bpe_kernel.py`), the quality classifier's words
(`quality_kernel.py`) and prediction (`fasttext_kernel.py`) and code detection's keyword
pre-filter (`needle_kernel.py`) are numba functions.
Compiled on the fly, or even loaded from numba's own cache, they cost every process that uses
them ~0.6 s and ~150 MB (numba and LLVM are loaded to link them), and a run has one such
process per worker. So they are compiled once per machine, ahead of time (numba.pycc), into
one extension module in the cache (`$CURATE_CACHE/kernels-<digest>`, `make setup` builds it,
else the first process that needs it: ~10 s); a process imports that module (~40 ms, ~15 MB,
no numba). The digest covers the kernels' sources, this module, numba, numpy, Python and the
target CPU, so a stale module is never loaded.

`CURATE_KERNELS` chooses:
- `host` (default): compiled for this machine's CPU (its model and features are in the digest);
- `generic`: for any CPU of this architecture (a container image built on one machine and run
  on others: the Dockerfile's choice; MinHash ~25% slower, the rest the same);
- `jit`: numba's own compilation on the fly, no module.
Where the module cannot be built (no C compiler, no writable cache) the numba functions are used
as they are, with one warning: the same code, so the same answers either way (tests compare).

    python -m classifiers.kernels     # build (or find) the module and print its path
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import platform
import sys
import sysconfig
import warnings
from pathlib import Path

MODULE = "curate_kernels"
REV = 1  # bump when the build below changes
_HERE = Path(__file__).resolve().parent
SOURCES = (  # the kernels' modules, relative to classifiers/
    "heuristics/compiled_kernels.py",
    "heuristics/ngram_kernel.py",
    "minhash_kernel.py",
    "bpe_kernel.py",
    "bpe_consts.py",
    "quality_kernel.py",
    "needle_kernel.py",
    "fasttext_kernel.py",
    "fasttext_consts.py",
    "quality_consts.py",
    "text.py",  # the FNV constants of bpe_kernel
    "utf8_kernel.py",
)


def _exports() -> dict:
    """name -> (module, function, numba signature) of the exported entry points. The input arrays
    are declared read-only, which accepts writable ones too (callers pass np.frombuffer views)."""
    from numba import types as t

    def ro(dtype, ndim=1):
        return t.Array(dtype, ndim, "C", readonly=True)

    def rw(dtype, ndim=1):
        return t.Array(dtype, ndim, "C")

    text = "classifiers.heuristics.compiled_kernels"
    out = {
        "word_pass": (
            text,
            "_word_pass",
            t.Tuple((t.int64, t.int64, t.int64, t.int64, rw(t.uint32), rw(t.float64), t.int64))(
                ro(t.uint32), ro(t.uint8)
            ),
        ),
        "unspaced_pass": (
            text,
            "_unspaced_pass",
            t.Tuple(
                (
                    t.int64,
                    t.int64,
                    t.int64,
                    t.int64,
                    rw(t.uint32),
                    rw(t.int64),
                    rw(t.int64),
                    rw(t.int64),
                    rw(t.int64),
                    t.int64,
                )
            )(ro(t.uint32), ro(t.uint32), ro(t.uint8), ro(t.uint8)),
        ),
        "count_members": (
            text,
            "count_members",
            t.int64(ro(t.uint32), ro(t.int32), ro(t.uint64), ro(t.int64), ro(t.uint32)),
        ),
        "data_bytes": (text, "data_bytes", t.UniTuple(t.int64, 2)(ro(t.uint8), t.int64)),
        "code_bytes": (text, "code_bytes", t.UniTuple(t.int64, 2)(ro(t.uint8))),
        "words_ngram_chars": (
            "classifiers.heuristics.ngram_kernel",
            "_words_ngram_chars",
            rw(t.float64)(ro(t.uint32), t.int64, ro(t.int64), ro(t.uint8)),
        ),
    }
    out["quality_words"] = (
        "classifiers.quality_kernel",
        "spaced_words",
        t.Tuple((rw(t.uint8), rw(t.int64), rw(t.boolean), rw(t.boolean)))(
            ro(t.uint8), ro(t.int64), ro(t.boolean), ro(t.uint8), ro(t.int32), ro(t.int32), t.int64
        ),
    )
    out["needles_present"] = (
        "classifiers.needle_kernel",
        "needles_present",
        t.int64(
            ro(t.uint8),
            ro(t.uint8),
            ro(t.int64),
            ro(t.int32),
            ro(t.uint8),
            ro(t.int64),
            ro(t.uint8),
            t.boolean,
            rw(t.uint64),
        ),
    )
    ft = "classifiers.fasttext_kernel"
    out["ft_read_dictionary"] = (
        ft,
        "read_dictionary",
        t.Tuple((rw(t.uint8), rw(t.int64), rw(t.int64), t.int64))(ro(t.uint8), t.int64, t.int64),
    )
    out["ft_vocab_table"] = (ft, "vocab_table", rw(t.uint64, 2)(ro(t.uint8), ro(t.int64), t.int64))
    out["ft_prune_table"] = (ft, "prune_table", rw(t.int64)(ro(t.int32), ro(t.int32), t.int64))
    i64, f32, u8 = t.int64, t.float32, t.uint8
    out["ft_decode_quantized"] = (
        ft,
        "decode_quantized",
        rw(f32, 2)(ro(u8), ro(f32), i64, i64, i64, ro(u8), ro(f32), i64),
    )
    out["ft_vocab_subwords"] = (
        ft,
        "vocab_subwords",
        t.UniTuple(rw(i64), 2)(ro(u8), ro(i64), i64, i64, i64, i64, i64, ro(i64)),
    )
    out["ft_predict_batch"] = (
        ft,
        "predict_batch",
        t.Tuple((rw(i64), rw(f32, 2), rw(i64, 2), rw(i64)))(
            ro(u8), ro(i64), ro(t.uint64, 2), ro(u8), ro(i64),  # lines (UTF-8), dictionary
            i64, i64, i64, i64, i64, i64, ro(i64), ro(i64), ro(i64),  # nwords ... maxn, pruning, n-grams
            ro(f32, 2), ro(f32, 2), ro(t.int32, 2), i64, t.float64,  # input, output, tree, k, threshold
        ),
    )  # fmt: skip
    bpe = "classifiers.bpe_kernel"
    out["bpe_count_batch"] = (
        bpe,
        "count_batch",
        rw(t.int64)(
            ro(t.uint32),
            ro(t.int64),
            ro(t.uint8),
            ro(t.uint8),
            ro(t.int32),
            ro(t.int32),
            ro(t.int64),
            ro(t.int32),
            rw(t.int64),
            rw(t.uint8),
        ),
    )
    out["bpe_fill_slots"] = (bpe, "fill_slots", t.none(ro(t.uint8), ro(t.int32), rw(t.int64)))
    out["bpe_piece_ends"] = (bpe, "piece_ends", rw(t.int64)(ro(t.uint32), ro(t.uint8)))
    for name, dtype in (("signatures32", t.uint32), ("signatures64", t.uint64)):
        out[name] = (
            "classifiers.minhash_kernel",
            "_signatures_kernel",
            t.none(
                ro(t.uint8),
                ro(t.int64),
                ro(t.boolean),
                t.int64,
                t.int64,
                ro(t.uint8),
                ro(t.int32),
                t.int64,
                ro(dtype),
                ro(dtype),
                t.uint64,
                rw(dtype, 2),
            ),
        )
    return out


def _cpu() -> str:
    """The CPU the module is compiled for: its model and feature flags (Linux), else the
    platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            info = f.read().split("\n\n", 1)[0]
        keep = [ln for ln in info.splitlines() if ln.split(":")[0].strip() in ("model name", "flags", "Features")]
        if keep:
            return "\n".join(keep)
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _target() -> str:
    mode = os.environ.get("CURATE_KERNELS") or "host"
    if mode not in ("host", "generic", "jit"):
        raise ValueError(f"CURATE_KERNELS={mode!r}: expected host, generic or jit")
    return mode


def digest() -> str:
    target = _target()
    h = hashlib.sha256()
    for rel in (*SOURCES, "kernels.py"):
        h.update((_HERE / rel).read_bytes())
    for dist in ("numba", "numpy"):
        h.update(importlib.metadata.version(dist).encode())
    h.update(f"{REV} {sys.version} {sysconfig.get_platform()} {target}".encode())
    if target == "host":
        h.update(_cpu().encode())
    return h.hexdigest()[:16]


def _build(tmp: Path) -> None:
    from numba.pycc import CC

    cc = CC(MODULE)
    cc.output_dir = str(tmp)
    cc.target_cpu = _target()
    cc.verbose = False
    for name, (module, func, sig) in _exports().items():
        cc.export(name, sig)(getattr(importlib.import_module(module), func).py_func)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's pending-deprecation notice
        cc.compile()


def module_path() -> Path:
    """The compiled module's path, built into the cache on first use."""
    from classifiers.artifacts import cached, default_cache

    d = cached(default_cache(), f"kernels-{digest()}", _build)
    found = [p for p in d.iterdir() if p.name.startswith(MODULE + ".") and p.suffix in (".so", ".pyd")]
    if not found:
        raise ImportError(f"no {MODULE} extension in {d}")
    return found[0]


def _load(path: Path):
    loader = importlib.machinery.ExtensionFileLoader(MODULE, str(path))
    spec = importlib.util.spec_from_file_location(MODULE, str(path), loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


class _Jit:
    """The numba functions themselves, by the exported names (compiled on the fly)."""

    def __init__(self):
        for name, (module, func, _) in _exports().items():
            setattr(self, name, getattr(importlib.import_module(module), func))


@functools.lru_cache(maxsize=1)
def kernels():
    """The kernels, as attributes named as in _exports (word_pass, count_members, bpe_count_batch,
    needles_present, ...)."""
    try:
        if _target() == "jit":
            return _Jit()
        return _load(module_path())
    except Exception as e:  # noqa: BLE001 - no compiler, a read-only cache: the same code, JIT-compiled
        why = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}" if str(e).strip() else type(e).__name__
        warnings.warn(
            f"curate: the compiled kernels could not be built ({why}); using numba's just-in-time "
            "compilation instead (the same answers; slower start, more memory per process)",
            RuntimeWarning,
            stacklevel=2,
        )
        return _Jit()


if __name__ == "__main__":
    print(module_path())
