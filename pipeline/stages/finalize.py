"""The last pass: per chunk of an input file, merge every decision made about its documents
(first-pass info, dedup events, the mixture plan), re-read the chunk's text once, and emit the
rows of every output keyed by the shard they go to. The ledger (kept, rejected per rule) is
counted here, where each document's fate is final."""
from __future__ import annotations

import functools
from collections import Counter, defaultdict
from typing import Iterable

import apache_beam as beam

from classifiers.mixture import sampling_key
from classifiers.text import stable_hash64
from pipeline.config import Config
from pipeline.schema import SIGNAL_PREFIX
from pipeline.sources import FileSpec, make_uid, read_file, split_uid
from pipeline.stages.base import Counters, unpack
from pipeline.stages.line_dedup import EMPTIED, LINES_EVENT, ApplyLineDedup

LEDGER_TAG = "ledger"
MIXTURE, ANNOTATED, REJECTED, QUARANTINE = "mixture", "annotated", "rejected", "quarantine"



def _needs_text(fates: dict, all_text: bool, rec: int) -> bool:
    """WARC: a page whose text no output row takes is not extracted again in the last pass
    (fate None: quarantined in the first pass, read as then)."""
    fate = fates.get(rec)
    return fate is None or all_text or fate["drop"] is None

class InputChanged(RuntimeError):
    pass


def shard_of(uid: int, n: int) -> int:
    return stable_hash64(uid.to_bytes(8, "little")) % n


class Finalize(beam.DoFn):
    def __init__(self, config: Config, specs: list[FileSpec], signal_names: tuple[str, ...], tokenizer=None):
        self.config = config
        self.specs = {s.file_idx: s for s in specs}
        self.sources = {s.name: s for s in config.sources}
        self.annotate = config.mode == "annotate"
        self.signal_names = signal_names
        self.counters = Counters()
        # tokenizer: the run's TokenizerSpec, for the tokens of a document that loses lines
        self.lines = ApplyLineDedup(config, tokenizer) if config.stages.line_dedup.enabled else None

    def process(self, kv, plan) -> Iterable:
        (file_idx, chunk), parts = kv
        infos: dict[int, dict] = {}
        events: dict[int, list] = defaultdict(list)
        for tag, blob in parts:
            if tag == "info":
                infos.update(unpack(blob))
            else:
                for ev in unpack(blob):
                    events[ev[0]].append(ev[1:])
        mix = self.config.stages.mixture
        buckets = plan["mixture"].buckets
        ledger: Counter = Counter()
        fates: dict[int, dict] = {}
        for rec in sorted(infos):
            info = infos[rec]
            drop, size, cluster, lines = info["drop"], 1, info["id"], None
            for ev in events.get(rec, ()):
                if ev[0] == "drop":
                    if drop is None:
                        drop = ev[1:]
                    cluster = ev[3]
                elif ev[0] == "cluster":
                    size = max(size, ev[1])
                elif ev[0] == LINES_EVENT:  # (indices, emptied); never emptied for a dedup drop
                    lines = ev[1]
                    if ev[2] and drop is None:
                        drop = EMPTIED
            repeats = 0
            if drop is None:
                bp = buckets.get(info["bucket"])
                repeats = bp.repeats(sampling_key(info["id"], mix.seed)) if bp is not None else 0
                if repeats == 0:
                    rule = "mixture/no_share" if bp is None or not bp.target_share else "mixture/downsampled"
                    drop = ("mixture", rule, None)
                    self.counters.inc(rule)
            if drop is not None:  # annotate mode writes it anyway, with the rule that would drop it
                ledger[f"{'would_reject' if self.annotate else 'rejected'}:{drop[1]}"] += 1
            if drop is None or self.annotate:
                ledger["kept"] += 1
                self.counters.inc("output/kept")
            fates[rec] = {"drop": drop, "size": size, "cluster": cluster, "repeats": repeats, "lines": lines}
            if info.get("language_model"):  # manifest: stages.langid.models
                ledger[f"language_model:{info['language_model']}"] += 1
        yield beam.pvalue.TaggedOutput(LEDGER_TAG, ledger)

        need_text = self.annotate or ledger["kept"] > 0 or self.config.output.rejected_text
        rows: dict[tuple, list] = defaultdict(list)
        if need_text:
            spec = self.specs[file_idx]
            per = self.config.runner.records_per_chunk
            seen = 0
            all_text = self.annotate or self.config.output.rejected_text

            need = functools.partial(_needs_text, fates, all_text)
            for kind, doc in read_file(spec, self.sources[spec.source], self.config.stages.normalize,
                                       0, chunk * per, (chunk + 1) * per, self.config.stages.extract, need):
                if kind != "doc":
                    continue
                rec = split_uid(doc["uid"])[1]
                info = infos.get(rec)
                if info is None or info["id"] != doc["id"]:
                    raise InputChanged(f"{spec.path}: record {rec} differs from the first pass's read;"
                                       " the input changed during the run")
                seen += 1
                self.route(doc["uid"], info, fates[rec], doc["text"], plan, rows)
            if seen != len(infos):
                raise InputChanged(f"{spec.path}: {len(infos) - seen} records of chunk {chunk} missing on re-read;"
                                   " the input changed during the run")
        else:
            for rec, info in infos.items():
                self.route(make_uid(file_idx, rec), info, fates[rec], None, plan, rows)
        for key, lst in rows.items():
            yield (key, lst)

    def route(self, uid: int, info: dict, fate: dict, text: str | None, plan: dict, rows: dict) -> None:
        drop = fate["drop"]
        n_tokens, line_fraction = info["n_tokens"], None
        if self.lines is not None:  # removes the frequent lines (filter) or reports their share (annotate)
            text, n_tokens, line_fraction = self.lines.apply(text, info, fate.get("lines"), drop, self.annotate)
        if self.annotate:
            n = plan["annotated_shards"]
            row = {
                "_uid": uid, "id": info["id"], "text": text, "source": info["source"], "bucket": info["bucket"],
                "language": info["language"], "language_score": info["language_score"],
                "quality_score": info["quality_score"], "n_tokens": n_tokens,
                "dup_cluster_size": fate["size"], "repeats": fate["repeats"],
                "drop_stage": drop[0] if drop else None, "drop_rule": drop[1] if drop else None,
                "dup_cluster": fate["cluster"], "quality_flag": info["quality_flag"],
                "language_model": info.get("language_model"),
                "line_dedup_fraction": line_fraction,
            }
            signals = info.get("signals") or {}
            for name in self.signal_names:
                row[SIGNAL_PREFIX + name] = signals.get(name)
            rows[(ANNOTATED, "", shard_of(uid, n), n)].append(row)
        elif drop is None:
            n = plan["mixture"].buckets[info["bucket"]].shards
            rows[(MIXTURE, info["bucket"], shard_of(uid, n), n)].append({
                "_uid": uid, "id": info["id"], "text": text, "source": info["source"], "bucket": info["bucket"],
                "language": info["language"], "language_score": info["language_score"],
                "quality_score": info["quality_score"], "n_tokens": n_tokens,
                "dup_cluster_size": fate["size"], "repeats": fate["repeats"],
            })
        else:
            n = plan["rejected_shards"]
            rows[(REJECTED, "", shard_of(uid, n), n)].append({
                "_uid": uid, "id": info["id"], "source": info["source"], "stage": drop[0], "rule": drop[1],
                "detail": drop[2], "text": text if self.config.output.rejected_text else None,
            })
