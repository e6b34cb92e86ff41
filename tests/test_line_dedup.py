"""Line-level dedup: line keys and hashes, the removal and its accounting, the Beam DoFns on
their own, and `curate run` end to end on real English help pages (whose LibreOffice footers
and notices repeat) with synthetic template lines added: what is removed, what is kept, the
plan's tokens against the Parquet files, annotate mode, counters, two workers."""

from __future__ import annotations

import json
import random
from collections import Counter
from itertools import combinations

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from classifiers.decisions import Drop
from classifiers.line_dedup import (
    LINE_HASH_BITS,
    LineDedupParams,
    after_removal,
    content_chars,
    doc_lines,
    group_salt,
    line_hash,
    line_key,
    remove_lines,
    removed_fraction,
)
from classifiers.text import approx_token_count
from pipeline.config import Config
from pipeline.records import LINES as LINES_EVENT
from pipeline.records import Info
from pipeline.sources import make_uid
from pipeline.stages.base import pack, unpack
from pipeline.stages.line_dedup import ITEMS_TAG, CountLines, LineItems, ResolveLines
from tests.corpus import bench_docs, dev_sentences_by_language, write_jsonl

SALT = group_salt("en", 0)


def clean(text: str) -> str:
    """A real document with its lines stripped and blank lines dropped: removing lines from it
    collapses nothing, so the plan's sizes must equal the written ones exactly."""
    return "\n".join(s for s in (line.strip() for line in text.split("\n")) if s)


@pytest.fixture(scope="module")
def english() -> list[dict]:
    """The benchmark corpus's first 320 English documents, cleaned."""
    return [
        {"id": r["id"], "text": clean(r["text"])} for r in bench_docs(320, categories=["b_english"]) if clean(r["text"])
    ]


# --- the pure part ---------------------------------------------------------------------------


def test_line_key_ignores_case_digits_spacing_and_width():
    assert line_key("  Copyright\u00a0©  2023 Example\tCorp. ") == line_key("copyright © 1999 example corp.")
    assert line_key("Page 3 of 12") == line_key("PAGE 7 OF 40") == "page 0 of 00"
    assert line_key("ＡＢＣ １２") == "abc 00"  # full-width forms (NFKC)
    assert line_key("Next page") != line_key("Previous page")


def test_line_hash_is_stable_salted_and_56_bits():
    key = line_key("Copyright 2024 Example Corp. All rights reserved.")
    assert line_hash(key, SALT) == 9670327100569068  # fixed forever: reruns and workers must agree
    assert line_hash(key, group_salt("de", 0)) != line_hash(key, SALT)
    assert line_hash(key, group_salt("en", 1)) != line_hash(key, SALT)
    assert all(0 <= line_hash(f"line {w}", SALT) < 2**LINE_HASH_BITS for w in ("a", "b", "c"))


def test_doc_lines_items_one_per_distinct_line():
    text = "Skip to main content\n\n}\nA line of its own here\nskip to  MAIN content\nÉtude numéro 12 ici"
    items, content = doc_lines(text, SALT, min_line_chars=10, max_lines=100)
    assert content == content_chars(text) == sum(len(x.strip()) for x in text.split("\n"))
    by_index = {ix: (nb, nc) for _, ix, nb, nc in items}
    assert set(by_index) == {(0, 4), 3, 5}  # "" and "}" are too short; the repeated line is one item
    assert by_index[(0, 4)] == (len("Skip to main content") + 1 + len("skip to  MAIN content") + 1, 20 + 21)
    assert by_index[5] == (len("Étude numéro 12 ici".encode()) + 1, len("Étude numéro 12 ici"))
    assert doc_lines(text, SALT, 10, max_lines=2)[0] == [(line_hash("skip to main content", SALT), 0, 21, 20)]


def test_remove_lines_collapses_blank_runs_and_strips():
    assert remove_lines("Header\n\nBody one\n\nFooter", [4]) == "Header\n\nBody one"
    assert remove_lines("Header\n\nBody one\n\nFooter", [0]) == "Body one\n\nFooter"
    assert remove_lines("A\n\nNAV\n\nB", [2]) == "A\n\nB"
    assert remove_lines("A\n\n\nB", []) == "A\n\n\nB"  # nothing removed: the text is untouched
    assert remove_lines("A\n  indented\nB", [0]) == "indented\nB"
    assert removed_fraction("abcd\nefgh", [1]) == pytest.approx(5 / 9)


