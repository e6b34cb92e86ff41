"""Issue 14, part A: nothing lost in or around the output directory. Real files, real `curate run`
processes and real signals: outputs that overlap inputs, --overwrite next to files curate did not
write (and symlinks), reruns that fail, two runs into one output, setup problems found before any
work, Ctrl-C / SIGTERM / SIGKILL with worker processes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline import outdir
from pipeline.cli import main
from tests.corpus import sample_docs, write_jsonl

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CURATE = [sys.executable, "-m", "pipeline.cli"]


def snapshot(root: Path) -> dict[str, str]:
    """Every file and symlink under `root` (symlinks not followed) -> its sha256 or link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            out[rel] = "-> " + os.readlink(p) if os.path.islink(p) else hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def leftovers(out: Path) -> list[str]:
    """What a run may have left beside `out`: staging directories and the lock."""
    return sorted(
        p.name for p in out.parent.iterdir() if p.name.startswith(out.name + ".tmp-") or p.name == out.name + ".lock"
    )


def stderr_lines(err: str) -> list[str]:
    """Its lines, less the live progress (a plain line every 10 s off a terminal)."""
    return [x for x in err.splitlines() if x.strip() and not x.startswith("progress: ")]


def run_main(capsys, *argv) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = main(["run", *map(str, argv)])
    return rc, stderr_lines(capsys.readouterr().err)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("safety-corpus")
    docs = [{"id": x["id"], "text": x["text"]} for x in sample_docs()]  # 952 real documents
    write_jsonl(d / "small.jsonl", docs[::5])  # ~200 documents: complete runs
    # ~2,000 (the sample and a copy of it under new ids, as bench/build_corpus.py --scale
    # repeats a corpus): runs that get interrupted
    write_jsonl(d / "big.jsonl", docs + [{**x, "id": f"{x['id']}~r1"} for x in docs])
    return {"dir": d, "small": d / "small.jsonl", "big": d / "big.jsonl"}


@pytest.fixture(scope="module")
def baseline(corpus, tmp_path_factory) -> Path:
    """A complete output of the small corpus."""
    out = tmp_path_factory.mktemp("safety-out") / "out"
    assert main(["run", "--input", str(corpus["small"]), "--output", str(out)]) == 0
    assert (out / "manifest.json").exists() and leftovers(out) == []
    return out


@pytest.fixture
def old(baseline, tmp_path) -> Path:
    """A copy of the complete output, to overwrite or damage."""
    return Path(shutil.copytree(baseline, tmp_path / "out", symlinks=True))


# ----------------------------------------------------------------------------- inputs vs output


def test_an_output_that_overlaps_an_input_is_refused(corpus, old, tmp_path, capsys):
    before = snapshot(old)
    # the old output's shards as input, written over with --overwrite (issue: documents lost)
    rc, err = run_main(capsys, "--input", f"{old}/mixture/*.parquet", "--output", old, "--overwrite")
    assert rc == 2 and len(err) == 1 and "reaches into the output" in err[0], err
    # a glob that reaches into the output, whether or not the output exists yet
    w = tmp_path / "w"
    w.mkdir()
    shutil.copy(corpus["small"], w / "in.jsonl")
    for out in (w / "out", w / "new"):
        if out.name == "out":
            shutil.copytree(old, out, symlinks=True)
        rc, err = run_main(capsys, "--input", f"{w}/**", "--output", out, "--overwrite")
        assert rc == 2 and len(err) == 1 and "reaches into the output" in err[0], err
    # an input that is a symlink to a file inside the output
    link = tmp_path / "link.parquet"
    link.symlink_to(next((old / "mixture").glob("*.parquet")))
    rc, err = run_main(capsys, "--input", link, "--output", old, "--overwrite")
    assert rc == 2 and len(err) == 1 and "is inside the output" in err[0], err
    assert snapshot(old) == before and snapshot(w / "out") == before
    assert leftovers(old) == [] and not (w / "new").exists()


