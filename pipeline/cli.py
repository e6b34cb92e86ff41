"""`curate`: the command line.

  curate run [CONFIG] [--input PATH_OR_GLOB ...] [--output DIR] [--set dotted.key=value ...]
             [--workers N] [--overwrite]
  curate inspect OUT [--json] [--plot FILE.png] [--verify]
  curate judge [CONFIG] --input ... --sample N --output LABELS/ [--set ...]
  curate distill --labels LABELS/ --output MODEL [CONFIG] [--set ...]
  curate submit [CONFIG] --project P --region R --temp-location gs://B/tmp [--output gs://B/out]
                [--gpu-type T --gpu-count N] [--image IMAGE] [--max-workers N] [--dry-run DIR]

Setup problems (bad config, missing input, an output directory in the way) are one line on
stderr and exit code 2, before any work starts.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline import inspect_cmd, label_cmd, submit
from pipeline.config import ConfigError, Source, load_config

# What a curate output directory may hold; --overwrite deletes only directories made of these.
OUTPUT_ENTRIES = {"manifest.json", "mixture", "annotated", "rejected", "quarantine"}


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML run config (default: configs/default.yaml)")
    p.add_argument("--input", action="append", default=[], metavar="PATH_OR_GLOB",
                   help="add a text source (repeatable); local paths or any Beam filesystem URI")
    p.add_argument("--output", help="output directory (overrides output.path)")
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="override a config key, typed by the schema (repeatable)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="curate", description="LLM pretraining data curation on Apache Beam")
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the pipeline on this machine")
    _add_config_args(run)
    run.add_argument("--workers", type=int, help="worker processes (default: runner.workers)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    inspect_cmd.add_parser(sub)
    label_cmd.add_parsers(sub, _add_config_args)
    submit.add_parser(sub)
    return ap


def resolve_config(args):
    overrides = list(args.overrides)
    if args.output:
        overrides.append(f"output.path={json.dumps(args.output)}")
    if getattr(args, "workers", None) is not None:
        overrides.append(f"runner.workers={args.workers}")
    config = load_config(args.config, overrides)
    if args.input:
        extra = Source(name="input", paths=args.input)
        if any(s.name == "input" for s in config.sources):
            raise ConfigError("config error: --input adds a source named 'input', which the config already has")
        config = config.model_copy(update={"sources": [*config.sources, extra]})
    return config


def check_output(path: str, overwrite: bool) -> None:
    """Refuse a non-empty output unless --overwrite; never delete what is not a curate output."""
    from apache_beam.io.filesystems import FileSystems

    base = path.rstrip("/")
    try:
        entries = [m.path for m in FileSystems.match([FileSystems.join(base, "*")])[0].metadata_list]
    except Exception:  # noqa: BLE001 - nothing there
        entries = []
    if base.startswith(("gs://", "s3://")):
        entries += [m.path for m in FileSystems.match([FileSystems.join(base, "**")])[0].metadata_list]
    local = Path(base)
    if not base.startswith(("gs://", "s3://")) and local.exists():
        if not local.is_dir():
            raise ConfigError(f"output error: {path} exists and is not a directory")
        entries = [str(p) for p in local.iterdir()]
    if not entries:
        return
    if not overwrite:
        raise ConfigError(f"output error: {path} is not empty; pass --overwrite to replace it")
    tops = {e[len(base) + 1:].split("/", 1)[0] for e in entries}
    foreign = sorted(t for t in tops if t not in OUTPUT_ENTRIES and ".tmp-" not in t)
    if foreign:
        raise ConfigError(f"output error: refusing to overwrite {path}: it holds {foreign[0]!r},"
                          " which a curate output never does")
    if base.startswith(("gs://", "s3://")):
        FileSystems.delete(entries)
    else:
        import shutil
        for t in tops:
            p = local / t
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def check_stage_setup(config) -> None:
    """Problems a stage would hit at its first document, raised now as one line."""
    st = config.stages
    if st.langid.enabled and st.langid.model_path and not Path(st.langid.model_path).exists():
        raise ConfigError(f"config error: stages.langid.model_path: {st.langid.model_path} does not exist")
    if config.tokenizer.path and not Path(config.tokenizer.path).is_file():
        raise ConfigError(f"config error: tokenizer.path: {config.tokenizer.path} does not exist")
    problems = st.quality.problems()
    if problems:
        raise ConfigError(f"config error: stages.{problems[0]}")
    if st.quality.enabled and st.quality.classifier == "llama_judge" and st.quality.backend == "openai":
        from classifiers.judge import JudgeError
        from classifiers.judge.openai_backend import OpenAIJudge
        try:  # a judge server that does not answer is a setup error, not a failure mid-run
            OpenAIJudge(st.quality).close()
        except JudgeError as e:
            raise ConfigError(f"quality error: {e}") from None


def cmd_run(args) -> int:
    from pipeline.demo import build_demo
    from pipeline.runner import run_local
    from pipeline.sources import discover

    config = resolve_config(args)
    check_stage_setup(config)
    if not config.sources:
        config = config.model_copy(update={"sources": build_demo(config.demo)})
    specs = discover(config.sources)
    check_output(config.output.path, args.overwrite)
    result = run_local(config, specs, config.runner.workers)
    manifest_path = Path(config.output.path) / "manifest.json"
    from pipeline.summary import print_summary
    manifest = json.loads(manifest_path.read_text())
    print_summary(manifest, config.output.path, result.seconds)
    if not manifest["ledger"]["balanced"]:
        print("error: the ledger does not balance (input != kept + rejected + quarantined)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.cmd == "run":
            return cmd_run(args)
        if args.cmd == "inspect":
            return inspect_cmd.cmd_inspect(args)
        if args.cmd == "judge":
            return label_cmd.cmd_judge(args, resolve_config)
        if args.cmd == "distill":
            return label_cmd.cmd_distill(args)
        if args.cmd == "serve-judge":
            return label_cmd.cmd_serve_judge(args)
        if args.cmd == "submit":
            return submit.cmd_submit(args)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
