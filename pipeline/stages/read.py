"""Read stage: input files -> batches of documents, plus quarantine rows (side output)."""
from __future__ import annotations

from typing import Iterable

import apache_beam as beam

from pipeline.config import Config
from pipeline.sources import FileSpec, read_file
from pipeline.stages.base import Counters

QUARANTINE_TAG = "quarantine"


class ReadFile(beam.DoFn):
    def __init__(self, config: Config):
        self.sources = {s.name: s for s in config.sources}
        self.norm = config.stages.normalize
        self.raw_bytes = config.output.quarantine_raw_bytes
        self.batch_size = config.runner.batch_size
        self.counters = Counters()

    def process(self, spec: FileSpec) -> Iterable:
        batch: list[dict] = []
        for kind, item in read_file(spec, self.sources[spec.source], self.norm, self.raw_bytes):
            self.counters.inc("input/records")
            if kind == "quarantine":
                self.counters.inc(f"quarantine/{item['reason']}")
                yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, item)
                continue
            if len(item["text"]) < self.norm.min_chars:
                item["drop"] = ("normalize", "normalize/empty", None)
                self.counters.inc("normalize/empty")
            batch.append(item)
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


class ReadDocuments(beam.PTransform):
    """FileSpecs -> (document batches, quarantine rows). One file is read by one worker."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config

    def expand(self, files):
        out = (files
               | "SpreadFiles" >> beam.Reshuffle()
               | "ReadFile" >> beam.ParDo(ReadFile(self.config)).with_outputs(QUARANTINE_TAG, main="docs"))
        return out.docs, out[QUARANTINE_TAG]
