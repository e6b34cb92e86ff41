"""Bytes per input document that each shuffle of the graph carries, measured on real data.

Runs the graph's own DoFns (read, language ID, heuristics, tokens, dedup keys, route, exact
dedup) outside a runner on a corpus and encodes what each of them hands to a GroupByKey with
the coder Beam uses for untyped Python values (FastPrimitivesCoder), i.e. the bytes a runner
shuffles, before the runner's own framing and compression. The README's Scaling section quotes it.

  python -m bench.shuffle_bytes CONFIG [--docs N]

The config names the sources (as for `curate run`); at most N documents are read.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from apache_beam.coders import coders

from classifiers.decisions import Fate
from pipeline.config import load_config
from pipeline.records import Info
from pipeline.sources import discover, read_file
from pipeline.stages.dedup import DEDUP_TAG, NODES_TAG, STATS_TAG, DedupKeys, ExactDedupPartition
from pipeline.stages.finalize import Finalize
from pipeline.stages.heuristics import HeuristicsStage
from pipeline.stages.langid import LanguageIdStage
from pipeline.stages.mixture import TokenCount, tokenizer_spec
from pipeline.stages.route import RouteDocuments

CODER = coders.FastPrimitivesCoder()


def size(value) -> int:
    return len(CODER.encode(value))


def measure(config, max_docs: int, partitions: int = 64) -> dict:
    st = config.stages
    stages = [
        LanguageIdStage(st.langid, False),
        HeuristicsStage(st.heuristics, False),
        TokenCount(tokenizer_spec(config.tokenizer), False),
        DedupKeys(st.exact_dedup, st.minhash_dedup, False),
    ]
    for s in stages:
        s.setup()
    route = RouteDocuments(config, partitions)
    finalize = Finalize(config, [], ())
    sources = {s.name: s for s in config.sources}
    docs, text_bytes, survivors = 0, 0, 0
    out = defaultdict(int)
    exact_groups: dict[int, list] = defaultdict(list)
    for spec in discover(config.sources):
        batch = []
        for kind, item in read_file(spec, sources[spec.source], st.normalize, 0):
            if kind != "doc" or docs >= max_docs:
                continue
            docs += 1
            text_bytes += item["n_bytes"]
            batch.append(item)
            if len(batch) == config.runner.batch_size:
                survivors += _route(batch, stages, route, finalize, out, exact_groups)
                batch = []
        if batch:
            survivors += _route(batch, stages, route, finalize, out, exact_groups)
    # exact dedup -> MinHash band items (one per band per surviving document)
    exact = ExactDedupPartition(partitions, st.minhash_dedup.enabled, config.runner.records_per_chunk)
    for part, lists in exact_groups.items():
        for o in exact.process((part, lists)):
            tag = getattr(o, "tag", None)
            if tag is None:  # main output: (partition, uint64 (band key, uid) pairs)
                out["GroupBands"] += size(o)
                out["band_items"] += len(o[1]) // 16
            elif tag == NODES_TAG:  # each survivor's node and payload, once
                out["GroupNodes"] += size(o.value)
    return {
        "documents": docs,
        "text_bytes_per_doc": text_bytes / max(1, docs),
        "first_pass_survivors": survivors,
        "bytes_per_input_doc": {k: v / max(1, docs) for k, v in out.items() if k != "band_items"},
        "band_items_per_survivor": out["band_items"] / max(1, survivors),
    }


class _OneShard:
    shards = 1


PLAN = {"mixture": type("Plan", (), {"buckets": defaultdict(_OneShard)})(), "rejected_shards": 1}


def _route(batch, stages, route, finalize, out, exact_groups) -> int:
    for s in stages:
        batch = next(iter(s.process(batch)))
    n = sum(1 for d in batch if d.get("drop") is None)
    # the text shuffle (GroupByShard): the row of each document kept (here: every first-pass
    # survivor, as if dedup and the mixture dropped none), built by the last pass's own code
    rows: dict = defaultdict(list)
    for d in batch:
        fate = Fate(d.get("drop"), 1, d["id"], None, 1)
        finalize.route(d["uid"], Info.of(d), fate, d["text"] if fate.drop is None else None, PLAN, rows)
    for key, lst in rows.items():
        for row in lst:
            out["GroupByShard"] += size((key, [row]))
    for o in route.process(batch):
        tag = getattr(o, "tag", None)
        if tag is None:
            out["GroupByChunk"] += size(o)
        elif tag == DEDUP_TAG:
            out["GroupExact"] += size(o.value)
            exact_groups[o.value[0]].append(o.value[1])
        elif tag == STATS_TAG:
            out["stats (combined, not shuffled per document)"] += size(o.value)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--docs", type=int, default=5000)
    args = ap.parse_args()
    print(json.dumps(measure(load_config(args.config), args.docs), indent=1))


if __name__ == "__main__":
    main()
