"""`curate`: the command line.

  curate run [CONFIG] [--input PATH_OR_GLOB ...] [--code PATH_OR_GLOB ...] [--output DIR]
             [--set dotted.key=value ...]
             [--workers N] [--overwrite]
  curate inspect OUT [--json] [--plot FILE.png] [--verify]
  curate config show [CONFIG] [--set dotted.key=value ...]
  curate --version
  curate report OUT [-o FILE.html]
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


def _workers_asked(argv: list[str]) -> int:
    """N of a `run ... --workers N` command line (0 if none): read before the imports below."""
    if not argv or argv[0] != "run":
        return 0
    for i, a in enumerate(argv):
        if a == "--workers" and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith("--workers="):
            value = a.partition("=")[2]
        else:
            continue
        if value.isdigit():
            return int(value)
    return 0


if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "curate":
    # the console script: Ctrl-C while the imports below load (seconds) is one line, not a traceback
    for _s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_s, _interrupted_at_start)
    from pipeline.sdk_worker import import_beam_without_pandas, limit_malloc_arenas, relax_gc, start_zygote

    relax_gc()  # before the imports below: they allocate as much as a small run
    limit_malloc_arenas()  # before the imports below: pyarrow reads its allocator's name at import
    if _workers_asked(sys.argv[1:]) > 1:  # the workers' zygote loads their libraries alongside ours
        start_zygote()
    import_beam_without_pandas()  # the imports below import Beam

from pathlib import Path  # noqa: E402 - after the handler above, on purpose

from pipeline import inspect_cmd, label_cmd, outdir, submit  # noqa: E402
from pipeline import report as report_cmd  # noqa: E402
from pipeline.cli_common import add_config_args, resolve_config  # noqa: E402
from pipeline.config import ConfigError  # noqa: E402
from pipeline.interrupt import Interrupts  # noqa: E402
from pipeline.outdir import check_output  # noqa: E402 - bench clears outputs in place with it too

RUN_DESCRIPTION = """\
Run the pipeline on this machine: read the sources, normalize, identify languages, filter,
deduplicate, (optionally) score quality, sample the mixture and write it as sharded Parquet with
manifest.json, rejected/ and quarantine/ under the output directory. While it runs, progress is
shown (a live display on a terminal, a plain line every 10 s otherwise); the full log, Beam's
included, goes to OUT/logs/run.log. With no source configured and no --input, it runs on a demo
corpus built from text every Python installation has."""

RUN_EXAMPLES = """\
examples:
  curate run                                        # the demo corpus, configs/default.yaml -> out/demo
  curate run --input 'data/*.jsonl.zst' --output out/web
  curate run configs/default.yaml --input web/*.jsonl.gz --code repos/*.jsonl --workers 4
  curate run --set stages.minhash_dedup.threshold=0.8 --set mode=annotate --output out/annotated
  curate run --output out/web --overwrite           # replace a previous run's output
  curate config show --set runner.workers=4         # the configuration a run would use

setup problems are one line on stderr and exit code 2; Ctrl-C leaves the output as it was (130)."""


def version() -> str:
    from importlib import metadata

    try:
        mine = metadata.version("curate")
    except metadata.PackageNotFoundError:  # a source checkout that was not installed
        mine = "unknown (not installed)"
    try:
        beam_version = metadata.version("apache-beam")
    except metadata.PackageNotFoundError:
        beam_version = "missing"
    return f"curate {mine} (apache-beam {beam_version}, Python {sys.version.split()[0]})"


class _Version(argparse.Action):
    """--version: resolved only when asked for (package metadata reads are not free)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version())
        parser.exit()


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="curate", description="LLM pretraining data curation on Apache Beam")
    ap.add_argument("--version", action=_Version, help="print curate's version (and Beam's, Python's) and exit")
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser(
        "run",
        help="run the pipeline on this machine",
        description=RUN_DESCRIPTION,
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(run)
    run.add_argument("--workers", type=int, help="worker processes (default: runner.workers)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    inspect_cmd.add_parser(sub)
    cfg = sub.add_parser("config", help="show the effective configuration")
    cfg_sub = cfg.add_subparsers(dest="config_cmd", required=True)
    show = cfg_sub.add_parser(
        "show",
        help="print the effective configuration: every key, its value, one line of help",
        description="Print the configuration a run with these arguments would use, as YAML"
        " that loads back: every key with its value (defaults included), one line"
        " of help, and the default where the value differs.",
    )
    add_config_args(show)
    report_cmd.add_parser(sub)
    label_cmd.add_parsers(sub)
    submit.add_parser(sub)
    return ap


def check_stage_setup(config) -> None:
    """Problems a stage would hit at its first document, raised now as one line."""
    st = config.stages
    if st.langid.enabled and st.langid.model_path and not Path(st.langid.model_path).exists():
        raise ConfigError(f"config error: stages.langid.model_path: {st.langid.model_path} does not exist")
    if config.tokenizer.path:  # exists and is a tokenizer.json (resolved once per process, cached)
        from pipeline.stages.mixture import tokenizer_spec

        tokenizer_spec(config.tokenizer)
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
    """Python's logging (Beam's included) goes to OUT/logs/run.log, the terminal shows our lines."""
    from pipeline.progress import RunLog, command_started

    started = command_started()
    log = RunLog.start()
    try:
        return _run(args, interrupts, log, started)
    finally:
        log.close()
        from pipeline.sdk_worker import stop_zygote

        stop_zygote()  # a run that stopped before run_local, which stops it, may have started one


def _run(args, interrupts: Interrupts | None, log, started: float) -> int:
    from pipeline.demo import build_demo
    from pipeline.runner import run_local, stop_workers
    from pipeline.sdk_worker import start_zygote
    from pipeline.sources import discover

    config = resolve_config(args)
    if config.runner.workers > 1:
        start_zygote()  # the workers' libraries load while this process checks and reads the inputs
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
            import tempfile

            fd, local_log = tempfile.mkstemp(prefix="curate-run-", suffix=".log")  # no staging directory
            os.close(fd)
            log.open(local_log)
            print(f"the run's log: {local_log}", file=sys.stderr)
        else:
            staged = outdir.StagedOutput.prepare(path, config.sources, specs, args.overwrite)
            staged.acquire()  # the lock and the staging directory; close() below undoes them
            log.open(os.path.join(staged.staging, outdir.RUN_LOG))
        result = run_local(config, specs, config.runner.workers, staged.staging if staged else None, started)
        if staged is not None:
            staged.commit()
    except BaseException as e:
        stop_workers()
        if isinstance(e, Exception) and not isinstance(e, ConfigError) and (kept := log.keep()):
            print(f"the run's log: {kept}", file=sys.stderr)
        raise
    finally:
        if staged is not None:
            staged.close()
    for note in staged.notes if staged else ():
        print(note, file=sys.stderr)
    manifest_path = Path(path) / "manifest.json"
    from pipeline.summary import print_summary

    manifest = json.loads(manifest_path.read_text())
    import time

    print_summary(
        manifest, path, time.time() - started, result.first_read - started if result.first_read is not None else None
    )
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
        if args.cmd == "config":
            from pipeline.config import show

            sys.stdout.write(show(resolve_config(args)))
            return 0
        if args.cmd == "report":
            return report_cmd.cmd_report(args)
        if args.cmd == "judge":
            return label_cmd.cmd_judge(args)
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
