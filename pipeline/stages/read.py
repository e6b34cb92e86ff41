"""Read stage: input files -> batches of documents, plus quarantine rows (side output)."""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam

from classifiers.decisions import empty_document
from pipeline import progress
from pipeline.config import Config
from pipeline.sources import FileSpec, read_file
from pipeline.stages.base import Counters

QUARANTINE_TAG = "quarantine"
SKIPPED_TAG = "skipped"  # {"skipped:warc/request": n, ...} per file: the manifest's `skipped`


class ReadFile(beam.DoFn):
    def __init__(self, config: Config):
        self.sources = {s.name: s for s in config.sources}
        self.norm = config.stages.normalize
        self.extract = config.stages.extract
        self.raw_bytes = config.output.quarantine_raw_bytes
        self.batch_size = config.runner.batch_size
        self.counters = Counters()

    def process(self, spec: FileSpec) -> Iterable:
        batch: list[dict] = []
        skipped: dict[str, int] = {}
        for kind, item in read_file(spec, self.sources[spec.source], self.norm, self.raw_bytes, extract=self.extract):
            if kind == "skip":  # a WARC record that is not a document: counted, not input
                self.counters.inc(f"skipped/{item}")
                skipped[f"skipped:{item}"] = skipped.get(f"skipped:{item}", 0) + 1
                continue
            self.counters.inc("input/records")
            if kind == "quarantine":
                self.counters.inc(f"quarantine/{item['reason']}")
                yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, item)
                continue
            if item.get("drop") is not None:  # rejected as it was read (WARC: stages.extract)
                self.counters.inc(item["drop"][1])
            elif (drop := empty_document(item["text"], self.norm.min_chars)) is not None:
                item["drop"] = drop
                self.counters.inc(drop.rule)
            batch.append(item)
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
        progress.file_read(spec.size)
        if skipped:
            yield beam.pvalue.TaggedOutput(SKIPPED_TAG, skipped)


class ReadDocuments(beam.PTransform):
    """FileSpecs -> (document batches, quarantine rows, skipped-record counts). One file is read
    by one worker."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config

    def expand(self, files):
        out = (
            files
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFile" >> beam.ParDo(ReadFile(self.config)).with_outputs(QUARANTINE_TAG, SKIPPED_TAG, main="docs")
        )
        return out.docs, out[QUARANTINE_TAG], out[SKIPPED_TAG]
