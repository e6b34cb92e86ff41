"""`curate report`: the HTML page of a real run (filter and annotate mode, on text from this
Python's standard library), read back as data, parsed as HTML, and loaded in a real browser
(Debian's chromium, headless): what it rendered and a screenshot that is not blank."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline import report, schema
from pipeline.cli import main
from tests.corpus import write_jsonl

pytestmark = pytest.mark.slow

SAMPLE = 3  # output.rejected_text_sample in the filter run
HOSTILE = (
    "<script>document.title='pwned'</script><img id=pwned src=x onerror=alert(1)>"
    " </pre></details><b>bold & \x1b[31m \u202eevil"
)
CHROMIUM = "/usr/bin/chromium"


def _prose() -> list[dict]:
    from pipeline.demo import prose_docs  # pydoc topics, unwrapped: English prose that passes

    return prose_docs(80)


def _code() -> list[dict]:
    from pipeline.demo import code_docs  # files of this Python's standard library

    return code_docs(12)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    prose = _prose()
    dups = [{**p, "id": p["id"] + "#copy"} for p in prose[:4]]  # exact duplicates
    near = [{"id": p["id"] + "#near", "text": p["text"].replace(" the ", " a ", 3)} for p in prose[4:8]]
    junk = [{"id": f"junk/{i}", "text": f"buy now {i} !!! click"} for i in range(12)]  # too short to keep
    hostile = [{"id": "hostile/<i>1</i>", "text": HOSTILE}]
    write_jsonl(d / "text.jsonl", prose + dups + near + junk + hostile + [{"id": "no-text"}])
    write_jsonl(d / "code.jsonl", _code())
    cfg = d / "run.yaml"
    cfg.write_text(f"""
sources:
  - {{name: text, paths: ["{d}/text.jsonl"]}}
  - {{name: code, paths: ["{d}/code.jsonl"], kind: code, path_field: path}}