# ----------------------------------------------------------------------------- --overwrite


@pytest.mark.parametrize(
    "foreign",
    [
        "rejected/thesis.docx",
        "notes.tmp-2024/important.txt",
        "mixture/my.csv",
        "symlink-file",
        "symlink-dir",
        "dangling-symlink",
        "no-manifest",
    ],
)
def test_overwrite_never_deletes_what_curate_did_not_write(foreign, old, tmp_path, capsys):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    if foreign == "symlink-file":
        (old / "mixture" / "link.parquet").symlink_to(outside / "precious.txt")
    elif foreign == "symlink-dir":
        (old / "rejected" / "linked").symlink_to(outside, target_is_directory=True)
    elif foreign == "dangling-symlink":
        (old / "quarantine").mkdir(exist_ok=True)
        (old / "quarantine" / "gone").symlink_to(tmp_path / "nothing-here")
    elif foreign == "no-manifest":  # a folder holding only mixture/my.csv
        shutil.rmtree(old)
        (old / "mixture").mkdir(parents=True)
        (old / "mixture" / "my.csv").write_text("a,b\n")
    else:
        (old / foreign).parent.mkdir(parents=True, exist_ok=True)
        (old / foreign).write_text("mine")
    before, before_outside = snapshot(old), snapshot(outside)
    rc, err = run_main(capsys, "--input", _input(tmp_path), "--output", old, "--overwrite")
    assert rc == 2 and len(err) == 1 and err[0].startswith("output error: refusing to overwrite"), err
    assert snapshot(old) == before and snapshot(outside) == before_outside
    assert leftovers(old) == []


def _input(tmp_path: Path) -> Path:
    p = tmp_path / "in.jsonl"
    if not p.exists():
        write_jsonl(p, [{"id": "x", "text": "A short document about nothing in particular."}])
    return p


def test_overwrite_replaces_only_the_listed_files_once_the_new_output_is_complete(
    corpus, old, tmp_path, capsys, monkeypatch
):
    import tempfile as tf

    # a shard left half-written by an older run, and things beside the output that are not ours
    partial = old / "mixture" / ("en.part-00000-of-00001.parquet.tmp-" + "a" * 32)
    partial.write_bytes(b"half")
    (tmp_path / "out.tmp-2024").mkdir()
    (tmp_path / "out.tmp-2024" / "important.txt").write_text("not ours")
    (tmp_path / "out.backup").write_text("not ours either")
    old_manifest = json.loads((old / "manifest.json").read_text())
    ino = old.stat().st_ino

    def no_tmpdir(*a, **k):  # shards are written beside the output, never to $TMPDIR first
        raise AssertionError("a temporary file in $TMPDIR")

    monkeypatch.setattr(tf, "NamedTemporaryFile", no_tmpdir)
    rc, _ = run_main(
        capsys,
        "--input",
        corpus["small"],
        "--output",
        old,
        "--overwrite",
        "--set",
        "stages.minhash_dedup.threshold=0.8",
    )
    assert rc == 0
    m = json.loads((old / "manifest.json").read_text())
    assert m["config_sha256"] != old_manifest["config_sha256"]
    assert old.stat().st_ino != ino  # a new directory, swapped in
    assert set(snapshot(old)) == {"manifest.json", "logs/run.log", m["dataset_card"]["path"]} | {
        s["path"] for s in m["shards"]
    }
    assert not partial.exists()
    assert (tmp_path / "out.tmp-2024" / "important.txt").read_text() == "not ours"
    assert (tmp_path / "out.backup").exists() and leftovers(old) == ["out.tmp-2024"]