def test_after_removal_matches_the_text_written(english):
    """The plan's bytes, tokens and content chars of a document after removal equal those of
    the text `remove_lines` gives, on real documents with random lines removed."""
    rng = random.Random(0)
    checked = 0
    for d in english[:150]:
        text = d["text"]
        items, content = doc_lines(text, SALT, 10, 10_000)
        if len(items) < 2:
            continue
        gone = rng.sample(items, rng.randint(1, len(items) - 1))
        idx = [i for it in gone for i in (it[1] if isinstance(it[1], tuple) else (it[1],))]
        n_bytes = len(text.encode())
        kept_bytes, tokens, kept_content = after_removal(
            n_bytes, approx_token_count(n_bytes), content, sum(g[2] for g in gone), sum(g[3] for g in gone), True
        )
        new = remove_lines(text, idx)
        assert (kept_bytes, tokens, kept_content) == (
            len(new.encode()),
            approx_token_count(len(new.encode())),
            content_chars(new),
        )
        checked += 1
    assert checked > 50
    assert after_removal(100, 25, 90, 101, 90, True) == (0, 0, 0)
    assert after_removal(1000, 300, 900, 500, 450, False) == (500, 150, 450)  # tokens scale with bytes


def test_params_defaults_and_strictness():
    p = LineDedupParams()
    assert not p.enabled and p.max_line_repeats == 6 and p.skip_buckets == ["code"]
    with pytest.raises(ValidationError):
        LineDedupParams(max_line_repeat=6)
    with pytest.raises(ValidationError):
        LineDedupParams(min_chars_after=0)
    assert Config.model_validate({"stages": {"line_dedup": {"enabled": True}}}).stages.line_dedup.enabled


# --- the DoFns on their own --------------------------------------------------------------------


def _doc(rec: int, text: str, exact_key: int, bucket: str = "en", drop=None) -> dict:
    n = len(text.encode())
    return {
        "uid": make_uid(0, rec),
        "id": f"d{rec:03d}",
        "text": text,
        "bucket": bucket,
        "drop": drop,
        "n_bytes": n,
        "n_tokens": approx_token_count(n),
        "exact_key": exact_key,
    }


def _run_dofns(config: Config, docs: list[dict]):
    items = LineItems(config, 3)
    by_part, by_chunk = {}, {}
    for o in items.process(docs):
        if getattr(o, "tag", None) == ITEMS_TAG:
            by_part.setdefault(o.value[0], []).append(o.value[1])
        else:
            by_chunk.setdefault(o[0], []).append(o[1])
    count = CountLines(config.stages.line_dedup.max_line_repeats, config.runner.records_per_chunk)
    for part, lists in by_part.items():
        for key, value in count.process((part, lists)):
            by_chunk.setdefault(key, []).append(value)
    return by_chunk


def test_count_threshold_and_exact_copies_count_once():
    """A line in 7 distinct documents is frequent; one in 6 documents plus an exact copy of one
    of them is not; a dropped or code document takes no part; a line repeated inside one
    document counts once."""
    config = Config.model_validate({"stages": {"line_dedup": {"enabled": True}}})
    seven, six = "Sign up for the newsletter to get the news.", "Found a typo on this page? Tell the editors."
    sents = dev_sentences_by_language(["en"], per_language=60)["en"]
    bodies = ["\n".join(sents[3 * i : 3 * i + 3]) for i in range(20)]  # real, unique lines
    docs = [_doc(i, f"{bodies[i]}\n{seven}", exact_key=1000 + i) for i in range(7)]
    docs += [_doc(7 + i, f"{six}\n{bodies[7 + i]}\n{six}", exact_key=2000 + i) for i in range(6)]
    docs.append(_doc(13, docs[7]["text"], exact_key=2000))  # exact copy: same text key
    docs.append(_doc(14, f"{bodies[14]}\n{six}", exact_key=3000, drop=("heuristics", "heuristics/x", None)))
    docs.append(_doc(15, f"{bodies[15]}\n{six}", exact_key=3001, bucket="code"))
    by_chunk = _run_dofns(config, docs)
    ((key, parts),) = by_chunk.items()
    removed = {}
    for tag, blob in parts:
        if tag == "lines":
            for rec, ix, _nbytes, _ in unpack(blob):
                removed.setdefault(rec, []).append(ix)
    last = {i: len(docs[i]["text"].split("\n")) - 1 for i in range(7)}
    assert removed == {i: [last[i]] for i in range(7)}
    # one more distinct document with `six` tips it over
    docs.append(_doc(16, f"{bodies[16]}\n{six}", exact_key=4000))
    removed = {
        rec
        for _, parts in _run_dofns(config, docs).items()
        for tag, blob in parts
        if tag == "lines"
        for rec, *_ in unpack(blob)
    }
    assert removed == set(range(14)) | {16}