output: {{shard_bytes: 20000, rejected_text_sample: {SAMPLE}}}
""")
    return cfg


def _run(cfg: Path, out: Path, *extra: str) -> dict:
    assert main(["run", str(cfg), "--output", str(out), *extra]) == 0
    return json.loads((out / schema.MANIFEST_NAME).read_text())


@pytest.fixture(scope="module")
def filtered(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("f") / "out"
    return out, _run(corpus, out)


@pytest.fixture(scope="module")
def annotated(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("a") / "out"
    return out, _run(corpus, out, "--set", "mode=annotate")


# ------------------------------------------------------------------------------ the rejected sample


def test_rejected_text_sample_is_the_smallest_id_hashes_per_rule(filtered):
    out, m = filtered
    t = pq.read_table(out / schema.REJECTED_DIR).to_pylist()
    assert m["rejected_text"]["sample_per_rule"] == SAMPLE and not m["rejected_text"]["all"]
    by_rule: dict[str, list] = {}
    for r in t:
        by_rule.setdefault(r["rule"], []).append(r)
    assert set(by_rule) == set(m["rejected"])
    for rule, rows in by_rule.items():
        with_text = sorted(r["id"] for r in rows if r["text"] is not None)
        want = sorted(sorted((report.sample_hash(r["id"]), r["id"]) for r in rows)[:SAMPLE])
        assert with_text == sorted(i for _, i in want), rule
        assert m["rejected_text"]["sampled"][rule] == min(SAMPLE, len(rows))
    assert sum(1 for r in t if r["text"] is not None) < len(t)  # bounded: not every row


def test_manifest_counts_bytes_and_tokens_per_rule(filtered):
    _, m = filtered
    dedup = m["stages"]["exact_dedup"]
    assert dedup["rules"]["exact_dedup/duplicate"] >= 1
    assert dedup["rule_tokens"]["exact_dedup/duplicate"] > 0 and dedup["rule_bytes"]["exact_dedup/duplicate"] > 0
    h = m["stages"]["heuristics"]
    assert h["dropped"] > 0 and h["dropped_bytes"] == sum(h["rule_bytes"].values()) > 0
    assert m["volume"]["text_bytes"] >= sum(s["dropped_bytes"] for s in m["stages"].values())


# ------------------------------------------------------------------------------ the data behind the page


def test_report_data(filtered):
    out, m = filtered
    data = report.collect(str(out), per_rule=50)
    rows = data["buckets"]
    names = {r["name"] for r in rows if not r["group"]}
    assert names == set(m["buckets"])  # every bucket, empty ones included
    assert any(r["documents"] == 0 for r in rows)
    missed = [r for r in rows if r["missed"]]
    assert missed and rows[: len(missed)] == missed  # missed targets first
    assert (rows[0]["name"], rows[0]["group"]) == (m["mixture"]["unmet"][0]["bucket"], True)  # groups first
    assert any(r["name"] == "multilingual" for r in missed)  # no source feeds it
    f = data["funnel"]
    assert f[0]["in"] == m["ledger"]["input"] and f[-1]["out"] == m["ledger"]["kept"]
    assert [s["stage"] for s in f] == list(m["stages"])
    ex = data["examples"]
    assert set(ex) == {r for r, n in m["rejected_text"]["sampled"].items() if n}
    assert all(len(v) <= SAMPLE and all(e["text"] for e in v) for v in ex.values())
    assert any(e["text"] == HOSTILE for v in ex.values() for e in v)
    kept = pq.read_table(out / schema.MIXTURE_DIR)
    assert sum(b["survivors"] for b in data["dedup"]["bins"]) == kept.num_rows
    assert sum(b["documents"] for b in data["dedup"]["bins"]) == int(np.sum(kept.column("dup_cluster_size")))
    for b in data["per_bucket"]:
        assert sum(b["length"]["counts"]) == b["length_count"] == b["documents"]
    assert data["signals"] == []  # filter mode has no signal columns


def test_report_signals_in_annotate_mode(annotated):
    out, m = annotated
    data = report.collect(str(out))
    t = pq.read_table(out / schema.ANNOTATED_DIR)
    sig = {s["signal"]: s for s in data["signals"]}
    assert "word_count" in sig and "alpha_word_fraction" in sig
    wc = sig["word_count"]
    x = np.array([v for v in t.column("h_word_count").to_pylist() if v is not None])
    assert sum(wc["counts"]) == wc["count"] == x.size
    mins = [th for th in wc["thresholds"] if th["side"] == "min"]
    assert mins and mins[0]["value"] == 50 and mins[0]["fails"] == int((x < 50).sum()) > 0
    assert mins[0]["rule"] == "heuristics/gopher_quality.word_count"
    assert data["examples"]  # from the annotated rows of each drop_rule
    assert any(e["text"] == HOSTILE for v in data["examples"].values() for e in v)


# ------------------------------------------------------------------------------ the HTML


class _Page(HTMLParser):
    """Elements of a page: tags seen, bucket rows in order, the text of example blocks."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.bucket_rows: list[tuple[str, str]] = []
        self.pre: list[str] = []
        self._in_pre = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tr" and "bucket" in (a.get("class") or "").split():
            self.bucket_rows.append((a.get("data-bucket"), a.get("class")))
        if tag == "pre":
            self._in_pre = True
            self.pre.append("")

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_pre = False

    def handle_data(self, data):
        if self._in_pre:
            self.pre[-1] += data


def _parse(html_text: str) -> _Page:
    p = _Page()
    p.feed(html_text)
    return p


def _check_page(page: _Page, m: dict, annotate: bool) -> None:
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "img" not in tags and "link" not in tags and "iframe" not in tags
    assert not any(a.get("id") == "pwned" for _, a in page.tags)
    assert not any(k.startswith("on") for _, a in page.tags for k in a)
    assert not any(
        str(v).startswith(("http:", "https:", "//"))
        for t, a in page.tags
        if t != "svg"
        for k, v in a.items()
        if k in ("src", "href")
    )
    assert {b for b, _ in page.bucket_rows} >= set(m["buckets"])
    charts = {c for t, a in page.tags if t == "svg" for c in (a.get("class") or "").split()}
    assert {"shares", "funnel", "length", "dup"} <= charts
    assert ("signal" in charts) == annotate
    assert any("</pre></details><b>bold &" in p for p in page.pre)  # the hostile text, as text
    if not annotate:
        first, cls = page.bucket_rows[0]
        assert first == m["mixture"]["unmet"][0]["bucket"] and "missed" in cls.split()
        assert [b for b, c in page.bucket_rows[: len(m["mixture"]["unmet"])]] == [
            u["bucket"] for u in m["mixture"]["unmet"]
        ]
        assert sum(1 for t, a in page.tags if t == "details" and a.get("data-rule")) == len(m["rejected"])


def test_cli_writes_one_self_contained_page(filtered, annotated, capsys):
    for (out, m), annotate in ((filtered, False), (annotated, True)):
        assert main(["report", str(out)]) == 0
        dest = out / schema.REPORT_NAME
        assert capsys.readouterr().out.strip() == str(dest)
        text = dest.read_text(encoding="utf-8")
        assert "\x1b" not in text and "\x00" not in text
        _check_page(_parse(text), m, annotate)


def test_cli_errors_are_one_line(tmp_path, filtered, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("report: ")
    out, _ = filtered
    assert main(["report", str(out), "-o", str(tmp_path / "no" / "dir" / "r.html")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_overwrite_replaces_an_output_holding_its_report(corpus, filtered, tmp_path):
    out = tmp_path / "o"
    shutil.copytree(filtered[0], out)
    assert main(["report", str(out)]) == 0 and (out / schema.REPORT_NAME).exists()
    _run(corpus, out, "--overwrite", "--set", "output.rejected_text_sample=0")
    assert not (out / schema.REPORT_NAME).exists()
    m = json.loads((out / schema.MANIFEST_NAME).read_text())
    assert m["rejected_text"]["sampled"] == {}
    assert pq.read_table(out / schema.REJECTED_DIR).column("text").null_count == m["ledger"]["rejected"]


# ------------------------------------------------------------------------------ a real browser


def chromium() -> str:
    """Debian's chromium; missing: a skip on a developer's machine, a failure in CI (.ci/run
    installs it)."""
    path = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is not installed, and CI is set: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    return path


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _pixels(png: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(png) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def test_the_page_in_a_real_browser(filtered, annotated, tmp_path):
    for (out, m), annotate in ((filtered, False), (annotated, True)):
        page = tmp_path / ("a.html" if annotate else "f.html")
        assert main(["report", str(out), "-o", str(page)]) == 0
        dom = _browser(tmp_path, "--dump-dom", page.as_uri())
        assert dom.returncode == 0, dom.stderr[-2000:]
        rendered = _parse(dom.stdout)
        _check_page(rendered, m, annotate)
        assert "pwned" != dom.stdout.split("<title>", 1)[1].split("</title>", 1)[0]  # no script ran
        rects = sum(1 for t, a in rendered.tags if t == "rect" and "bar" in (a.get("class") or ""))
        assert rects > 10
        if annotate:
            marks = [a for t, a in rendered.tags if t == "line" and a.get("class") == "threshold"]
            assert len(marks) >= 20  # every heuristic threshold, on its signal's histogram
    png = tmp_path / "shot.png"
    shot = _browser(tmp_path, f"--screenshot={png}", "--window-size=1280,2000", (tmp_path / "f.html").as_uri())
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    px = _pixels(png)
    assert px.shape[:2] == (2000, 1280)
    assert px.std() > 20  # not one colour
    nonwhite = (px.min(axis=2) < 200).mean()
    assert 0.01 < nonwhite < 0.6  # text and bars on a light page
    blue = ((px[..., 2] > 150) & (px[..., 0] < 100)).mean()  # the share bars' blue was painted
    assert blue > 0.001
