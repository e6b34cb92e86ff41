"""Token counts (`n_tokens`): Llama 3's tokenizer by default, exact; any tokenizer.json when
`tokenizer.path` names one; the bytes/4 estimate only when asked for (`tokenizer.kind: approx`).

Llama 3's tokenizer is written from llama.cpp's copy of its vocabulary (PyPI's llama-cpp-python
source archive, classifiers/artifacts.py) and checked against llama.cpp's test vectors for it
and against tiktoken, the library of Meta's reference tokenizer. The end-to-end runs use a small
real corpus (pipeline/demo.py: pydoc prose, gettext catalogs, the standard library) and read the
Parquet files back. Nothing here reads ../shared."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import regex  # tiktoken's own dependency
import yaml
from tokenizers import Tokenizer

from classifiers import artifacts
from classifiers.artifacts import LLAMA3_PATTERN, LLAMA_BPE_GGUF, read_gguf_metadata, read_vocab_tests
from classifiers.tokens import TokenCounter, file_sha256, resolve, tiktoken_encoding
from pipeline.cli import main
from pipeline.config import ConfigError, load_config
from pipeline.demo import code_docs, multilingual_docs, prose_docs
from tests.corpus import write_jsonl

VIETNAMESE = "Cửa Việt"  # the vector transformers' GGUF loader gets wrong (no ignore_merges)


@pytest.fixture(scope="module")
def vocab_dir() -> Path:
    from tests.registry_models import CACHE

    return artifacts.llama_cpp_vocab_dir(CACHE)


@pytest.fixture(scope="module")
def llama3(llama3_tokenizer_dir) -> Tokenizer:
    return Tokenizer.from_file(str(llama3_tokenizer_dir / "tokenizer.json"))


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    """English prose, translated messages in 18 languages (8 scripts) and Python code, all real."""
    langs = {"ar", "bg", "de", "el", "es", "fa", "fr", "he", "hi", "ja", "ko", "pl", "ru", "th", "tr", "uk", "vi", "zh"}
    return prose_docs(40) + multilingual_docs(1, langs) + code_docs(25)


# --- the tokenizer ------------------------------------------------------------------------------


def test_llama3_reproduces_every_llama_cpp_vector(llama3, vocab_dir):
    vectors = read_vocab_tests(vocab_dir / LLAMA_BPE_GGUF)
    assert len(vectors) == 46 and VIETNAMESE in dict(vectors)  # 45 texts and the empty one
    got = [(text, llama3.encode(text, add_special_tokens=False).ids) for text, _ in vectors]
    assert got == vectors
    assert all(llama3.decode(ids) == text for text, ids in vectors)


def test_without_ignore_merges_only_the_vietnamese_vector_differs(vocab_dir, llama3_tokenizer_dir):
    """Why transformers' GGUF loader matches 45 of the 46: Llama 3 encodes a pre-token that is a
    vocabulary entry as that one token (tiktoken; llama.cpp's `ignore_merges`; Meta's
    tokenizer.json has "ignore_merges": true). The loader leaves the flag off, and BPE merges
    alone never reach " Việt" (101798): they stop at " Vi" "á»" "ĩ" "t"."""
    spec = json.loads((llama3_tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    assert spec["model"]["ignore_merges"] is True
    spec["model"]["ignore_merges"] = False
    plain = Tokenizer.from_str(json.dumps(spec))
    wrong = {
        text: plain.encode(text, add_special_tokens=False).ids
        for text, ids in read_vocab_tests(vocab_dir / LLAMA_BPE_GGUF)
        if plain.encode(text, add_special_tokens=False).ids != ids
    }
    assert wrong == {VIETNAMESE: [34, 91163, 11655, 26298, 83]}


def test_llama3_specials_licence_and_transformers(llama3, llama3_tokenizer_dir, vocab_dir):
    assert llama3.get_vocab_size() == 128_256
    assert llama3.encode("Hello world").ids == [128000, 9906, 1917]  # BOS only with special tokens
    assert llama3.encode("Hello world", add_special_tokens=False).ids == [9906, 1917]
    meta = read_gguf_metadata(vocab_dir / LLAMA_BPE_GGUF)
    assert meta["tokenizer.ggml.pre"] == "llama-bpe" and meta["tokenizer.ggml.eos_token_id"] == 128001
    assert "MIT License" in (llama3_tokenizer_dir / "LICENSE").read_text()
    assert "Meta Llama 3 Community License" in (llama3_tokenizer_dir / "NOTICE").read_text()
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(str(llama3_tokenizer_dir))
    assert (hf.bos_token, hf.eos_token) == ("<|begin_of_text|>", "<|end_of_text|>")
    assert hf("Cửa Việt")["input_ids"] == [128000, 34, 91163, 101798]


def test_tiktoken_engine_gives_the_tokenizer_json_ids(llama3, llama3_tokenizer_dir, corpus, vocab_dir):
    """Llama 3 is counted through tiktoken (the library of Meta's reference tokenizer,
    llama3/tokenizer.py), built from the tokenizer.json: the same ids as the tokenizer.json on
    llama.cpp's vectors, on every document of a real corpus, and on special-token strings."""
    pytest.importorskip("tiktoken")
    enc = tiktoken_encoding(llama3_tokenizer_dir / "tokenizer.json")
    assert enc is not None and enc.n_vocab == 128_256
    ids = lambda t: enc.encode(t, allowed_special=enc.special_tokens_set, disallowed_special=())  # noqa: E731
    vectors = read_vocab_tests(vocab_dir / LLAMA_BPE_GGUF)
    assert [ids(text) for text, _ in vectors] == [want for _, want in vectors]
    texts = [d["text"] for d in corpus] + ["a <|eot_id|> b<|begin_of_text|>", "<|reserved_special_token_1|>0|>"]
    assert sum(len(t) for t in texts) > 100_000
    assert [ids(t) for t in texts] == [e.ids for e in llama3.encode_batch(texts, add_special_tokens=False)]
    want = [len(ids(t)) for t in texts]
    spec = resolve("llama3")
    counter = TokenCounter._library_counter(spec, spec.path)
    assert counter.encoding is not None and counter.count(texts) == want
    # a text without "<|" (every special token's start) is encoded as ordinary text, in chunks
    # of the thread pool or in this thread
    assert counter._special_prefix == "<|" and counter.threads >= 1
    counter.threads = 1
    assert counter.count(texts) == want
    native = TokenCounter.load(spec)  # what a run counts with: the compiled kernel
    assert native.native is not None and native.count(texts) == want


