"""classifiers.minhash: datasketch-equal signatures, LSH parameters, band keys, clustering."""

from __future__ import annotations

import pickle
import random
import time
from pathlib import Path

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash
from datasketch.lsh import _optimal_param
from pydantic import ValidationError

from classifiers.minhash import (
    MinHasher,
    MinHashParams,
    band_keys,
    bucket_edges,
    candidate_edges,
    connected_components,
    jaccard,
    optimal_bands,
    s_curve,
    shingles,
)
from tests.corpus import dev_sentences_by_language


def reference(text: str, params: MinHashParams, char_level: bool = False) -> MinHash:
    m = MinHash(num_perm=params.num_perm, seed=params.seed, scheme=params.scheme)
    m.update_batch(shingles(text, params.char_ngram if char_level else params.ngram, char_level, params.max_chars))
    return m


def assert_equal_to_datasketch(texts, params: MinHashParams, char_level=None):
    sigs = MinHasher(params).signatures(texts, char_level)
    assert sigs.shape == (len(texts), params.num_perm)
    for i, text in enumerate(texts):
        ref = reference(text, params, bool(char_level[i]) if char_level is not None else False)
        assert sigs.dtype == ref.hashvalues.dtype
        assert np.array_equal(sigs[i], ref.hashvalues), (i, text[:80])
    return sigs


@pytest.fixture(scope="module")
def dev_paragraphs() -> dict[str, list[str]]:
    """lang -> paragraphs of 10 consecutive dev-set sentences (a sample of languages; 25 paragraphs
    or more of each: tests/corpus.py)."""
    wanted = {"en", "de", "ru", "hi", "ar", "el", "ta", "zh", "ja", "ko", "th", "vi"}
    sents = dev_sentences_by_language(wanted, per_language=250)
    sep = {"zh": "", "ja": ""}
    return {
        lang: [sep.get(lang, " ").join(s[i : i + 10]) for i in range(0, len(s) - 9, 10)] for lang, s in sents.items()
    }


def random_text(rng: random.Random) -> str:
    alphabet = (
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" * 3
        + "äöüßÉÈçñ"
        + "ΑΒΓΣσςαβγ"
        + "ДЖЯжяё"
        + "हिन्दी"
        + "日本語中文한국어"
        + "ไทย"
        + "𝐀𝐁𝟘😀"
        + "İı"
    )
    seps = [" ", "  ", "\n", ", ", ". ", "!? ", " - ", "\t", "_", "’", "«»", "。", "、"]
    words = []
    for _ in range(rng.choice([0, 1, 3, 4, 5, 6, 20, 150])):
        n = rng.choice([1, 2, 5, 8, 13, 30, 70, 140])  # long words: multi-block SHA-1 messages
        words.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, n))))
        words.append(rng.choice(seps))
    return "".join(words)


# ------------------------------------------------------------------------------------------------
# signatures == datasketch


@pytest.mark.parametrize(
    "params",
    [
        MinHashParams(),
        MinHashParams(num_perm=64, seed=3, ngram=3),
        MinHashParams(scheme="affine64", num_perm=40, seed=7),
        MinHashParams(scheme="legacy", num_perm=40, seed=0),
    ],
    ids=["default", "affine32-64perm", "affine64", "legacy"],
)
def test_signatures_equal_datasketch_on_random_texts(params):
    rng = random.Random(params.num_perm + params.seed)
    texts = [random_text(rng) for _ in range(60)] + ["", "!!! ...", "One", "a b c d"]
    char_level = [rng.random() < 0.3 for _ in texts]
    assert_equal_to_datasketch(texts, params, char_level)


