"""Live progress of `curate run` (pipeline/progress.py), its log file and its timing: the
reports of several processes summed; without a terminal, plain lines whose final drops are the
manifest's; on a terminal (a pty), the rich live display; Beam's lines in OUT/logs/run.log and
not on the terminal; wall time from the start of the command."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import progress
from tests.corpus import bench_docs, near_dup_pairs, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"output:[\s\S]*?\sin\s+(\d+\.\d)\s+s\s+\(start-up\s+(\d+\.\d)\s+s\)")
LINE = re.compile(r"^progress: (\d+)/(\d+) files read, ([\d,]+) documents.*drops so far: (.*?); elapsed", re.M)


# ----------------------------------------------------------------------------- the reports


def test_reports_of_several_processes_are_summed(tmp_path, monkeypatch):
    """Two real processes and this one report; the monitor sums them, keeps a half-written line
    for later, counts drops per stage (informational counters are not drops)."""
    monkeypatch.setenv(progress.PROGRESS_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(progress, "_ON", True)  # what a Monitor does in the runner process
    code = (
        "from pipeline import progress\n"
        "progress.add('input/records', 5); progress.add('heuristics/c4_curly_bracket', 2)\n"
        "progress.add('langid/lingua', 4); progress.file_read(100); progress.flush()\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
    progress.add("quarantine/invalid_json")
    progress.add("input/records", 1)
    progress.flush()
    assert len(list(tmp_path.iterdir())) == 3  # one file per process
    (tmp_path / "99999999.jsonl").write_bytes(b'{"t":1,"c":{"langid/low_score":7}}\n{"t":1,"c":{"langid/low')

    mon = progress.Monitor(total_files=4, total_bytes=400, started=time.time() - 5, live=False)
    mon.dir = str(tmp_path)
    mon.poll()
    assert mon.totals["input/records"] == 11 and mon.totals["input/files"] == 2 and mon.totals["input/bytes"] == 200
    assert mon.drops() == {"langid": 7, "heuristics": 4, "quarantine": 1}  # not langid/lingua
    assert mon.first_read is not None and mon.first_read <= time.time()
    with open(tmp_path / "99999999.jsonl", "ab") as f:
        f.write(b'_score":3}}\n')
    mon.poll()
    assert mon.drops()["langid"] == 10
    line = mon.line()
    assert line.startswith("progress: 2/4 files read, 11 documents") and "drops so far: langid 10" in line
    assert "read pass eta" in line


def test_reporting_is_off_outside_a_run(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.PROGRESS_DIR_ENV, raising=False)
    assert not progress._ON  # no Monitor in this process
    progress.add("input/records", 3)
    monkeypatch.setenv(progress.PROGRESS_DIR_ENV, str(tmp_path))
    progress.flush()
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("progress-corpus")
    docs = bench_docs(40) + near_dup_pairs(20)
    for i in range(4):  # four files: the bar has steps
        broken = [b"{broken"] if i == 0 else []
        write_jsonl(d / f"part-{i}.jsonl", [x for j, x in enumerate(docs) if j % 4 == i] + broken)
    return d


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="160", **extra)
    env.pop(progress.PROGRESS_DIR_ENV, None)
    return env


def _cmd(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.cli",
        "run",
        "--input",
        str(corpus / "*.jsonl"),
        "--output",
        str(out),
        "--set",
        "tokenizer.kind=approx",
        *extra,
    ]


@pytest.fixture(scope="module")
def plain_run(corpus, tmp_path_factory):
    """`--workers 2`, stderr and stdout not terminals, plain lines every 0.5 s."""
    out = tmp_path_factory.mktemp("progress-out") / "out"
    t0 = time.time()
    p = subprocess.run(
        _cmd(corpus, out, "--workers", "2"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=_env(**{progress.INTERVAL_ENV: "0.5"}),
    )
    wall = time.time() - t0
    assert p.returncode == 0, p.stderr[-3000:]
    return {
        "out": out,
        "stderr": p.stderr,
        "stdout": p.stdout,
        "wall": wall,
        "manifest": json.loads((out / "manifest.json").read_text()),
    }


@pytest.mark.slow
def test_plain_lines_without_a_terminal(plain_run):
    lines = LINE.findall(plain_run["stderr"])
    assert len(lines) >= 3, plain_run["stderr"]
    m = plain_run["manifest"]
    files, total, docs, drops = lines[-1]
    assert int(files) == int(total) == 4 and int(docs.replace(",", "")) == m["ledger"]["input"]
    # the workers' reports reached the runner process: the last line's drops are the manifest's
    shown = dict((k, int(v.replace(",", ""))) for k, v in (d.rsplit(" ", 1) for d in drops.split(", ")))
    expect = {k: s["dropped"] for k, s in m["stages"].items() if s["dropped"]}
    if m["ledger"]["quarantined"]:
        expect["quarantine"] = m["ledger"]["quarantined"]
    assert shown == expect
    assert "\x1b[" not in plain_run["stderr"]  # no live display off a terminal


@pytest.mark.slow
def test_terminal_shows_our_lines_and_the_log_has_beams(plain_run):
    err = plain_run["stderr"]
    for line in err.splitlines():  # progress lines, the summary's warnings; nothing of Beam's
        assert not re.search(r"apache_beam|semi_persistent|WARNING|INFO|Traceback", line), line
    log = (plain_run["out"] / "logs" / "run.log").read_text()
    assert "apache_beam" in log and "semi_persistent_directory" in log  # the workers' start-up, logged
    assert "Logging handler created" in log  # a worker's own log lines, forwarded to the runner
    assert "Converting string literal type hint" not in log  # Beam's INFO per string annotation


@pytest.mark.slow
def test_wall_time_from_the_start_of_the_command(plain_run):
    seconds, startup = map(float, SUMMARY.search(plain_run["stdout"]).groups())
    # measured from this process's start (the interpreter's, imports included), not the pipeline's
    assert plain_run["wall"] - 3.0 <= seconds <= plain_run["wall"] + 0.2
    assert 0.5 < startup < seconds


@pytest.mark.slow
def test_live_display_on_a_terminal(plain_run, corpus):
    """In a pty: the rich display (bar, docs/s, drops), redrawn in place; no plain lines. The
    run replaces the previous output, its log included (--overwrite accepts logs/run.log)."""
    out = plain_run["out"]
    old_log = (out / "logs" / "run.log").read_text()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on the pty
        os.chdir(ROOT)
        os.execvpe(sys.executable, _cmd(corpus, out, "--overwrite"), _env(TERM="xterm-256color"))
    chunks, deadline = [], time.time() + 900
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 1.0)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the child closed the pty
                break
            if not data:
                break
            chunks.append(data)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-3000:]
    assert "progress:" not in text
    assert "\x1b[" in text and "files" in text and "drops so far:" in text
    assert "docs/s" in text and "read pass done" in text and "━" in text  # the bar
    assert re.search(r"\x1b\[\d*A", text)  # the cursor moved up: the display was redrawn in place
    assert SUMMARY.search(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text))
    new_log = (out / "logs" / "run.log").read_text()
    assert new_log != old_log and "apache_beam" in new_log
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no staging directory, lock or copy left


@pytest.mark.slow
def test_overwrite_refuses_a_foreign_file_in_logs(plain_run, corpus, tmp_path):
    out = tmp_path / "copy"
    import shutil

    shutil.copytree(plain_run["out"], out)
    (out / "logs" / "notes.txt").write_text("mine")
    p = subprocess.run(
        _cmd(corpus, out, "--overwrite"), cwd=ROOT, capture_output=True, text=True, timeout=300, env=_env()
    )
    assert p.returncode == 2 and "logs/notes.txt" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert (out / "logs" / "notes.txt").exists() and (out / "logs" / "run.log").exists()