def test_cached_ranks_are_the_parsed_ones(llama3_tokenizer_dir, tmp_path, monkeypatch):
    """The ranks kept in the cache are the tokenizer.json's; a damaged entry is parsed again."""
    from classifiers.tokens import _cached_ranks, _tiktoken_tables

    monkeypatch.setenv("CURATE_CACHE", str(tmp_path))
    path = llama3_tokenizer_dir / "tokenizer.json"
    parsed = _tiktoken_tables(path.read_bytes())
    assert parsed is not None and len(parsed[0]) == 128_000 and parsed[1]["<|eot_id|>"] == 128_009
    assert _cached_ranks(path) == parsed  # parsed, written
    (entry,) = (tmp_path / "tiktoken-ranks").iterdir()
    assert _cached_ranks(path) == parsed  # read
    entry.write_bytes(entry.read_bytes()[:1000])
    assert _cached_ranks(path) == parsed  # damaged: parsed again


# --- configuration ------------------------------------------------------------------------------


def test_config_kinds():
    assert load_config(None, []).tokenizer.kind == "llama3"
    assert load_config(None, ["tokenizer.path=/t/tokenizer.json"]).tokenizer.kind == "file"
    assert load_config(None, ["tokenizer.kind=approx"]).tokenizer.kind == "approx"
    with pytest.raises(ConfigError, match="tokenizer: .*kind file needs path"):
        load_config(None, ["tokenizer.kind=file"])
    with pytest.raises(ConfigError, match="tokenizer: .*path is set, so kind must be file"):
        load_config(None, ["tokenizer.kind=approx", "tokenizer.path=/t/tokenizer.json"])


