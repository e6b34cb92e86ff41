"""The scale-out path, run for real: `curate submit --runner flink --job-endpoint embed
--environment-type EXTERNAL --environment-config localhost:PORT` hands the job to Beam's job
service (the job API that Flink's and Spark's job servers speak), whose runner starts its SDK
workers through a worker pool in other processes (`worker_pool_main`, what the worker image runs
with `--worker_pool`), and must write the same files as `curate run` on the same input and config.

The pool starts its workers as `python` from its PATH, so this interpreter's bin comes first there.
Every process is bounded: the pool must accept connections within POOL_START_S, each command
ends within its timeout, and the pool's whole process group is killed at the end (and checked
gone). A pool whose `python` lacks Beam makes the job wait for a worker that never connects;
the timeouts turn that into a failed test, not a stuck CI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from pipeline import outdir, schema
from pipeline import submit as sub
from pipeline.cli import main
from tests.corpus import bench_docs, write_jsonl

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: its `python` runs the pool's SDK workers
POOL_START_S = 60  # the pool imports Beam before it listens: seconds on a loaded machine
SUBMIT_TIMEOUT_S = 240
STOP_S = 10
POOL_MODULE = "apache_beam.runners.worker.worker_pool_main"
BAD = [b"{not json", b'{"id": "no-text"}']
# What may differ between `curate run` and the submitted job's manifests: how it ran, not what it wrote.
RUN_FIELDS = ("runner", "workers", "job_name", "config_sha256")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("portable-corpus")
    docs = bench_docs(6)
    text = [x for x in docs if x["category"] != "c_code"]
    code = [{"id": x["id"], "text": x["text"], "path": x["id"]} for x in docs if x["category"] == "c_code"]
    write_jsonl(d / "text.jsonl.zst", text, compress=True)
    write_jsonl(d / "bad.jsonl", [text[0]] + BAD)  # an exact duplicate and two quarantined lines
    write_jsonl(d / "code.jsonl", code)
    cfg = d / "run.yaml"
    cfg.write_text(f"""
sources:
  - {{name: text, paths: ["{d}/text.jsonl.zst", "{d}/bad.jsonl"]}}
  - {{name: code, paths: ["{d}/code.jsonl"], kind: code, path_field: path}}
output: {{shard_bytes: 20000}}
""")
    return cfg


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_alive(pgid: int) -> list[str]:
    """Live (not zombie) processes of process group pgid, as 'pid cmdline'."""
    out = []
    for p in psutil.process_iter(["status", "cmdline"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {' '.join(p.info['cmdline'] or [])}")
        except (ProcessLookupError, psutil.Error):
            continue
    return out


def kill_group(proc: subprocess.Popen) -> list[str]:
    """SIGTERM, then SIGKILL, to proc's process group (its session leader is proc); returns
    what is still alive after that (nothing, normally)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + STOP_S
        while time.monotonic() < deadline and group_alive(proc.pid):
            time.sleep(0.2)
        if not group_alive(proc.pid):
            break
    try:
        proc.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        pass
    return group_alive(proc.pid)


