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

import argparse
import heapq
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from classifiers.text import unit_interval
from pipeline.config import ConfigError, Config

LABELS_FILE = "labels-{stamp}.parquet"


def add_parsers(sub, add_config_args) -> None:
    j = sub.add_parser("judge", help="judge a stratified sample with the Llama judge, write labels")
    add_config_args(j)
    j.add_argument("--sample", type=int, required=True, help="documents to sample (over all buckets)")
    j.add_argument("--seed", type=int, default=0, help="sampling seed")
    d = sub.add_parser("distill", help="train the fastText quality classifier on judge labels")
    d.add_argument("config", nargs="?", help="YAML run config (thresholds, distill.* settings)")
    d.add_argument("--labels", required=True, help="labels directory or file written by `curate judge`")
    d.add_argument("--output", required=True, help="where to write the fastText model (.bin)")
    d.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")


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
    from pipeline.sources import read_file

    sources = {s.name: s for s in config.sources}
    size = config.runner.batch_size
    for spec in specs:
        batch = []
        for kind, doc in read_file(spec, sources[spec.source], config.stages.normalize, 0):
            if kind == "doc" and len(doc["text"]) >= config.stages.normalize.min_chars:
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


def cmd_judge(args, resolve_config) -> int:
    from classifiers.judge import get_rubric, label_records, labelled_keys, make_scorer, write_labels
    from pipeline.sources import discover

    if args.sample < 1:
        raise ConfigError("judge: --sample must be at least 1")
    config = resolve_config(args)
    q = config.stages.quality.model_copy(update={"enabled": True, "classifier": "llama_judge"})
    problems = q.problems()
    if problems:
        raise ConfigError(f"config error: stages.{problems[0]}")
    if not config.sources:
        raise ConfigError("judge: no input: pass --input or configure sources")
    out = Path(config.output.path)
    specs = discover(config.sources)
    t0 = time.monotonic()
    records = sample(config, specs, args.sample, args.seed)
    done = labelled_keys(out) if out.exists() else set()
    rubric_id = get_rubric(q.rubric).id
    scorer = make_scorer(q)
    try:
        rows = list(label_records(records, scorer, rubric=rubric_id, model=q.judge_model_name,
                                  batch_size=q.batch_size, done=done))
    finally:
        scorer.close()
    path = None
    if rows:
        path = write_labels(rows, out / LABELS_FILE.format(stamp=time.strftime("%Y%m%dT%H%M%S")))
    t = Table(title=f"curate judge — {len(records)} sampled, {len(rows)} judged, "
                    f"{len(records) - len(rows)} already labelled", title_justify="left")
    for col in ("bucket", "judged", "mean score", "flagged"):
        t.add_column(col, justify="left" if col == "bucket" else "right")
    per: dict[str, list] = defaultdict(list)
    for r in rows:
        per[r["bucket"]].append(r)
    for b in sorted(per):
        scores = [r["score"] for r in per[b] if r["score"] is not None]
        t.add_row(b, str(len(per[b])), f"{sum(scores) / len(scores):.2f}" if scores else "-",
                  str(sum(1 for r in per[b] if r["flag"])))
    Console(width=120).print(t)
    print(f"labels: {path or '(nothing new)'} in {time.monotonic() - t0:.1f} s")
    return 0


def cmd_distill(args) -> int:
    from classifiers.quality_fasttext import train
    from pipeline.config import load_config

    config = load_config(args.config, args.overrides)
    if not Path(args.labels).exists():
        raise ConfigError(f"distill: labels not found: {args.labels}")
    try:
        report = train(args.labels, args.output, threshold=config.stages.quality.threshold,
                       params=config.distill)
    except ValueError as e:
        raise ConfigError(f"distill: {e}") from None
    t = Table(title=f"curate distill — {report.n_train} train / {report.n_holdout} held-out labels",
              title_justify="left")
    for col in ("bucket", "n", "accuracy at threshold", "spearman", "judge keeps", "classifier keeps"):
        t.add_column(col, justify="left" if col == "bucket" else "right")

    def row(name, a):
        f = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
        t.add_row(name, str(a.n), f(a.accuracy_at_threshold), f(a.spearman), f(a.judge_keep_rate),
                  f(a.classifier_keep_rate))
    row("all", report.holdout)
    for b, a in sorted(report.per_bucket.items()):
        row(b, a)
    Console(width=120).print(t)
    print(f"model: {report.model_path} (report beside it: {report.model_path}.report.json)")
    print(f"use it: --set stages.quality.enabled=true --set stages.quality.classifier=fasttext"
          f" --set stages.quality.model_path={report.model_path}")
    return 0