def test_resolve_lines_deltas_emptied_and_dedup_drops():
    config = Config.model_validate({"stages": {"line_dedup": {"enabled": True, "min_chars_after": 20}}})
    payload = lambda nbytes: ("en", 7, approx_token_count(nbytes), nbytes, 1)  # noqa: E731
    parts = [
        ("docs", pack([(1, payload(100), 95), (2, payload(100), 95), (3, payload(100), 95)])),
        ("lines", pack([(1, 0, 30, 29), (2, (0, 3), 90, 80), (3, 2, 30, 29)])),
        ("events", pack([(3, "drop", "exact_dedup", "exact_dedup/duplicate", "d001"), (1, "cluster", 2, "d001")])),
    ]
    outs = list(ResolveLines(config).process(((0, 0), parts)))
    ev = next(o.value for o in outs if o.tag == "events")
    stats = next(o.value for o in outs if o.tag == "stats")
    assert ev[:1] == ((0, 0),) and ev[1][0] == "events"
    assert unpack(ev[1][1]) == [
        (1, LINES_EVENT, (0,), False),
        (2, LINES_EVENT, (0, 3), True),
        (3, LINES_EVENT, (2,), False),
    ]
    # doc 1 keeps 70 bytes (18 tokens); doc 2 is emptied (15 content chars < 20) and leaves the
    # stats whole; doc 3 is an exact duplicate: dedup subtracts it, line dedup must not
    assert sorted(stats) == sorted([("en", 7, 0, 18 - 25, -30), ("en", 7, -1, -25, -100)])


# --- end to end ---------------------------------------------------------------------------------

HEAD = "Skip to main content | Example Help Center"
FOOT = "Was this page helpful? Send feedback to the documentation team at Example Corp."
SIX = "Translations of this page are maintained by volunteers from the community."
SEVEN = "This page was last reviewed by the documentation team for the current release."
POOL = [
    "Sign up for our newsletter to receive the latest updates and offers straight to your inbox.",
    "This article was reviewed by our editorial team for accuracy and completeness before publication.",
    "Share this page with your friends and colleagues on social media with the buttons below.",
    "Customer support is available around the clock by phone, email and live chat in many languages.",
    "Prices and availability are subject to change without notice, and taxes may apply at checkout.",
    "All trademarks mentioned on this page are the property of their respective owners worldwide.",
    "Free shipping is available on all orders over fifty dollars within the continental United States.",
    "Our offices are closed on public holidays, and replies to messages may take a little longer.",
]


def _template_docs(sentences: list[str]) -> list[dict]:
    """14 documents of 4 template lines from POOL and one real sentence, emptied once the
    template goes. The 4-line sets are the planes of AG(3, 2) (4-subsets of 0..7 whose XOR is 0):
    every line is in 7 documents and two documents share 0 or 2 lines, so MinHash links none."""
    planes = [s for s in combinations(range(len(POOL)), 4) if s[0] ^ s[1] ^ s[2] ^ s[3] == 0]
    assert len(planes) == 14 and set(Counter(i for s in planes for i in s).values()) == {7}
    return [
        {"id": f"tmpl-{k:02d}", "text": "\n".join([POOL[i] for i in s] + [sentences[k]])} for k, s in enumerate(planes)
    ]


def _pass_first_pass(texts: list[str]) -> list[bool]:
    """Whether each text survives the default language ID and heuristics (the documents that
    take part in line dedup), decided by the pipeline's own stages."""
    from pipeline.stages.heuristics import HeuristicsStage
    from pipeline.stages.langid import LanguageIdStage

    st = Config().stages
    docs = [
        {"uid": i, "id": str(i), "text": t, "kind": "text", "n_bytes": len(t.encode())} for i, t in enumerate(texts)
    ]
    for stage in (LanguageIdStage(st.langid, False), HeuristicsStage(st.heuristics, False)):
        stage.setup()
        docs = next(iter(stage.process(docs)))
    return [d.get("drop") is None for d in docs]


def _hosts(docs: list[dict], frame, n: int) -> list[dict]:
    """The first n documents that still pass the first pass once framed by `frame`; framed."""
    framed = [{**x, "text": frame(x["text"])} for x in docs]
    return [x for x, ok in zip(framed, _pass_first_pass([x["text"] for x in framed])) if ok][:n]