def _fuzz_texts(n: int, seed: int = 5) -> list[str]:
    """Random strings over every character class the pre-tokenizer tells apart: letters (Latin,
    Cyrillic, CJK, Hangul, a modifier letter), marks, digits of several kinds, white space of
    every kind (CR, LF, Unicode's spaces; U+001C, which str.isspace() calls space and regex's
    \\s does not), contractions in both cases with ſ, punctuation, symbols, emoji and "<|"."""
    import random

    alphabet = [
        "a", "Z", "é", "ж", "中", "한", "ـ", "\u064d", "\u0301", "1", "٣", "²", "Ⅻ", "７",
        " ", "  ", "\t", "\n", "\r", "\r\n", "\u3000", "\xa0", "\x0b", "\x85", "\u2028", "\x1c",
        "'", "s", "S", "ſ", "t", "re", "RE", "Ve", "m", "ll", "LL", "d", "D",
        "!", "=", "...", "😀", "-", "_", "€", "(", "<|", "|>", "<|eot_id|>",
    ]  # fmt: skip
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def test_native_kernel_counts_what_tiktoken_counts(corpus, vocab_dir):
    """The compiled counter (classifiers/bpe_kernel.py) gives tiktoken's counts: on real text in
    many languages and code, llama.cpp's vectors, random strings of every character class, and
    pieces long enough to skip its cache; a text with "<|" (a special token's start) is the
    library's to count."""
    from tests.corpus import dev_sentences_by_language

    spec = resolve("llama3")
    native = TokenCounter.load(spec)
    enc = tiktoken_encoding(spec.path)
    count = lambda t: len(enc.encode(t, allowed_special=enc.special_tokens_set, disallowed_special=()))  # noqa: E731
    texts = [d["text"] for d in corpus] + [t for t, _ in read_vocab_tests(vocab_dir / LLAMA_BPE_GGUF)]
    texts += [s for sentences in dev_sentences_by_language().values() for s in sentences[:20]]
    texts += _fuzz_texts(3000)
    texts += ["=" * 3000, "x" * 4000, "a1" * 500, "Supercalifragilisticexpialidocious" * 3, "", " ", "\n\n"]
    assert len(dev_sentences_by_language()) >= 30 and sum(map(len, texts)) > 300_000
    assert native.count(texts) == [count(t) for t in texts]
    pattern = regex.compile(LLAMA3_PATTERN)  # the pre-tokenizer's pieces themselves, as the regex finds them
    assert all(native.native.pieces(t) == pattern.findall(t) for t in texts), "a piece differs"
    handled = native.native.count(texts)
    assert [t for t, n in zip(texts, handled) if n < 0] == [t for t in texts if "<|" in t]