def test_sha1_block_boundaries():
    """One-shingle documents whose shingle is 0..200 bytes long (1 to 4 SHA-1 blocks; ASCII and
    2-, 3-, 4-byte characters shift where the message ends inside a word)."""
    texts = []
    for length in range(0, 200):
        texts.append("x" * length)
        texts.append("é" * (length // 2) + "y" * (length % 2))
        texts.append("語" * (length // 3) + "z" * (length % 3))
        texts.append("𝐀" * (length // 4) + "w" * (length % 4))
    assert_equal_to_datasketch(texts, MinHashParams(num_perm=16))


def test_signatures_equal_datasketch_on_real_texts(dev_paragraphs):
    import json
    import textwrap
    from pydoc_data.topics import topics

    params = MinHashParams()
    texts, char_level = [], []
    for lang, paras in sorted(dev_paragraphs.items()):
        texts += paras[:4]
        char_level += [lang in params.char_languages] * 4
    texts += [topics["assert"], topics["with"], Path(json.__file__).read_text(), Path(textwrap.__file__).read_text()]
    char_level += [False] * 4
    sigs = assert_equal_to_datasketch(texts, params, char_level)
    # LeanMinHash (what a datasketch MinHashLSH index stores) of ours == of datasketch's
    for i in (0, 5, len(texts) - 1):
        ours = LeanMinHash(seed=params.seed, hashvalues=sigs[i], scheme=params.scheme)
        theirs = LeanMinHash(reference(texts[i], params, char_level[i]))
        assert ours == theirs
        assert ours.jaccard(theirs) == 1.0
    a = LeanMinHash(seed=1, hashvalues=sigs[0], scheme="affine32")
    b = LeanMinHash(seed=1, hashvalues=sigs[1], scheme="affine32")
    assert a.jaccard(b) == reference(texts[0], params, char_level[0]).jaccard(
        reference(texts[1], params, char_level[1])
    )


def test_tokeniser_covers_every_code_point():
    """The kernel's character table and the regex of `shingles` agree on all of Unicode:
    documents made of every code point (spaced at random) hash like datasketch fed with the
    regex's shingles."""
    rng = random.Random(5)
    cps = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    rng.shuffle(cps)
    texts = []
    for i in range(0, len(cps), 4000):
        chunk = [chr(c) for c in cps[i : i + 4000]]
        texts.append("".join(ch + (" " if rng.random() < 0.2 else "") for ch in chunk))
    assert_equal_to_datasketch(texts, MinHashParams(num_perm=8, ngram=2))


def test_normalisation():
    assert shingles("Hello,   WORLD!! It's a   test; of\nshingles.", 3) == [
        b"hello world it",
        b"world it s",
        b"it s a",
        b"s a test",
        b"a test of",
        b"test of shingles",
    ]
    # case, punctuation and whitespace do not matter
    mh = MinHasher()
    sigs = mh.signatures(
        [
            "The quick brown fox jumps over the lazy dog",
            "the QUICK, brown fox -- jumps over\n\nthe lazy dog!",
            "The quick brown fox jumps over the lazy cat",
        ]
    )
    assert np.array_equal(sigs[0], sigs[1]) and not np.array_equal(sigs[0], sigs[2])
    # lower-casing is str.lower's, in the kernel too (Kelvin sign, U+023A grows in UTF-8,
    # U+0130 becomes two code points, capital sigma depends on its position)
    cased = [
        "KELVIN \u212a Ⱥ ȾLONG words ÀÉÎÕÜ ДЖЯ ΑΒΓΔ ՀԱՅ Ⴀ ᏣᎳᎩ",
        "İSTANBUL İzmir Iğdır",
        "ΟΔΟΣ ΣΟΦΟΣ Σ ΑΣ.",
        "ǅungla ǄEMAL",
    ]
    assert_equal_to_datasketch(cased + [t.lower() for t in cased], MinHashParams(ngram=2))
    assert np.array_equal(mh.signatures(cased), mh.signatures([t.lower() for t in cased]))
    # marks belong to words (Devanagari vowel signs, virama)
    assert shingles("हिन्दी भाषा", 5) == ["हिन्दी भाषा".encode()]
    # short documents: one shingle, their whole normalised text; nothing left: the empty shingle
    assert shingles("Just three words.", 5) == [b"just three words"]
    assert shingles("", 5) == shingles(" ... !!", 5) == [b""]


def test_cjk_character_shingles(dev_paragraphs):
    params = MinHashParams()
    mh = MinHasher(params)
    assert shingles("日本語の、テキスト。", 5, char_level=True) == [
        s.encode() for s in ("日本語のテ", "本語のテキ", "語のテキス", "のテキスト")
    ]
    text = "我们今天去公园散步，天气非常好。孩子们在草地上玩耍，老人们在树下聊天。"
    respaced = "我们 今天去公园散步 天气非常好！ 孩子们在草地上玩耍、老人们在树下聊天"
    sigs = mh.signatures([text, respaced], [True] * 2)
    assert np.array_equal(sigs[0], sigs[1])  # punctuation and spaces do not matter
    # real paragraphs: a copy with 1% of characters substituted is found, others are not
    rng = random.Random(3)
    for lang in ("zh", "ja", "th", "ko"):
        paras = dev_paragraphs[lang][:20]
        edited = []
        for p in paras:
            chars = list(p)
            for i in rng.sample(range(len(chars)), max(1, len(chars) // 100)):
                chars[i] = rng.choice(chars)
            edited.append("".join(chars))
        keys = mh.band_keys(mh.signatures(paras + edited, [True] * 40))
        found = sum(bool(np.any(keys[i] == keys[20 + i])) for i in range(20))
        assert found >= 19, lang
        for i in range(20):
            for j in range(i + 1, 20):
                assert not np.any(keys[i] == keys[j]), (lang, i, j)
    # word level would make each clause one token: few shingles, no near-duplicate signal
    assert len(shingles(text, 5)) == 1
    assert mh.char_level_for(["zh", "ja", "en", None, "th", "ko"]) == [True, True, False, False, True, True]


def test_huge_document_is_bounded():
    params = MinHashParams(max_chars=200_000)
    mh = MinHasher(params)
    unit = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
    huge = (unit * (50_000_000 // len(unit) + 1))[:50_000_000] + " the end differs"
    t = time.perf_counter()
    sig = mh.signatures([huge])
    assert time.perf_counter() - t < 5.0
    assert np.array_equal(sig[0], mh.signatures([huge[:200_000]])[0])
    assert np.array_equal(sig[0], reference(huge, params).hashvalues)


def test_minhasher_pickles_and_validates_input():
    mh = MinHasher(MinHashParams(num_perm=32, seed=9))
    clone = pickle.loads(pickle.dumps(mh))
    texts = ["some words in a document here", "other words"]
    assert np.array_equal(mh.signatures(texts), clone.signatures(texts))
    assert mh.signatures([]).shape == (0, 32)
    with pytest.raises(ValueError):
        mh.signatures(texts, [True])


# ------------------------------------------------------------------------------------------------
# LSH parameters and band keys


def test_optimal_bands_matches_datasketch():
    for num_perm in (16, 64, 112, 128):
        for threshold in (0.3, 0.5, 0.75, 0.85, 0.95):
            for weights in ((0.5, 0.5), (0.25, 0.75)):
                assert optimal_bands(threshold, num_perm, *weights) == _optimal_param(threshold, num_perm, *weights), (
                    threshold,
                    num_perm,
                    weights,
                )


def test_params_bands_and_rows():
    params = MinHashParams()
    assert params.enabled is True and list(MinHashParams.model_fields)[0] == "enabled"
    assert params.band_rows == (14, 8)  # FineWeb's layout, derived from threshold 0.75
    assert MinHashParams(false_positive_weight=0.5, false_negative_weight=0.5).band_rows == (11, 10)
    assert MinHashParams(bands=20, rows=5).band_rows == (20, 5)
    assert MinHasher(MinHashParams(bands=20, rows=5)).band_keys(np.zeros((3, 112), np.uint32)).shape == (3, 20)
    with pytest.raises(ValidationError):
        MinHashParams(bands=20)
    with pytest.raises(ValidationError):
        MinHashParams(bands=20, rows=6)  # 120 > 112
    with pytest.raises(ValidationError):
        MinHashParams(thresold=0.8)
    assert s_curve(0.8, 14, 8) == pytest.approx(1 - (1 - 0.8**8) ** 14)


def _band_key_scalar(values, band):
    m = (1 << 64) - 1

    def fmix(h):
        h ^= h >> 33
        h = (h * 0xFF51AFD7ED558CCD) & m
        h ^= h >> 33
        h = (h * 0xC4CEB9FE1A85EC53) & m
        return h ^ (h >> 33)

    h = fmix(0x243F6A8885A308D3 ^ band)
    for v in values:
        h = fmix(((h ^ int(v)) * 0x9E3779B97F4A7C15) & m)
    return h


def test_band_keys_are_fixed():
    sig = (np.arange(32, dtype=np.uint64).reshape(2, 16) * np.uint64(2654435761)) % np.uint64(2**32)
    keys = band_keys(sig, 4, 4)
    assert keys.dtype == np.uint64 and keys.shape == (2, 4)
    # fixed values: a change of the hash would re-bucket every stored corpus
    assert [hex(k) for k in keys[0]] == [
        "0x32d6a8f9a57bcf33",
        "0x407c4ceb5f9375af",
        "0x1c3baef84c258460",
        "0x2b877279f5be9193",
    ]
    assert [hex(k) for k in keys[1]] == [
        "0xa90da0f91d17c5b0",
        "0xdf425c008d402c1a",
        "0x23ad5703a411418c",
        "0x69069b73ada45a99",
    ]
    for i in range(2):
        for band in range(4):
            assert keys[i, band] == _band_key_scalar(sig[i, band * 4 : (band + 1) * 4], band)
    # the same values as uint32 give the same keys; equal bands in different positions do not
    assert np.array_equal(band_keys(sig.astype(np.uint32), 4, 4), keys)
    same = np.zeros((1, 8), np.uint32)
    assert band_keys(same, 2, 4)[0, 0] != band_keys(same, 2, 4)[0, 1]
    with pytest.raises(ValueError):
        band_keys(sig, 5, 4)


def test_near_duplicates_found_unrelated_not(dev_paragraphs):
    params = MinHashParams()
    mh = MinHasher(params)
    rng = random.Random(11)
    originals, copies = [], []
    for lang in ("en", "de", "ru", "hi", "ar", "el", "ta", "vi"):
        for para in dev_paragraphs[lang][:25]:
            words = para.split()
            for i in rng.sample(range(len(words)), max(1, len(words) // 100)):  # 1% substituted
                words[i] = rng.choice(words)
            originals.append(para)
            copies.append(" ".join(words))
    n = len(originals)
    keys = mh.band_keys(mh.signatures(originals + copies))
    found = [bool(np.any(keys[i] == keys[n + i])) for i in range(n)]
    true_j = [jaccard(shingles(o), shingles(c)) for o, c in zip(originals, copies)]
    assert min(true_j) > 0.75
    assert sum(found) >= 0.95 * n
    # unrelated paragraphs never share a bucket; clusters are exactly the (original, copy) pairs
    ids = [f"o{i:03d}" for i in range(n)] + [f"c{i:03d}" for i in range(n)]
    roots = connected_components(candidate_edges(ids, keys, params.max_bucket_size))
    for i in range(n):
        if found[i]:
            assert roots[f"o{i:03d}"] == roots[f"c{i:03d}"] == f"c{i:03d}"  # lowest id
    clusters: dict = {}
    for node, root in roots.items():
        clusters.setdefault(root, set()).add(node[1:])
    assert all(len(members) == 1 for members in clusters.values())


# ------------------------------------------------------------------------------------------------
# bucket linking and connected components


def test_connected_components_chains_and_stars():
    chain = [(i + 1, i) for i in range(50, 0, -1)]  # 51-50, ..., 2-1, in reverse order
    roots = connected_components(chain)
    assert set(roots) == set(range(1, 52)) and set(roots.values()) == {1}
    star = [(100, i) for i in range(101, 120)] + [(i, 99) for i in range(130, 120, -1)]
    roots = connected_components(star + [(100, 125)])
    assert set(roots.values()) == {99}
    roots = connected_components([("b", "c"), ("d", "c"), ("x", "y"), ("z", "y"), ("c", "e")])
    assert roots == {"b": "b", "c": "b", "d": "b", "e": "b", "x": "x", "y": "x", "z": "x"}
    assert connected_components([]) == {}


@pytest.mark.parametrize("cap", [2, 3, 10])
def test_bucket_edges_tree_of_stars(cap):
    rng = random.Random(cap)
    for k in (1, 2, cap - 1, cap, cap + 1, cap * cap, cap * cap + 3, 257):
        members = rng.sample(range(10_000), k)
        edges = list(bucket_edges(iter(members), cap))
        assert len(edges) == max(0, k - 1)  # a spanning tree
        assert all(u < v for u, v in edges)
        if k > 1:
            roots = connected_components(edges)
            assert set(roots) == set(members) and set(roots.values()) == {min(members)}
            degree: dict = {}
            for u, v in edges:
                degree[u] = degree.get(u, 0) + 1
                degree[v] = degree.get(v, 0) + 1
            levels = 1
            while cap**levels < k:
                levels += 1
            assert max(degree.values()) <= (cap - 1) * levels + 1
    assert list(bucket_edges([5, 3, 9], 10)) == [(3, 5), (3, 9)]  # small bucket: one star