@pytest.fixture(scope="module")
def e2e(english, tmp_path_factory):
    d = tmp_path_factory.mktemp("line_dedup")
    long_docs = [x for x in english if len(x["text"]) > 1500]
    framed = _hosts(long_docs[:60], lambda t: f"{HEAD}\n{t}\n{FOOT}", 40)
    used = {x["id"] for x in framed}
    six_hosts = _hosts([x for x in long_docs if x["id"] not in used], lambda t: f"{t}\n{SIX}", 6)
    used |= {x["id"] for x in six_hosts}
    seven_hosts = _hosts([x for x in long_docs if x["id"] not in used], lambda t: f"{SEVEN}\n{t}", 7)
    used |= {x["id"] for x in seven_hosts}
    assert len(framed) == 40 and len(six_hosts) == 6 and len(seven_hosts) == 7
    docs = framed + six_hosts + seven_hosts + [x for x in english if x["id"] not in used]
    copies = [{"id": f"zz-copy-{x['id']}", "text": x["text"]} for x in framed[:4] + six_hosts[:1]]
    near = []
    for x in framed[4:8]:  # ~2% of words changed: MinHash drops one of each pair
        words = x["text"].split(" ")
        near.append(
            {"id": f"zz-near-{x['id']}", "text": " ".join("indeed" if i % 50 == 7 else w for i, w in enumerate(words))}
        )
    sentences = [s for s in dev_sentences_by_language(["en"], per_language=200)["en"] if 60 < len(s) < 150]
    templ = _template_docs(sentences)
    inputs = docs + copies + near + templ
    write_jsonl(d / "en.jsonl.zst", inputs, compress=True)
    cfg = d / "run.yaml"
    cfg.write_text(f"""
sources:
  - {{name: text, paths: ["{d}/en.jsonl.zst"]}}
tokenizer: {{kind: approx}}  # bytes/4: the plan's token arithmetic after a removal is then exact
stages:
  line_dedup: {{enabled: true}}
""")
    import pipeline.runner as runner
    from pipeline.cli import main

    results, orig = [], runner.run_local

    def capture(*a):
        results.append(orig(*a))
        return results[-1]

    runner.run_local = capture
    try:
        outs = {}
        for name, extra in (("filter", []), ("annotate", ["--set", "mode=annotate"]), ("workers2", ["--workers", "2"])):
            assert main(["run", str(cfg), "--output", str(d / name), *extra]) == 0
            outs[name] = (d / name, json.loads((d / name / "manifest.json").read_text()), results[-1].counters)
    finally:
        runner.run_local = orig
    return {
        "inputs": {x["id"]: x["text"] for x in inputs},
        "outs": outs,
        "templ": [x["id"] for x in templ],
        "framed": [x["id"] for x in framed],
        "six": [x["id"] for x in six_hosts],
        "seven": [x["id"] for x in seven_hosts],
        "copies": [x["id"] for x in copies],
        "near": [x["id"] for x in near],
    }


def _mixture(out) -> dict[str, dict]:
    t = ds.dataset(out / "mixture", format="parquet", partitioning="hive").to_table()
    return {r["id"]: r for r in t.to_pylist()}


def _rejected(out) -> dict[str, str]:
    return {r["id"]: r["rule"] for r in pq.read_table(out / "rejected").to_pylist()}


def test_e2e_removes_frequent_lines_and_only_those(e2e):
    out, m, counters = e2e["outs"]["filter"]
    assert m["ledger"]["balanced"]
    rows, rejected = _mixture(out), _rejected(out)
    inputs = e2e["inputs"]
    removed_lines = 0
    for i, r in rows.items():
        lines, original = r["text"].split("\n"), inputs[i].split("\n")
        it = iter(original)
        assert all(line in it for line in lines), i  # an ordered subsequence: lines removed, none changed
        removed_lines += len(original) - len(lines)
        for boiler in (HEAD, FOOT, SEVEN, *POOL):
            assert boiler not in lines, (i, boiler)
        assert r["n_tokens"] == approx_token_count(len(r["text"].encode()))
    # the framed pages keep their bodies; a line in 6 pages and one exact copy is not frequent
    for i in e2e["framed"]:
        if i in rows:
            assert rows[i]["text"].split("\n")[0] != HEAD and len(rows[i]["text"]) > 1000
    assert sum(i in rows for i in e2e["framed"]) >= 30
    assert all(
        rows[i]["text"].endswith(SIX) if i in rows else rejected[i] == "minhash_dedup/near_duplicate"
        for i in e2e["six"]
    )
    assert sum(i in rows for i in e2e["six"]) >= 5 and sum(i in rows for i in e2e["seven"]) >= 6
    # real template lines of the help pages went too (LibreOffice's "This page is: ..." footer)
    assert sum(r["text"] != inputs[i] for i, r in rows.items()) > 100
    assert counters["line_dedup/lines_removed"] == removed_lines
    # emptied documents: the template-only pages (and any real page left too short)
    emptied = {i for i, rule in rejected.items() if rule == "line_dedup/emptied"}
    assert set(e2e["templ"]) <= emptied | {i for i, rule in rejected.items() if rule.startswith("heuristics/")}
    assert len(set(e2e["templ"]) & emptied) >= 12
    assert counters["line_dedup/emptied"] == len(emptied) == m["stages"]["line_dedup"]["dropped"]
    assert all(content_chars(r["text"]) >= 200 for i, r in rows.items() if r["text"] != inputs[i])
    # dedup still decides the copies: exact copies and near copies are dedup drops, never emptied
    assert all(rejected.get(i) == "exact_dedup/duplicate" for i in e2e["copies"])
    assert any(rejected.get(i) == "minhash_dedup/near_duplicate" for i in e2e["near"])