def test_native_tables_are_rebuilt_from_a_damaged_cache(tmp_path, monkeypatch):
    """The kernel's tables are cached per tokenizer file; a missing, truncated or empty cache
    entry is built again, and the counts stay tiktoken's."""
    spec = resolve("llama3")
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path))
    texts = ["Hello world, it's 2026!", "Cửa Việt", "def f(x):\n    return x\n"]
    enc = tiktoken_encoding(spec.path)
    want = [len(enc.encode_ordinary(t)) for t in texts]
    assert TokenCounter.load(spec).count(texts) == want  # built into the empty cache
    (entry,) = (tmp_path / "llama3-native").iterdir()
    whole = entry.read_bytes()
    for damaged in (whole[: len(whole) // 2], b""):
        entry.write_bytes(damaged)
        assert TokenCounter.load(spec).count(texts) == want
        assert entry.read_bytes() == whole  # written again


def test_native_kernel_knows_every_code_points_class():
    """Every code point Python's Unicode database assigns, in probes that set it beside
    letters, digits, spaces, an apostrophe and itself: the kernel's class of it (LETTER,
    NUMBER, SPACE, OTHER) splits the text where tiktoken's regex does (its own Unicode tables);
    an unassigned one is left to tiktoken."""
    import unicodedata

    spec = resolve("llama3")
    native = TokenCounter.load(spec).native
    enc = tiktoken_encoding(spec.path)
    cps = [cp for cp in range(0x110000) if unicodedata.category(chr(cp)) not in ("Cn", "Cs")]
    assert len(cps) > 280_000
    probes = [p for ch in map(chr, cps) for p in (f"ab{ch}cd", f" {ch}1", f"{ch}{ch}x", f"'{ch}ab", f"x{ch}\n")]
    got = [n for i in range(0, len(probes), 20_000) for n in native.count(probes[i : i + 20_000])]
    assert got == [len(enc.encode_ordinary(p)) for p in probes]
    assert native.count(["a\U000e01f0b", "\ud800"]) == [-1, -1]  # unassigned, a lone surrogate


def test_counter_kinds(llama3_tokenizer_dir, llama2_tokenizer_dir, tmp_path):
    texts = ["Hello world", "Ceci est une phrase en français.", "def f(x):\n    return x\n", "日本語の文"]
    spec = resolve("llama3")
    assert spec.path == str(llama3_tokenizer_dir / "tokenizer.json")
    assert spec.sha256 == file_sha256(spec.path) and not spec.approximate
    want = [len(e.ids) for e in Tokenizer.from_file(spec.path).encode_batch(texts, add_special_tokens=False)]
    assert TokenCounter.load(spec).count(texts) == want
    l2 = resolve("file", str(llama2_tokenizer_dir / "tokenizer.json"))
    assert tiktoken_encoding(l2.path) is None  # not Llama 3's shape: counted by `tokenizers`
    assert TokenCounter.load(l2).count(texts) == [
        len(Tokenizer.from_file(l2.path).encode(t, add_special_tokens=False).ids) for t in texts
    ]
    approx = resolve("approx")
    assert approx.approximate and approx.sha256 is None
    assert TokenCounter.load(approx).count(texts) == [math.ceil(len(t.encode()) / 4) for t in texts]
    # a worker whose file is not the one the job was planned with refuses to count
    copy = tmp_path / "tokenizer.json"
    copy.write_bytes(Path(l2.path).read_bytes())
    moved = resolve("file", str(copy))
    copy.write_bytes(Path(spec.path).read_bytes())
    with pytest.raises(RuntimeError, match="not the tokenizer this job was planned with"):
        TokenCounter.load(moved)


def test_last_pass_recounts_a_document_that_lost_lines(llama3):
    """Line dedup edits text in the last pass; the row's n_tokens is the edited text's count."""
    from pipeline.config import Config
    from pipeline.records import Info
    from pipeline.stages.line_dedup import ApplyLineDedup

    apply = ApplyLineDedup(Config.model_validate({"stages": {"line_dedup": {"enabled": True}}})).apply
    text = "Skip to main content\nLa première ligne du texte, en français.\n日本語の文もある。\nFooter"
    kept = "La première ligne du texte, en français.\n日本語の文もある。"
    n = len(llama3.encode(kept, add_special_tokens=False).ids)
    info = Info.of({"id": "d", "n_tokens": 99, "drop": None, "bucket": "fr"})
    assert apply(text, info, (0, 3), None, False) == (kept, n, None)


# --- end to end ---------------------------------------------------------------------------------


def _run(d: Path, name: str, corpus: list[dict], *sets: str) -> tuple[Path, dict, list[dict]]:
    src = d / "corpus.jsonl.zst"
    if not src.exists():
        write_jsonl(
            src,
            [{"id": x["id"], "text": x["text"], **({"path": x["path"]} if "path" in x else {})} for x in corpus],
            compress=True,
        )
        (d / "run.yaml").write_text(
            yaml.safe_dump(
                {
                    "sources": [{"name": "text", "paths": [str(src)], "path_field": "path"}],
                    "stages": {"mixture": {"enabled": False}},
                }
            )
        )  # every survivor kept, once
    out = d / name
    assert main(["run", str(d / "run.yaml"), "--output", str(out), *(a for s in sets for a in ("--set", s))]) == 0
    rows = (
        ds.dataset(out / "mixture", format="parquet", partitioning="hive")
        .to_table(columns=["id", "text", "bucket", "n_tokens", "repeats"])
        .to_pylist()
    )
    return out, json.loads((out / "manifest.json").read_text()), rows


@pytest.mark.slow
def test_e2e_n_tokens_are_llama3_tokens_by_default(corpus, llama3, llama3_tokenizer_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("tokens")
    out, m, rows = _run(d, "default", corpus)
    assert {r["bucket"] for r in rows} >= {"en", "code"} and len({r["bucket"] for r in rows}) >= 8
    want = [len(e.ids) for e in llama3.encode_batch([r["text"] for r in rows], add_special_tokens=False)]
    assert [r["n_tokens"] for r in rows] == want
    tok = m["tokenizer"]
    assert (tok["kind"], tok["name"]) == ("llama3", "llama3") and not m["tokens_approximate"]
    assert tok["sha256"] == file_sha256(llama3_tokenizer_dir / "tokenizer.json")
    assert "llama-cpp-python" in tok["source"] and "Meta Llama 3" in tok["source"]
    assert sum(b["tokens"] for b in m["buckets"].values()) == sum(want)


@pytest.mark.slow
def test_e2e_n_tokens_with_a_given_tokenizer_json(corpus, llama2_tokenizer_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("tokens")
    path = str(llama2_tokenizer_dir / "tokenizer.json")
    out, m, rows = _run(d, "llama2", corpus, f"tokenizer.path={path}")
    llama2 = Tokenizer.from_file(path)
    assert len(rows) > 50
    assert [r["n_tokens"] for r in rows] == [
        len(e.ids) for e in llama2.encode_batch([r["text"] for r in rows], add_special_tokens=False)
    ]
    assert m["tokenizer"] == {
        "kind": "file",
        "name": path,
        "source": "tokenizer.path",
        "path": path,
        "sha256": file_sha256(path),
    }
    # the estimate, when asked for, is named as one
    _, m, rows = _run(d, "approx", corpus, "tokenizer.kind=approx")
    assert m["tokens_approximate"] and m["tokenizer"]["name"] == "approx:utf8_bytes/4"
    assert all(r["n_tokens"] == math.ceil(len(r["text"].encode()) / 4) for r in rows)


def test_run_without_pypi_stops_with_one_line(tmp_path, monkeypatch, capsys):
    """No cached tokenizer and no way to build it: exit 2, one error line naming the fix, before
    any document is read, and no output."""
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip finds nothing, as without a network
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "1", "text": "Hello world. " * 20}])
    assert main(["run", "--input", str(src), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("building Llama 3's tokenizer")
    assert err[1].startswith("tokenizer error: cannot build Llama 3's tokenizer")
    assert "make setup" in err[1] and "tokenizer.path" in err[1]
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == []
