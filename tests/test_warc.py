"""WARC input: every record type's outcome, charsets, per-record gzip / zstd, damage quarantined
with its offset, url and timestamp kept, hostile pages bounded, and `curate run` end to end with a
balanced ledger. The WARC files are written here, record by record, as the WARC 1.1 spec and
Common Crawl lay them out; the pages are real HTML from Python's own installation (IDLE's
Sphinx-built help page, pydoc's pages of standard-library modules) and real sentences in Russian,
Japanese and German from the language-ID sample in tests/data."""

from __future__ import annotations

import gzip
import idlelib
import json
import os
import pydoc
import time
import uuid

import pyarrow.parquet as pq
import pytest
import zstandard

from classifiers.extract import Extractor, ExtractParams, decode_html
from pipeline.cli import main
from pipeline.config import NormalizeParams, Source
from pipeline.sources import FileSpec, infer_format, read_file, split_uid

HELP = open(os.path.join(os.path.dirname(idlelib.__file__), "help.html"), "rb").read()


def pydoc_page(module: str) -> bytes:
    mod = __import__(module)
    return pydoc.html.page(pydoc.describe(mod), pydoc.html.document(mod, module)).encode("utf-8")


def warc_record(
    rtype: str,
    payload: bytes,
    uri: str = "https://example.org/",
    ctype: str | None = None,
    date: str = "2024-05-06T07:08:09Z",
    rid: str | None = None,
) -> bytes:
    ctype = ctype or {
        "response": "application/http; msgtype=response",
        "request": "application/http; msgtype=request",
        "warcinfo": "application/warc-fields",
        "metadata": "application/warc-fields",
        "conversion": "text/plain",
    }.get(rtype, "application/octet-stream")
    head = [
        b"WARC/1.1",
        f"WARC-Type: {rtype}".encode(),
        f"WARC-Date: {date}".encode(),
        f"WARC-Record-ID: <{rid or 'urn:uuid:' + str(uuid.uuid4())}>".encode(),
        f"Content-Type: {ctype}".encode(),
        f"Content-Length: {len(payload)}".encode(),
    ]
    if rtype != "warcinfo":
        head.insert(3, f"WARC-Target-URI: {uri}".encode())
    return b"\r\n".join(head) + b"\r\n\r\n" + payload + b"\r\n\r\n"


def http(body: bytes, status: str = "200 OK", ctype: str = "text/html; charset=utf-8", extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body


def write_warc(path, records: list[bytes], comp: str) -> list[int]:
    """Writes the records (one gzip member / zstd frame each); returns each record's offset."""
    offsets, pos = [], 0
    with open(path, "wb") as f:
        for r in records:
            blob = {"none": lambda b: b, "gzip": gzip.compress, "zstd": zstandard.ZstdCompressor().compress}[comp](r)
            offsets.append(pos)
            f.write(blob)
            pos += len(blob)
    return offsets


def read_all(path, comp: str, **extract):
    spec = FileSpec(0, "s", str(path), "warc", comp, os.path.getsize(path))
    return list(
        read_file(spec, Source(name="s", paths=[str(path)]), NormalizeParams(), 64, extract=ExtractParams(**extract))
    )


SUFFIX = {"none": ".warc", "gzip": ".warc.gz", "zstd": ".warc.zst"}


def mixed_records() -> tuple[list[bytes], list]:
    """(records, expected outcome per record: ('doc', None) | ('doc', rule) | ('skip', rule))."""
    recs = [
        (warc_record("warcinfo", b"software: test\r\nformat: WARC File Format 1.1\r\n"), ("skip", "warc/warcinfo")),
        (warc_record("request", b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"), ("skip", "warc/request")),
        (warc_record("response", http(HELP), uri="https://example.org/idle"), ("doc", None)),
        (warc_record("metadata", b"fetchTimeMs: 12\r\n"), ("skip", "warc/metadata")),
        (
            warc_record("response", http(b"<html><body>gone</body></html>", "404 Not Found")),
            ("doc", "extract/http_status"),
        ),
        (
            warc_record("response", http(b"<html><body>moved</body></html>", "301 Moved Permanently")),
            ("doc", "extract/http_status"),
        ),
        (
            warc_record("response", http(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, ctype="image/png")),
            ("doc", "extract/not_html"),
        ),
        (warc_record("response", http(b"\x00\x01\x02\x03binary" * 200, ctype="text/html")), ("doc", "extract/binary")),
        (warc_record("revisit", b"HTTP/1.1 200 OK\r\n\r\n"), ("skip", "warc/revisit")),
        (warc_record("conversion", b"Plain WET text.\n\nA second paragraph."), ("doc", None)),
        (warc_record("resource", pydoc_page("json"), ctype="text/html"), ("doc", None)),
        (
            warc_record("response", http(b"<html><body><script>var x=1;</script></body></html>")),
            ("doc", "extract/no_text"),
        ),
    ]
    return [r for r, _ in recs], [e for _, e in recs]


@pytest.mark.parametrize("comp", ["none", "gzip", "zstd"])
def test_each_record_type_has_its_outcome(tmp_path, comp):
    records, expected = mixed_records()
    path = tmp_path / f"crawl{SUFFIX[comp]}"
    offsets = write_warc(path, records, comp)
    assert infer_format(str(path)) == ("warc", comp)
    items = read_all(path, comp)
    got = [(k, x if k == "skip" else x.get("drop", (None, None))[1]) for k, x in items]
    assert got == expected
    docs = [x for k, x in items if k == "doc"]
    # the record index counts every record, skipped ones too; ids are the WARC-Record-IDs
    assert [split_uid(d["uid"])[1] for d in docs] == [i for i, e in enumerate(expected) if e[0] == "doc"]
    assert all(d["id"].startswith("urn:uuid:") for d in docs)
    idle = docs[0]
    assert idle["url"] == "https://example.org/idle" and idle["timestamp"] == "2024-05-06T07:08:09Z"
    assert "IDLE is Python’s Integrated Development and Learning Environment." in idle["text"]
    assert docs[[split_uid(d["uid"])[1] for d in docs].index(9)]["text"] == "Plain WET text.\n\nA second paragraph."
    assert offsets[0] == 0


def test_zstd_with_a_dictionary_frame(tmp_path):
    """The WARC zstd spec: a dictionary in a skippable frame first, every record a frame using it."""
    records, expected = mixed_records()
    d = zstandard.train_dictionary(2048, [r[:2000] for r in records] * 20)
    cctx = zstandard.ZstdCompressor(dict_data=d)
    raw = d.as_bytes()
    path = tmp_path / "dict.warc.zst"
    with open(path, "wb") as f:
        f.write(b"\x5d\x2a\x4d\x18" + len(raw).to_bytes(4, "little") + raw)
        for r in records:
            f.write(cctx.compress(r))
    got = [(k, x if k == "skip" else x.get("drop", (None, None))[1]) for k, x in read_all(path, "zstd")]
    assert got == expected


def _catalog_text(lang: str) -> str:
    """Real sentences of the language (the dev set's, from tests/data)."""
    from tests.corpus import dev_sentences_by_language

    return "\n".join(dev_sentences_by_language([lang], per_language=40)[lang])


@pytest.mark.parametrize("where", ["http", "meta", "none"])
@pytest.mark.parametrize("lang,codec", [("ru", "cp1251"), ("ja", "shift_jis"), ("de", "cp1252")])
def test_charsets_from_header_meta_or_detection(tmp_path, where, lang, codec):
    text = _catalog_text(lang)
    text = text.encode(codec, "ignore").decode(codec)
    meta = f'<meta charset="{codec}">' if where == "meta" else ""
    page = (
        f"<html><head>{meta}<title>t</title></head><body><article>"
        + "".join(f"<p>{line}</p>" for line in text.splitlines())
        + "</article></body></html>"
    ).encode(codec)
    ctype = f"text/html; charset={codec}" if where == "http" else "text/html"
    path = tmp_path / "c.warc.gz"
    write_warc(path, [warc_record("response", http(page, ctype=ctype))], "gzip")
    [(kind, doc)] = read_all(path, "gzip")
    assert kind == "doc" and doc.get("drop") is None
    lines = text.splitlines()
    found = sum(line.strip() in doc["text"] for line in lines)
    assert found >= 0.9 * len(lines), (where, codec, doc["text"][:300])
    _, _, how = decode_html(page, ctype.partition("charset=")[2] or None)
    assert how == {"http": "http", "meta": "meta", "none": "detected"}[where]


def test_http_charset_wins_over_meta_and_bom_wins_over_both():
    page = '<html><head><meta charset="utf-8"></head><body><p>Grüße aus Köln</p></body></html>'
    assert decode_html(page.encode("cp1252"), "windows-1252")[0].count("Grüße") == 1
    assert decode_html(b"\xef\xbb\xbf" + page.encode("utf-8"), "windows-1252")[2] == "bom"
    # ISO-8859-1 is read as windows-1252, as browsers do
    assert decode_html("<p>“quoted”</p>".encode("cp1252"), "iso-8859-1")[0] == "<p>“quoted”</p>"


@pytest.mark.parametrize("comp", ["none", "gzip", "zstd"])
def test_truncated_record_is_quarantined_with_its_offset(tmp_path, comp):
    records = [
        warc_record("response", http(pydoc_page(m)), uri=f"https://example.org/{m}")
        for m in ("json", "csv", "textwrap")
    ]
    path = tmp_path / f"t{SUFFIX[comp]}"
    offsets = write_warc(path, records, comp)
    data = path.read_bytes()
    path.write_bytes(data[: offsets[2] + (len(data) - offsets[2]) // 2])  # cut inside the third record
    items = read_all(path, comp)
    assert [k for k, _ in items] == ["doc", "doc", "quarantine"]
    q = items[2][1]
    assert q["reason"] == "truncated_or_corrupt" and q["record"] == 2 and q["byte_offset"] == offsets[2]


def test_damaged_header_is_quarantined_and_reading_goes_on(tmp_path):
    good = [warc_record("response", http(pydoc_page(m))) for m in ("json", "csv")]
    bad = b"GARBAGE/0.9 not a warc record\r\nfoo: bar\r\n\r\n"
    no_length = b"WARC/1.1\r\nWARC-Type: response\r\n\r\n"
    path = tmp_path / "d.warc.gz"
    offsets = write_warc(path, [good[0], bad, no_length, good[1]], "gzip")
    items = read_all(path, "gzip")
    assert [(k, x.get("reason")) for k, x in items] == [
        ("doc", None),
        ("quarantine", "bad_record"),
        ("quarantine", "bad_record"),
        ("doc", None),
    ]
    assert [x["byte_offset"] for k, x in items if k == "quarantine"] == offsets[1:3]
    corrupt = tmp_path / "z.warc.gz"
    blob = bytearray(gzip.compress(good[0]) + gzip.compress(good[1]))
    blob[len(gzip.compress(good[0])) + 40 : len(gzip.compress(good[0])) + 60] = b"\xff" * 20
    corrupt.write_bytes(bytes(blob))
    items = read_all(corrupt, "gzip")
    assert [k for k, _ in items] == ["doc", "quarantine"] and items[1][1]["reason"] == "truncated_or_corrupt"


def test_hostile_pages_are_bounded_and_rejected_with_a_reason(tmp_path):
    huge = b"<html><body>" + b"<p>word " * ((6 << 20) // 8) + b"</body></html>"  # 6 MiB > max_html_bytes 4 MiB
    deep = b"<html><body>" + b"<div>" * 200_000 + b"deep text " * 50 + b"</div>" * 200_000 + b"</body></html>"
    binary = os.urandom(200_000)
    path = tmp_path / "h.warc.gz"
    write_warc(path, [warc_record("response", http(b)) for b in (huge, deep, binary)], "gzip")
    t0 = time.process_time()
    items = read_all(path, "gzip")
    assert time.process_time() - t0 < 30
    rules = [x.get("drop", (None, None))[1] for _, x in items]
    assert rules == ["extract/too_large", "extract/too_deep", "extract/binary"]


@pytest.mark.parametrize("extractor", ["cascade", "resiliparse", "trafilatura"])
def test_extractors_keep_structure_and_drop_navigation(extractor):
    text, rule, _ = Extractor(ExtractParams(extractor=extractor)).extract(HELP)
    assert rule is None
    assert "IDLE has the following features:" in text
    assert ("\n" if extractor == "trafilatura" else "\n\n") in text  # paragraph breaks (trafilatura: a line each)
    # IDLE's page: a bulleted feature list and the related-pages navigation bar
    assert "coded in 100% pure Python" in text
    assert "previous |" not in text and "modules |" not in text
    if extractor != "trafilatura":
        assert "• coded in 100% pure Python" in text  # list items keep their bullets


def test_curate_run_on_a_warc_gz_balances_the_ledger(tmp_path):
    pages = [HELP] + [pydoc_page(m) for m in ("json", "csv", "textwrap", "argparse", "heapq")]
    records = [warc_record("warcinfo", b"software: test\r\n")]
    for i, page in enumerate(pages):
        records.append(warc_record("request", b"GET / HTTP/1.1\r\n\r\n", uri=f"https://example.org/p{i}"))
        records.append(warc_record("response", http(page), uri=f"https://example.org/p{i}"))
        records.append(warc_record("metadata", b"fetchTimeMs: 3\r\n", uri=f"https://example.org/p{i}"))
    # an older capture of p0 (URL dedup keeps the latest), a 404, an image
    records.append(
        warc_record(
            "response",
            http(HELP.replace(b"IDLE", b"Idle")),
            uri="https://example.org/p0",
            date="2020-01-01T00:00:00Z",
            rid="urn:uuid:old-capture",
        )
    )
    records.append(warc_record("response", http(b"<html>x</html>", "404 Not Found"), uri="https://example.org/404"))
    records.append(
        warc_record("response", http(b"GIF89a" + bytes(300), ctype="image/gif"), uri="https://example.org/i")
    )
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    offsets = write_warc(crawl / "a.warc.gz", records, "gzip")
    data = (crawl / "a.warc.gz").read_bytes()
    write_warc(crawl / "b.warc.gz", records[:4], "gzip")
    (crawl / "b.warc.gz").write_bytes((crawl / "b.warc.gz").read_bytes()[:-30])  # truncated
    out = tmp_path / "out"
    rc = main(
        [
            "run",
            "--input",
            str(crawl / "*.warc.gz"),
            "--output",
            str(out),
            "--set",
            "tokenizer.kind=approx",
            "--set",
            "runner.records_per_chunk=5",
            "--set",
            "output.rejected_text=false",
        ]
    )
    assert rc == 0
    m = json.loads((out / "manifest.json").read_text())
    led = m["ledger"]
    n_docs = len(pages) + 3  # responses (a.warc.gz) ...
    n_docs += 1  # ... and b.warc.gz's first response; its last record (metadata) is cut: quarantined
    assert led["balanced"] and led["input"] == n_docs + 1
    assert led["quarantined"] == 1 and m["quarantined"] == {"truncated_or_corrupt": 1}
    assert m["skipped"] == {"warc/warcinfo": 2, "warc/request": len(pages) + 1, "warc/metadata": len(pages)}
    assert m["rejected"]["extract/http_status"] == 1 and m["rejected"]["extract/not_html"] == 1
    assert m["rejected"].get("url_dedup/duplicate", 0) >= 1
    rej = pq.read_table(out / "rejected").to_pylist()
    assert "urn:uuid:old-capture" in {r["id"] for r in rej if r["rule"] == "url_dedup/duplicate"}
    q = pq.read_table(out / "quarantine").to_pylist()
    assert q[0]["file"].endswith("b.warc.gz") and q[0]["byte_offset"] is not None
    kept = pq.read_table(out / "mixture").to_pylist()
    assert any("IDLE is Python’s Integrated Development" in r["text"] for r in kept)
    assert m["stages"]["extract"]["rules"]["extract/http_status"] == 1
    assert offsets and data
    # url (WARC-Target-URI) and timestamp (WARC-Date) are columns; p0's latest capture survives
    assert {(r["url"], r["timestamp"]) for r in kept} <= {
        (f"https://example.org/p{i}", "2024-05-06T07:08:09Z") for i in range(len(pages))
    }
    assert ("https://example.org/p0", "2024-05-06T07:08:09Z") in {(r["url"], r["timestamp"]) for r in kept}
    assert pq.read_schema(next((out / "mixture").glob("*.parquet"))).field("timestamp").type == "string"


def test_url_and_timestamp_columns_come_from_every_source(tmp_path):
    """JSONL and Parquet sources name their url_field / timestamp_field; a source without them has
    nulls in both columns; the columns are there whatever the inputs."""
    import pyarrow as pa

    from tests.corpus import bench_docs, write_jsonl

    docs = [x for x in bench_docs(40) if x["category"] == "b_english" and len(x["text"]) > 1500][:6]
    write_jsonl(
        tmp_path / "web.jsonl",
        [
            {
                "id": f"w{i}",
                "text": d["text"],
                "link": f"https://example.org/{i}",
                "seen": f"2024-01-0{i + 1}T00:00:00Z",
            }
            for i, d in enumerate(docs[:2])
        ],
    )
    pq.write_table(
        pa.Table.from_pylist(
            [
                {"id": f"p{i}", "text": d["text"], "link": f"https://example.com/{i}", "seen": 1700000000 + i}
                for i, d in enumerate(docs[2:4])
            ]
        ),
        tmp_path / "web.parquet",
    )
    write_jsonl(tmp_path / "plain.jsonl", [{"id": f"t{i}", "text": d["text"]} for i, d in enumerate(docs[4:])])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"sources:\n"
        f"  - {{name: web, paths: ['{tmp_path}/web.jsonl', '{tmp_path}/web.parquet'],"
        f" url_field: link, timestamp_field: seen}}\n"
        f"  - {{name: plain, paths: ['{tmp_path}/plain.jsonl']}}\n"
    )
    out = tmp_path / "out"
    assert (
        main(["run", str(cfg), "--output", str(out), "--set", "mode=annotate", "--set", "tokenizer.kind=approx"]) == 0
    )
    t = {r["id"]: (r["url"], r["timestamp"]) for r in pq.read_table(out / "annotated").to_pylist()}
    assert t == {
        "w0": ("https://example.org/0", "2024-01-01T00:00:00Z"),
        "w1": ("https://example.org/1", "2024-01-02T00:00:00Z"),
        "p0": ("https://example.com/0", "1700000000"),
        "p1": ("https://example.com/1", "1700000001"),
        "t0": (None, None),
        "t1": (None, None),
    }


def test_submit_dry_run_takes_warc_inputs(tmp_path):
    """`curate submit --dry-run` with a local .warc.gz and a remote .warc.gz pattern: the job's
    last pass knows both files (read per file, streamed record by record in the workers)."""
    from tests.test_submit import dofn, read_proto

    crawl = tmp_path / "crawl"
    crawl.mkdir()
    write_warc(crawl / "a.warc.gz", [warc_record("response", http(HELP))], "gzip")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"sources: [{{name: web, paths: ['{crawl}/a.warc.gz', 'gs://bucket/crawl/*.warc.gz']}}]\n")
    d = tmp_path / "dry"
    assert (
        main(
            [
                "submit",
                str(cfg),
                "--project",
                "proj",
                "--region",
                "us-central1",
                "--image",
                "img:test",
                "--output",
                "gs://bucket/out",
                "--dry-run",
                str(d),
            ]
        )
        == 0
    )
    s = json.loads((d / "submit.json").read_text())
    assert s["input"]["unlisted_patterns"] == ["gs://bucket/crawl/*.warc.gz"] and s["input"]["files"] == 2
    specs = dofn(read_proto(d / "pipeline.pb"), "Finalize").specs.values()
    assert {(x.path, x.format, x.compression) for x in specs} == {
        (str(crawl / "a.warc.gz"), "warc", "gzip"),
        ("gs://bucket/crawl/*.warc.gz", "warc", "gzip"),
    }


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_submit_through_a_worker_pool_reads_warc_like_run(tmp_path):
    """The portable-runner harness (tests/test_portable_runner.py) on a crawl: the job writes the
    same Parquet files as `curate run`."""
    from tests import test_portable_runner as pr

    pages = [HELP] + [pydoc_page(m) for m in ("json", "csv", "textwrap")]
    records = [warc_record("warcinfo", b"software: test\r\n")]
    records += [warc_record("response", http(p), uri=f"https://example.org/p{i}") for i, p in enumerate(pages)]
    records.append(warc_record("response", http(b"<html>x</html>", "404 Not Found"), uri="https://example.org/404"))
    write_warc(tmp_path / "a.warc.gz", records, "gzip")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"sources: [{{name: web, paths: ['{tmp_path}/a.warc.gz']}}]\ntokenizer: {{kind: approx}}\n")
    ref, got = tmp_path / "run", tmp_path / "submitted"
    with pr.worker_pool(tmp_path) as pool:
        p = pr.finish(pr.start_curate(*pr.submit_argv(cfg, pool, got)))
    assert p.returncode == 0, p.stderr[-3000:]
    assert main(["run", str(cfg), "--output", str(ref)]) == 0
    want, have = pr.files(ref), pr.files(got)
    shards = [k for k in want if k.endswith(".parquet")]
    assert shards and sorted(have) == sorted(want)
    assert [k for k in shards if want[k] != have[k]] == []
    m = pr.manifest(got)
    assert m["skipped"] == {"warc/warcinfo": 1} and m["rejected"]["extract/http_status"] == 1