def test_a_rerun_that_fails_leaves_the_previous_output_intact(corpus, old, tmp_path, capsys, monkeypatch):
    before = snapshot(old)
    # 1. in a separate process: a tokenizer file that is not one
    bad = tmp_path / "tokenizer.json"
    bad.write_text("this is not a tokenizer")
    p = subprocess.run(
        [
            *CURATE,
            "run",
            "--input",
            str(corpus["small"]),
            "--output",
            str(old),
            "--overwrite",
            "--set",
            f"tokenizer.path={bad}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert p.returncode != 0, p.stderr
    assert snapshot(old) == before and leftovers(old) == []
    # 2. at the very end: every shard staged, then writing the manifest fails
    import pipeline.stages.write as write

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(write, "build_manifest", boom)
    with pytest.raises(Exception, match="disk full"):
        main(["run", "--input", str(corpus["small"]), "--output", str(old), "--overwrite"])
    assert snapshot(old) == before and leftovers(old) == []


# ----------------------------------------------------------------------------- setup problems


def test_setup_problems_are_one_line_exit_2_before_any_work(corpus, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    cases = [
        (["--output", tmp_path / "afile" / "out"], "is not a directory"),
        (["--output", tmp_path / "afile"], "exists and is not a directory"),
        (["--output", ""], "--output is empty"),
        (["--set", "output.path= "], "the output path is empty"),
        (
            ["--output", tmp_path / "o", "--set", 'stages.langid.languages={"en": null, "../x": null}'],
            "stages.langid.languages",
        ),
        (["--output", tmp_path / "o", "--set", 'stages.mixture.targets={"a/b": 0.1}'], "stages.mixture.targets"),
        (["--output", tmp_path / "o", "--set", "output.shard_bytes=1"], "output.shard_bytes"),
    ]
    for argv, needle in cases:
        rc, err = run_main(capsys, "--input", corpus["small"], *argv)
        assert rc == 2 and len(err) == 1 and needle in err[0], (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_read_only_output_parent_is_refused_before_any_work(corpus, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    prefix = []
    if os.geteuid() == 0:  # root writes anywhere: run it without the capability that allows that
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all"]
    try:
        p = subprocess.run(
            [*prefix, *CURATE, "run", "--input", str(corpus["small"]), "--output", str(ro / "out")],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )
        assert p.returncode == 2 and stderr_lines(p.stderr) == [
            f"output error: cannot create {ro / 'out'}: {ro} is not writable"
        ], p.stderr
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


# ----------------------------------------------------------------------------- processes and signals


def start(corpus, out: Path, tmpdir: Path, *extra) -> subprocess.Popen:
    """`curate run` on the big corpus with 2 worker processes, in its own process group (as a
    shell runs a foreground job), with its own $TMPDIR."""
    tmpdir.mkdir(exist_ok=True)
    return subprocess.Popen(
        [*CURATE, "run", "--input", str(corpus["big"]), "--output", str(out), "--workers", "2", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )


def wait_for_workers(p: subprocess.Popen, n: int = 2, timeout: float = 120) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert p.poll() is None, p.communicate()[1]
        try:
            workers = [
                c
                for c in psutil.Process(p.pid).children(recursive=True)
                if "pipeline.sdk_worker" in " ".join(c.cmdline())
            ]
        except psutil.Error:
            workers = []
        if len(workers) >= n:
            return workers
        time.sleep(0.1)
    raise AssertionError("the SDK workers did not start")


def gone(procs: list[psutil.Process], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for w in procs:
            try:
                if w.is_running() and w.status() != psutil.STATUS_ZOMBIE:
                    alive.append(w)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_is_one_line_exit_130_workers_stopped_nothing_left(corpus, old, tmp_path):
    before = snapshot(old)
    tmpdir = tmp_path / "tmpdir"
    p = start(corpus, old, tmpdir, "--overwrite")
    workers = wait_for_workers(p)
    staging = [x for x in leftovers(old) if ".tmp-" in x]
    assert len(staging) == 1  # the new output is built beside the old one
    time.sleep(1.0)
    os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 130, err
    assert stderr_lines(err) == [f"interrupted (SIGINT): {old} left as it was"], err
    assert gone(workers)
    assert snapshot(old) == before and leftovers(old) == [] and list(tmpdir.iterdir()) == []


def test_a_second_run_into_the_same_output_stops_then_sigterm_stops_the_first(corpus, tmp_path):
    out = tmp_path / "out"
    tmpdir = tmp_path / "tmpdir"
    first = start(corpus, out, tmpdir)
    workers = wait_for_workers(first)
    assert (tmp_path / "out.lock").exists()
    second = subprocess.run(
        [*CURATE, "run", "--input", str(corpus["small"]), "--output", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    lines = stderr_lines(second.stderr)
    assert second.returncode == 2 and len(lines) == 1, second.stderr
    assert f"another curate run (pid {first.pid}) is writing" in lines[0]
    assert first.poll() is None  # the first run goes on
    first.send_signal(signal.SIGTERM)  # `kill PID`: the runner process only
    err = first.communicate(timeout=60)[1]
    assert first.returncode == 143 and stderr_lines(err) == [f"interrupted (SIGTERM): {out} left as it was"], err
    assert gone(workers)
    assert not out.exists() and leftovers(out) == [] and list(tmpdir.iterdir()) == []


def test_sigkill_takes_the_workers_along_and_the_next_run_cleans_up(corpus, old, tmp_path):
    before = snapshot(old)
    p = start(corpus, old, tmp_path / "tmpdir", "--overwrite")
    workers = wait_for_workers(p)
    p.kill()
    p.communicate(timeout=60)
    assert gone(workers)  # PR_SET_PDEATHSIG: no worker waits for its gRPC channel to time out
    assert snapshot(old) == before
    stale = leftovers(old)
    assert sorted(x.split(".", 1)[1][:4] for x in stale) == ["lock", "tmp-"], stale
    # the next run into that output takes the lock over and deletes the dead run's staging directory
    staged = outdir.StagedOutput.open(str(old), [], [], overwrite=True)
    try:
        assert leftovers(old) == sorted(["out.lock", os.path.basename(staged.staging)])
    finally:
        staged.close()
    assert leftovers(old) == [] and snapshot(old) == before


# ----------------------------------------------------------------------------- the swap itself

SHARD = "mixture/en.part-00000-of-00001.parquet"


def fake_output(root: Path, tag: str) -> None:
    """A minimal curate output: one shard and the manifest that lists it."""
    (root / "mixture").mkdir(parents=True)
    (root / SHARD).write_text(tag)
    (root / "manifest.json").write_text(json.dumps({"shards": [{"path": SHARD}], "tag": tag}))


@pytest.mark.parametrize("renameat2", [True, False])
def test_the_new_output_replaces_the_old_in_one_step(tmp_path, monkeypatch, renameat2):
    out = tmp_path / "out"
    fake_output(out, "old")
    if not renameat2:  # the portable path: two renames
        monkeypatch.setattr(outdir, "exchange", lambda a, b: False)
    staged = outdir.StagedOutput.open(str(out), [], [], overwrite=True)
    try:
        fake_output(Path(staged.staging), "new")
        assert json.loads((out / "manifest.json").read_text())["tag"] == "old"  # untouched until commit
        staged.commit()
    finally:
        staged.close()
    assert (out / SHARD).read_text() == "new" and leftovers(out) == []


def test_files_that_appear_in_the_old_output_during_the_run_stop_the_swap(tmp_path, capsys):
    out = tmp_path / "out"
    fake_output(out, "old")
    staged = outdir.StagedOutput.open(str(out), [], [], overwrite=True)
    try:
        fake_output(Path(staged.staging), "new")
        (out / "mixture" / "notes.txt").write_text("written while the run ran")
        with pytest.raises(outdir.OutputError, match="changed during the run"):
            staged.commit()
    finally:
        staged.close()
    assert (out / SHARD).read_text() == "old" and (out / "mixture" / "notes.txt").exists()
    assert leftovers(out) == []
