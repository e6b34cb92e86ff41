"""The compiled kernels (classifiers/kernels.py): the ahead-of-time module is what a process
loads (no numba), it answers as numba's own compilation of the same functions on real text, and
where it cannot be built the run goes on with numba, saying so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifiers import kernels as K
from classifiers.heuristics.compiled import _flags, _member_table, _scripts
from classifiers.heuristics.stopwords import STOP_WORDS
from classifiers.heuristics.textstats import COMPILED_CLASSES, UNSPACED_SCRIPTS
from classifiers.langid import _NEEDLES
from classifiers.minhash import MinHasher, MinHashParams, _prepare
from tests.corpus import dev_sentences_by_language, paragraphs, sample_docs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def both():
    aot = K.kernels()
    assert not isinstance(aot, K._Jit), "the ahead-of-time module was not built"
    return aot, K._Jit()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    docs = [d["text"] for d in sample_docs()]
    by_lang = dev_sentences_by_language(per_language=15)
    paras = [p for _, p in paragraphs(by_lang, 5)]
    return docs + paras + ["", " ", "a", "\n\n", "x\ud800y", "\u2028\x85" * 3]


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())
    return type(a) is type(b) and a == b


def test_a_process_loads_the_compiled_module_not_numba(both):
    """(`both` has built the module into the tests' cache)"""
    code = (
        "import sys; from classifiers.kernels import kernels; k = kernels(); "
        "print(type(k).__name__, 'numba' in sys.modules, 'llvmlite' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "CURATE_KERNELS"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["module", "False", "False"], out.stdout + out.stderr


def test_text_kernels_equal_numba_on_real_text(both, texts):
    aot, jit = both
    flags = _flags(COMPILED_CLASSES)
    for text in texts:
        lower = text.lower()
        codes = np.frombuffer(lower.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        a, j = aot.word_pass(codes, flags), jit.word_pass(codes, flags)
        assert _same(a, j), text[:80]
        raw = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
        assert aot.code_bytes(raw) == jit.code_bytes(raw)
        for min_blob in (16, 64):
            assert aot.data_bytes(raw, min_blob) == jit.data_bytes(raw, min_blob)
        scripts = _scripts(UNSPACED_SCRIPTS)
        raw32 = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        assert _same(aot.unspaced_pass(codes, raw32, flags, scripts), jit.unspaced_pass(codes, raw32, flags, scripts))
        stop = _member_table(STOP_WORDS["en"])
        assert aot.count_members(a[4], *stop) == jit.count_members(a[4], *stop)
        t, head = _NEEDLES, text[:2000]
        data = np.frombuffer(head.encode("utf-8", "surrogatepass"), dtype=np.uint8)
        found = [np.zeros(t.n_words, dtype=np.uint64) for _ in range(2)]
        for k, words in zip((aot, jit), found):
            k.needles_present(data, t.pairs, t.first, t.order, t.needles, t.offsets, t.folded, head.isascii(), words)
        assert _same(*found)
        words = a[4]
        if len(words):
            ks = np.array([1, 2, 3, 4, 5, 6, 8, 10], dtype=np.int64)
            for is_top in (np.ones(8, dtype=np.uint8), np.zeros(8, dtype=np.uint8)):
                n = int((words == 0x20).sum()) + 1
                assert _same(aot.words_ngram_chars(words, n, ks, is_top), jit.words_ngram_chars(words, n, ks, is_top))


@pytest.mark.parametrize("scheme", ["affine32", "affine64", "legacy"])
def test_minhash_kernel_equals_numba_on_real_text(both, texts, scheme):
    aot, jit = both
    mh = MinHasher(MinHashParams(scheme=scheme, num_perm=64))
    p = mh.params
    enc = [_prepare(t, p.max_chars) for t in texts]
    offsets = np.zeros(len(enc) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in enc], out=offsets[1:])
    data = np.frombuffer(b"".join(enc), dtype=np.uint8)
    chars = np.array([i % 3 == 0 for i in range(len(enc))], dtype=np.bool_)
    outs = []
    for k in (aot, jit):
        out = np.empty((len(enc), p.num_perm), dtype=mh.dtype)
        mh.run_kernel(k, data, offsets, chars, out)
        outs.append(out)
    assert (outs[0] == outs[1]).all()


def test_no_compiler_or_cache_falls_back_to_numba_with_one_warning(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory would be")
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "from classifiers.kernels import kernels\n"
        "import numpy as np\n"
        "k = kernels()\n"
        "print(type(k).__name__, k.code_bytes(np.frombuffer(b'ab\\ncde', dtype=np.uint8)))\n"
    )
    env = {**{k: v for k, v in os.environ.items() if k != "CURATE_KERNELS"}, "CURATE_CACHE": str(blocker / "cache")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["_Jit", "(3,", "5)"], out.stdout
    assert out.stderr.count("could not be built") == 1, out.stderr
    assert "Traceback" not in out.stderr


def test_digest_follows_the_sources():
    d = K.digest()
    assert d == K.digest() and len(d) == 16
    assert all((Path(K.__file__).parent / s).is_file() for s in K.SOURCES)
