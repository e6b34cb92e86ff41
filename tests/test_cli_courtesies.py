"""The command line's small courtesies: --version, `run --help`, `config show`, the nearest key
for an unknown one, a tokenizer file that is not one, `inspect` of a folder that is not an
output, datasketch only where tests and benchmarks need it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from pipeline import config as cfg
from pipeline.cli import main
from pipeline.config import ConfigError, load_config
from tests.corpus import bench_docs, write_jsonl

ROOT = Path(__file__).resolve().parent.parent


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"curate {metadata.version('curate')} (apache-beam {metadata.version('apache-beam')}")


def test_run_help_has_a_description_and_examples(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "Run the pipeline on this machine" in out and "logs/run.log" in out
    examples = out.split("examples:", 1)[1]
    assert "curate run --input" in examples and "--workers" in examples and "--overwrite" in examples


def test_config_show_is_the_effective_config_with_help(capsys, tmp_path):
    rc = main(
        [
            "config",
            "show",
            "--set",
            "runner.workers=3",
            "--set",
            "stages.langid.enabled=false",
            "--output",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    effective = load_config(
        None, ["runner.workers=3", "stages.langid.enabled=false", f"output.path={json.dumps(str(tmp_path / 'o'))}"]
    )
    assert yaml.safe_load(out) == effective.model_dump(mode="json")  # it loads back, every key, every value
    lines = {ln.split("#")[0].strip(): ln for ln in out.splitlines()}
    assert "(default: 1) > 1: the in-process runner's multi-processing mode" in lines["workers: 3"]
    assert "# filter | annotate" in lines["mode: filter"]  # the choices of a Literal
    rows = out.splitlines()
    langid = rows[next(i for i, r in enumerate(rows) if r.startswith("  langid:")) + 1]
    assert langid.startswith("    enabled: false ") and "# (default: true)" in langid
    # help comes from the models' own documentation (source comments, Field descriptions, docstrings)
    assert cfg.field_help(cfg.OutputConfig, "rejected_text").startswith("also write the text of rejected")
    assert cfg.field_help(cfg.Stages, "url_dedup").startswith("Documents of a source with `url_field`")
    assert all(
        len(cfg.field_help(m, f)) <= cfg.HELP_WIDTH
        for m in (cfg.Config, cfg.RunnerConfig, cfg.Stages)
        for f in m.model_fields
    )


def test_config_show_refuses_a_bad_key_in_one_line(capsys):
    assert main(["config", "show", "--set", "runner.worker=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "config error: runner.worker: unknown key (did you mean runner.workers?)"


@pytest.mark.parametrize(
    "override, near",
    [
        ("stages.langid.enable=true", "stages.langid.enabled"),
        ("stages.lang_id.enabled=true", "stages.langid"),
        ("stages.minhash_dedup.treshold=0.8", "stages.minhash_dedup.threshold"),
        ("output.compresion=zstd", "output.compression"),
        ("mod=annotate", "mode"),
    ],
)
def test_unknown_key_suggests_the_nearest(override, near):
    with pytest.raises(ConfigError, match=rf"unknown key \(did you mean {near.replace('.', '[.]')}\?\)"):
        load_config(None, [override])


def test_unknown_key_in_a_yaml_file_and_a_list_item(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("sources:\n  - {name: a, paths: [x.jsonl], text_feild: body}\n")
    with pytest.raises(
        ConfigError,
        match=r"sources\.0\.text_feild: unknown key"
        r" \(did you mean sources\.0\.text_field\?\)",
    ):
        load_config(p)
    p.write_text("stages: {heuristics: {c4: {drop_lorem: true}}}\n")
    with pytest.raises(ConfigError, match=r"did you mean stages\.heuristics\.c4\.drop_lorem_ipsum\?"):
        load_config(p)
    p.write_text("zzzzzz: 1\n")
    with pytest.raises(ConfigError) as e:  # nothing near: no suggestion
        load_config(p)
    assert str(e.value) == "config error: zzzzzz: unknown key"


def test_a_tokenizer_file_that_is_not_one_is_a_setup_error(tmp_path, capsys):
    for name, blob in (("tok.json", b'{"model": "not a tokenizer"}'), ("tok.bin", b"\xff\xfe binary")):
        bad = tmp_path / name
        bad.write_bytes(blob)
        out = tmp_path / "out"
        rc = main(
            ["run", "--input", str(tmp_path / "none.jsonl"), "--output", str(out), "--set", f"tokenizer.path={bad}"]
        )
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"config error: tokenizer.path: {bad} is not a Hugging Face tokenizer.json")
        assert not out.exists()


# ----------------------------------------------------------------------------- inspect


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    """A real output inside a folder, beside a plain file."""
    d = tmp_path_factory.mktemp("inspect-courtesy")
    write_jsonl(d / "in.jsonl", bench_docs(10) + [b"{broken"])
    parent = d / "runs"
    parent.mkdir()
    (parent / "notes.txt").write_text("my notes")
    assert (
        main(
            ["run", "--input", str(d / "in.jsonl"), "--output", str(parent / "first"), "--set", "tokenizer.kind=approx"]
        )
        == 0
    )
    return parent / "first"


@pytest.mark.slow
def test_inspect_a_folder_holding_an_output_says_so(output, capsys):
    assert main(["inspect", str(output.parent)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"inspect: {output.parent}: not a curate output (no manifest.json); it holds the curate"
        " output first: inspect one of them"
    )
    assert main(["inspect", str(output / "rejected")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"inspect: {output / 'rejected'}: not a curate output: the rejected/ directory of the output"
        f" {output}; inspect that"
    )
    assert main(["inspect", str(output / "logs")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"inspect: {output / 'logs'}: not a curate output (no manifest.json) and no Parquet files"
    )
    assert main(["inspect", str(output)]) == 0  # the output itself


def test_inspect_parquet_without_the_contract_names_the_folder(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"a": [1]}), tmp_path / "d" / "x.parquet")
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith(
            f"inspect: {tmp_path}: not a curate output (no manifest.json) nor Parquet with the"
            " contract's columns: d/x.parquet:"
        )
        and len(err.splitlines()) == 1
    )


# ----------------------------------------------------------------------------- datasketch


def test_datasketch_is_a_dev_dependency_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("datasketch") for d in project["dependencies"])
    assert any(d.startswith("datasketch") for d in project["optional-dependencies"]["dev"])
    for pkg in ("pipeline", "classifiers"):  # the product never imports it
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                assert not any(n.split(".")[0] == "datasketch" for n in names), path
    # and a run's modules load without it
    code = (
        "import sys; sys.modules['datasketch'] = None\n"
        "import pipeline.cli, pipeline.graph, pipeline.runner, classifiers.minhash\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=300)


def test_a_run_imports_beam_without_pandas_and_pandas_still_imports():
    """The console script imports Beam with pandas hidden (pipeline.sdk_worker's
    import_beam_without_pandas: Beam's typehints would import it, 0.3 s and ~45 MB per process);
    a run's modules then load without pandas, and pandas (installed here: HF datasets needs it)
    imports and works afterwards, Arrow's conversion included."""
    pytest.importorskip("pandas")
    code = (
        "import sys\n"
        "from pipeline.sdk_worker import import_beam_without_pandas\n"
        "import_beam_without_pandas()\n"
        "import pipeline.cli, pipeline.graph, pipeline.runner\n"
        "assert 'pandas' not in sys.modules and 'apache_beam' in sys.modules\n"
        "import pandas, pyarrow\n"
        "assert pyarrow.table({'a': [1, 2]}).to_pandas()['a'].sum() == 3\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=300)
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipeline.cli", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    loaded = [ln.rsplit("|", 1)[-1].strip() for ln in out.stderr.splitlines() if ln.startswith("import time:")]
    assert "apache_beam" in loaded and "pandas.core.api" not in loaded


def test_beams_signatures_and_dofn_specs_are_kept_and_stay_the_same():
    """pipeline.sdk_worker's cache_signatures: Beam's get_signature (wherever Beam imported it)
    and get_dofn_specs answer as before, a method's signature is worked out once per function,
    a DoFn's specs once per DoFn and handed out as fresh sets, and a DoFn Beam refuses is still
    refused. In a subprocess: it changes Beam's modules."""
    code = """
import inspect
import apache_beam as beam
from apache_beam.coders import StrUtf8Coder
from apache_beam.transforms import core, userstate
from apache_beam.typehints import decorators

class Plain(beam.DoFn):
    def process(self, element, scale=2):
        yield element * scale

class Stateful(beam.DoFn):
    BAG = userstate.BagStateSpec("bag", StrUtf8Coder())
    def process(self, element, bag=beam.DoFn.StateParam(BAG)):
        yield element

class Twice(beam.DoFn):
    BAG = userstate.BagStateSpec("bag", StrUtf8Coder())
    def process(self, element, a=beam.DoFn.StateParam(BAG), b=beam.DoFn.StateParam(BAG)):
        yield element

def answers():
    fns = [Plain(), Stateful(), beam.core.CallableWrapperDoFn(lambda x, y=3: [x])]
    sigs = [str(decorators.get_signature(f.process)) for f in fns]
    args = [core.get_function_arguments(f, "process") for f in fns]
    specs = [tuple(sorted(s.name for s in group) for group in userstate.get_dofn_specs(f)) for f in fns]
    return sigs, args, specs, [userstate.is_stateful_dofn(f) for f in fns]

before = answers()
from pipeline.sdk_worker import cache_signatures
cache_signatures(); cache_signatures()
assert core.get_signature is decorators.get_signature and decorators.get_signature.cached
assert answers() == answers() == before, (answers(), before)
assert before[3] == [False, True, False]
p = Plain()
assert decorators.get_signature(p.process) is decorators.get_signature(Plain().process)
s = Stateful()
state, _ = userstate.get_dofn_specs(s)
state.clear()
assert [x.name for x in userstate.get_dofn_specs(s)[0]] == ["bag"]
try:
    userstate.get_dofn_specs(Twice())
except ValueError as e:
    assert "duplicate" in str(e)
else:
    raise AssertionError("a DoFn with a state parameter twice was not refused")
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr


def test_arrow_converts_without_pandas_and_to_pandas_still_works():
    """pipeline.sdk_worker's arrow_without_pandas (a run's processes): pyarrow converts Python rows
    (the shapes the last pass and the shard writer hand it) without importing pandas, with the
    same result as where pandas is loaded, and `to_pandas()` still imports pandas and works."""
    pytest.importorskip("pandas")
    code = """
import sys, pyarrow as pa
schema = pa.schema([("id", pa.string()), ("n", pa.int64()), ("score", pa.float64()), ("keep", pa.bool_()),
                    ("tags", pa.list_(pa.string())), ("sig", pa.struct([("a", pa.float64())])), ("none", pa.string())])
rows = [{"id": "d1", "n": 3, "score": float("nan"), "keep": True, "tags": ["x", "y"], "sig": {"a": 0.5}, "none": None},
        {"id": "d\\u00e9", "n": None, "score": 1.25, "keep": False, "tags": [], "sig": None, "none": None}]
from pipeline.sdk_worker import arrow_without_pandas
arrow_without_pandas()
assert "pandas" not in sys.modules
got = pa.RecordBatch.from_pylist(rows, schema=schema)
table = pa.Table.from_pylist(rows, schema=schema)
pa.array([1.5, None, None])
assert "pandas" not in sys.modules, "pyarrow imported pandas"
def ipc(data):  # the bytes (a NaN is not equal to itself, so Arrow's equals says no)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as w:
        w.write(data)
    return sink.getvalue().to_pybytes()
import pandas
assert ipc(got) == ipc(pa.RecordBatch.from_pylist(rows, schema=schema))
assert ipc(table) == ipc(pa.Table.from_pylist(rows, schema=schema))
assert table.to_pandas()["n"].tolist()[0] == 3
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr
