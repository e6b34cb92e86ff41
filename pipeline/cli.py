"""`curate`: the command line.

  curate run [CONFIG] [--input PATH_OR_GLOB ...] [--code PATH_OR_GLOB ...] [--output DIR]
             [--set dotted.key=value ...]
             [--workers N] [--overwrite]
  curate inspect OUT [--json] [--plot FILE.png] [--verify]
  curate judge [CONFIG] --input ... --sample N --output LABELS/ [--set ...]
  curate distill --labels LABELS/ --output MODEL [CONFIG] [--set ...]
  curate submit [CONFIG] --project P --region R --temp-location gs://B/tmp [--output gs://B/out]
                [--gpu-type T --gpu-count N] [--image IMAGE] [--max-workers N] [--dry-run DIR]

Setup problems (bad config, missing input, an output directory in the way) are one line on
stderr and exit code 2, before any work starts. Ctrl-C (SIGINT) or SIGTERM during `run` stops
every worker process, deletes the run's staging directory and leaves the output as it was: one
line on stderr, exit code 130 (143 for SIGTERM). The output directory's rules: pipeline/outdir.py.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys


def _interrupted_at_start(signum, _frame):
    print(f"interrupted ({signal.Signals(signum).name}): nothing was written", file=sys.stderr, flush=True)
    os._exit(128 + signum)


if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "curate":
    # the console script: Ctrl-C while the imports below load (seconds) is one line, not a traceback
    for _s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_s, _interrupted_at_start)

from pathlib import Path  # noqa: E402 - after the handler above, on purpose

from pipeline import inspect_cmd, label_cmd, outdir, submit  # noqa: E402
from pipeline.config import ConfigError, Source, load_config  # noqa: E402
from pipeline.interrupt import Interrupts  # noqa: E402
from pipeline.outdir import check_output  # noqa: E402,F401 - submit and bench clear outputs in place with it


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML run config (default: configs/default.yaml)")
    p.add_argument("--input", action="extend", nargs="+", default=[], metavar="PATH_OR_GLOB",
                   help="add a text source (several paths, a shell-expanded glob, repeatable); local paths"
                        " or any Beam filesystem URI; code found in it goes to the code bucket")
    p.add_argument("--code", action="extend", nargs="+", default=[], metavar="PATH_OR_GLOB",
                   help="add a code source (kind code; several paths, repeatable); records' `path` names"
                        " the programming language")
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
    if args.output is not None:
        if not args.output.strip():
            raise ConfigError("output error: --output is empty; name a directory")
        overrides.append(f"output.path={json.dumps(args.output)}")
    if getattr(args, "workers", None) is not None:
        overrides.append(f"runner.workers={args.workers}")
    config = load_config(args.config, overrides)
    if args.input:
        extra = Source(name="input", paths=args.input, path_field="path")
        if any(s.name == "input" for s in config.sources):
            raise ConfigError("config error: --input adds a source named 'input', which the config already has")
        config = config.model_copy(update={"sources": [*config.sources, extra]})
    if getattr(args, "code", None):
        extra = Source(name="code", paths=args.code, kind="code", path_field="path")
        if any(s.name == "code" for s in config.sources):
            raise ConfigError("config error: --code adds a source named 'code', which the config already has")
        config = config.model_copy(update={"sources": [*config.sources, extra]})
    return config


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


def cmd_run(args, interrupts: Interrupts | None = None) -> int:
    from pipeline.demo import build_demo
    from pipeline.runner import run_local, stop_workers
    from pipeline.sources import discover

    config = resolve_config(args)
    check_stage_setup(config)
    outdir.check_bucket_names(config)
    path = config.output.path
    outdir.precheck(path, args.overwrite, config.sources)
    if not config.sources:
        config = config.model_copy(update={"sources": build_demo(config.demo)})
    from pipeline.stages.mixture import unfed_targets
    if unfed := unfed_targets(config):
        print(f"warning: mixture targets no source can feed: {'; '.join(unfed)}", file=sys.stderr)
    specs = discover(config.sources)
    staged = None
    if interrupts is not None:
        def state() -> str:
            if staged is None:
                return f"{path} is incomplete (no manifest)" if outdir.is_remote(path) else f"{path} left as it was"
            return f"{path} holds the new output (complete)" if staged.committed else f"{path} left as it was"
        interrupts.state = state
        interrupts.cleanups.append(lambda: staged is not None and staged.close())
    try:
        if outdir.is_remote(path):
            check_output(path, args.overwrite)
        else:
            staged = outdir.StagedOutput.prepare(path, config.sources, specs, args.overwrite)
            staged.acquire()  # the lock and the staging directory; close() below undoes them
        result = run_local(config, specs, config.runner.workers, staged.staging if staged else None)
        if staged is not None:
            staged.commit()
    except BaseException:
        stop_workers()
        raise
    finally:
        if staged is not None:
            staged.close()
    for note in staged.notes if staged else ():
        print(note, file=sys.stderr)
    manifest_path = Path(path) / "manifest.json"
    from pipeline.summary import print_summary
    manifest = json.loads(manifest_path.read_text())
    print_summary(manifest, path, result.seconds)
    if not manifest["ledger"]["balanced"]:
        print("error: the ledger does not balance (input != kept + rejected + quarantined)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for s in (signal.SIGINT, signal.SIGTERM):  # from here on each command handles them its way
        if signal.getsignal(s) is _interrupted_at_start:
            signal.signal(s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL)
    interrupts = Interrupts()
    try:
        if args.cmd == "run":
            with interrupts:
                return cmd_run(args, interrupts)
        if args.cmd == "inspect":
            return inspect_cmd.cmd_inspect(args)
        if args.cmd == "judge":
            return label_cmd.cmd_judge(args, resolve_config)
        if args.cmd == "distill":
            return label_cmd.cmd_distill(args)
        if args.cmd == "example-judge":
            return label_cmd.cmd_example_judge(args)
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
