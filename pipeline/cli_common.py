"""What every `curate` subcommand that runs on a config shares (run, config show, judge, submit):
the config arguments and the config they resolve to. Setup problems are ConfigErrors (one line)."""

from __future__ import annotations

import argparse
import json

from pipeline.config import Config, ConfigError, Source, load_config


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML run config (default: configs/default.yaml)")
    p.add_argument(
        "--input",
        action="extend",
        nargs="+",
        default=[],
        metavar="PATH_OR_GLOB",
        help="add a text source (several paths, a shell-expanded glob, repeatable); local paths"
        " or any Beam filesystem URI; code found in it goes to the code bucket",
    )
    p.add_argument(
        "--code",
        action="extend",
        nargs="+",
        default=[],
        metavar="PATH_OR_GLOB",
        help="add a code source (kind code; several paths, repeatable); records' `path` names the programming language",
    )
    p.add_argument("--output", help="output directory (overrides output.path)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="override a config key, typed by the schema (repeatable)",
    )


def resolve_config(args) -> Config:
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