def test_e2e_plan_sees_the_text_after_removal(e2e):
    """With one bucket at rate 1 every survivor is kept once, so the plan's available tokens
    must equal the tokens written: removals, emptied documents and dedup drops of documents
    that also lost lines are each subtracted once."""
    out, m, _ = e2e["outs"]["filter"]
    rows = _mixture(out)
    assert not [r for r in m["rejected"] if r.startswith("mixture/")]
    written = sum(r["n_tokens"] * r["repeats"] for r in rows.values())
    assert m["buckets"]["en"]["available_tokens"] == written == m["buckets"]["en"]["tokens"]
    inputs = e2e["inputs"]
    before = sum(approx_token_count(len(inputs[i].encode())) for i in rows)
    assert written < before - 40 * 30  # the frames alone are ~35 tokens per framed page


def test_e2e_annotate_keeps_text_and_reports_the_fraction(e2e):
    out_f, _, _ = e2e["outs"]["filter"]
    out_a, m, _ = e2e["outs"]["annotate"]
    assert m["ledger"]["balanced"] and m["ledger"]["rejected"] == 0
    rows, filtered, rejected = pq.read_table(out_a / "annotated").to_pylist(), _mixture(out_f), _rejected(out_f)
    inputs = e2e["inputs"]
    assert len(rows) == len(inputs)
    for r in rows:
        assert r["text"] == inputs[r["id"]]
        frac = r["line_dedup_fraction"]
        if r["id"] in filtered:
            assert frac == pytest.approx(1 - len(filtered[r["id"]]["text"]) / len(r["text"]), abs=1e-6)
        if rejected.get(r["id"], "").startswith(("heuristics/", "langid/")):
            assert frac is None  # took no part
        assert (r["drop_rule"] == "line_dedup/emptied") == (rejected.get(r["id"]) == "line_dedup/emptied")
    assert sum(1 for r in rows if r["line_dedup_fraction"]) > 100


def test_e2e_two_workers_write_the_same_bytes(e2e):
    _, m1, _ = e2e["outs"]["filter"]
    _, m2, _ = e2e["outs"]["workers2"]
    strip = lambda m: [(s["path"], s["rows"], s["sha256"]) for s in m["shards"]]  # noqa: E731
    assert m2["workers"] == 2 and strip(m1) == strip(m2)


def test_apply_in_the_last_pass_recounts_tokens_with_the_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    from pipeline.stages.line_dedup import ApplyLineDedup

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    config = Config.model_validate(
        {"tokenizer": {"path": str(tmp_path / "tokenizer.json")}, "stages": {"line_dedup": {"enabled": True}}}
    )
    apply = ApplyLineDedup(config).apply
    text = "Skip to main content\nThe body of the page, in words.\nFooter line here"
    info = Info.of({"n_tokens": 99, "drop": None, "bucket": "en"})
    assert apply(text, info, (0, 2), None, False) == (
        "The body of the page, in words.",
        9,
        None,
    )  # words and punctuation
    assert apply(text, info, None, None, False) == (text, 99, None)  # no frequent line: untouched
    dropped = ("exact_dedup", "exact_dedup/duplicate", "x")
    assert apply(text, info, (0, 2), dropped, False) == (text, 99, None)  # rejected rows keep their text
    new, n, frac = apply(text, info, (0, 2), None, True)  # annotate: text whole, fraction reported
    assert (new, n) == (text, 99) and frac == pytest.approx(1 - 31 / len(text))
    assert apply(text, info, None, None, True)[2] == 0.0
    assert apply(text, info._replace(bucket="code"), None, None, True)[2] is None
    assert apply(text, info._replace(drop=Drop("heuristics", "heuristics/x")), None, None, True)[2] is None