def clean_env(path_first: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # workers import the installed project
    env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    return env


@contextmanager
def worker_pool(tmp: Path, path_first: Path = BIN):
    """`python -m apache_beam.runners.worker.worker_pool_main --service_port=PORT` with
    path_first first on PATH, in its own process group; yields 'localhost:PORT' once it accepts
    connections. Its log is in tmp/pool.log."""
    assert (path_first / "python").exists(), f"{path_first}/python: the pool starts its workers as `python`"
    port = free_port()
    log = tmp / "pool.log"
    with log.open("wb") as f:
        # cwd: an empty directory, so that the workers import this project as installed, not from the checkout
        proc = subprocess.Popen(
            [str(path_first / "python"), "-m", POOL_MODULE, f"--service_port={port}"],
            cwd=tmp,
            env=clean_env(path_first),
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + POOL_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the worker pool exited ({proc.returncode}) before listening:\n{log.read_text()[-2000:]}")
            try:
                socket.create_connection(("localhost", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"the worker pool did not accept connections on port {port} within {POOL_START_S}"
                        f" s:\n{log.read_text()[-2000:]}"
                    )
                time.sleep(0.25)
        yield f"localhost:{port}"
    finally:
        left = kill_group(proc)
        assert not left, f"worker pool processes left running: {left}"


def start_curate(*argv: str) -> subprocess.Popen:
    """`curate ARGV` in its own process group (see `finish`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *argv],
        cwd=REPO,
        env=clean_env(BIN),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def curate(*argv: str, timeout: float = SUBMIT_TIMEOUT_S) -> subprocess.CompletedProcess:
    return finish(start_curate(*argv), timeout)


def finish(proc: subprocess.Popen, timeout: float = SUBMIT_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Its exit code and output; the whole group is killed (and the test failed) past timeout."""
    argv = proc.args[3:]
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        pytest.fail(
            f"`curate {' '.join(argv)}` did not end within {timeout} s (a worker that never connects?):\n{err[-3000:]}"
        )
    finally:
        kill_group(proc)  # anything it started and left behind
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def submit_argv(config: Path, pool: str, out: Path) -> list[str]:
    return [
        "submit",
        str(config),
        "--runner",
        "flink",
        "--job-endpoint",
        sub.EMBEDDED_JOB_ENDPOINT,
        "--environment-type",
        "EXTERNAL",
        "--environment-config",
        pool,
        "--output",
        str(out),
    ]


# ----------------------------------------------------------------------------- outputs


def files(out: Path) -> dict[str, bytes]:
    """Every file an output holds but `curate run`'s own log, by path relative to it."""
    return {
        k: p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and (k := p.relative_to(out).as_posix()) != outdir.RUN_LOG
    }


def manifest(out: Path) -> dict:
    import json

    return json.loads((out / schema.MANIFEST_NAME).read_text())


def what_was_written(m: dict) -> dict:
    """The manifest without how the job ran (RUN_FIELDS) and where it wrote (output.path)."""
    m = {k: v for k, v in m.items() if k not in RUN_FIELDS}
    m["config"] = {**m["config"], "output": {k: v for k, v in m["config"]["output"].items() if k != "path"}}
    if "dataset_card" in m:  # the card names the config's sha256 (so, output.path) and the command
        m["dataset_card"] = {k: v for k, v in m["dataset_card"].items() if k not in ("sha256", "bytes")}
    return m


# ----------------------------------------------------------------------------- tests


@pytest.mark.timeout(2 * SUBMIT_TIMEOUT_S)
def test_submit_through_a_worker_pool_writes_the_same_files_as_run(corpus, tmp_path):
    ref, got = tmp_path / "run", tmp_path / "submitted"
    with worker_pool(tmp_path) as pool:
        job = start_curate(*submit_argv(corpus, pool, got))
        try:  # meanwhile, `curate run` on the same input and config
            assert main(["run", str(corpus), "--output", str(ref)]) == 0
        except BaseException:
            kill_group(job)
            raise
        p = finish(job)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "final state: DONE" in p.stdout

    # the same files; the Parquet ones byte for byte: they are written deterministically, so equal
    # bytes are the strongest check, covering every column, row order and shard boundary at once.
    # The rest (manifest, dataset card, report) are written from the counts, and name the config's
    # sha256, which covers output.path: the manifest is compared field by field below.
    want, have = files(ref), files(got)
    assert sorted(have) == sorted(want)
    shards = [k for k in want if k.endswith(".parquet")]
    for kind in (schema.MIXTURE_DIR, schema.REJECTED_DIR, schema.QUARANTINE_DIR):
        assert any(k.startswith(kind + "/") for k in shards), (kind, shards)
    assert [k for k in shards if want[k] != have[k]] == []

    m_ref, m_got = manifest(ref), manifest(got)
    assert m_got["runner"] == "PortableRunner (flink)" and m_got["job_name"].startswith("curate-")
    assert m_got["ledger"]["balanced"] and m_got["ledger"]["quarantined"] == len(BAD)
    assert what_was_written(m_got) == what_was_written(m_ref)  # every count, shard hash, share
    assert "Written by `curate submit` (PortableRunner (flink))" in have[schema.DATASET_CARD].decode()
    assert "Written by `curate run`" in want[schema.DATASET_CARD].decode()


@pytest.mark.timeout(2 * SUBMIT_TIMEOUT_S)
def test_a_pool_whose_python_lacks_the_project_fails_the_job_in_one_line(corpus, tmp_path):
    """The mistake of serving Beam's stock SDK instead of this project's image: the pool's
    python has Beam but not `pipeline`. The job fails on its first worker; `curate submit`
    exits 1 with the final state and the workers' error, and writes no output."""
    stock = tmp_path / "beam-only"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(stock)], check=True, timeout=60)
    python = str(stock / "bin" / "python")
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            timeout=60,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "beam.pth").write_text(sysconfig.get_path("purelib") + "\n")  # the packages, not the project's finder
    check = "import apache_beam, importlib.util as u; print(u.find_spec('pipeline') is None)"
    probe = subprocess.run(
        [python, "-c", check],
        cwd=tmp_path,
        timeout=120,
        check=False,
        capture_output=True,
        text=True,
        env=clean_env(stock / "bin"),
    )
    assert probe.stdout.strip() == "True", (
        "a python with Beam but without this project could not be made"
        f" (curate not installed editable?): {probe.stdout}{probe.stderr[-2000:]}"
    )

    out = tmp_path / "out"
    with worker_pool(tmp_path, stock / "bin") as pool:
        p = curate(*submit_argv(corpus, pool, out))
    assert p.returncode == 1, p.stderr[-3000:]
    assert "final state: FAILED" in p.stdout
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("job error: ") and "No module named 'pipeline'" in last, last
    assert not (out / schema.MANIFEST_NAME).exists()


@pytest.mark.timeout(120)
def test_nothing_listening_at_the_pool_is_one_line_after_a_bounded_wait(corpus, tmp_path):
    pool = f"localhost:{free_port()}"  # free: nothing listens there
    t0 = time.monotonic()
    p = curate(*submit_argv(corpus, pool, tmp_path / "out"), timeout=90)
    took = time.monotonic() - t0
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--environment-config {pool}: no Beam worker pool" in lines[0], p.stderr
    assert took < sub.ENDPOINT_WAIT_S + 60  # the wait, plus starting Python and listing the inputs
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("what", ["worker pool", "job server"])
def test_a_port_that_does_not_speak_grpc_is_not_taken_for_a_service(corpus, tmp_path, capsys, monkeypatch, what):
    """Something listens (TCP connections are accepted) but it is no Beam service: the same one
    line, for the worker pool and for a job server given by --job-endpoint."""
    monkeypatch.setattr(sub, "ENDPOINT_WAIT_S", 3.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        addr = f"127.0.0.1:{s.getsockname()[1]}"
        argv = (
            submit_argv(corpus, addr, tmp_path / "out")
            if what == "worker pool"
            else ["submit", str(corpus), "--runner", "spark", "--job-endpoint", addr, "--output", str(tmp_path / "out")]
        )
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"no Beam {what} answered within 3 s" in err, err
    assert not (tmp_path / "out").exists()
