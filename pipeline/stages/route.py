"""End of the first pass: each document batch becomes small keyed records (pipeline/records.py),
and the text is let go. Out of here flow
- main: ((file_idx, chunk), ("info", packed [(record, Info), ...])) — what the last pass needs
  per document;
- url: (partition, packed [UrlItem]) — documents with a URL (when URL dedup is on);
- dedup: (partition, packed [ExactItem]) — exact dedup's items, or MinHash band items with exact
  off (and then NodeRecords: dedup.NODES_TAG);
- stats: [StatDelta, ...] — the mixture's statistics.
Packed: `records.pack_records`, one bytes value per batch and key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import apache_beam as beam

from classifiers.duplicates import node_of, timestamp_key
from classifiers.mixture import sampling_key
from classifiers.text import normalize_url, stable_hash64
from pipeline.config import Config
from pipeline.records import ExactItem, Info, Payload, UrlItem, pack_records, split_uid, stat_delta
from pipeline.stages.base import Doc
from pipeline.stages.dedup import DEDUP_TAG, KEY_SHIFT, STATS_TAG, band_items
from pipeline.stages.mixture import READ

URL_TAG = "url"


def doc_payload(d: Doc, seed: int) -> Payload:
    """A surviving document's entry in the mixture's accounting."""
    return Payload(d["bucket"], sampling_key(d["id"], seed), d["n_tokens"], d["n_bytes"], 1)


class RouteDocuments(beam.DoFn):
    def __init__(self, config: Config, partitions: int):
        st = config.stages
        self.url, self.exact, self.minhash = st.url_dedup.enabled, st.exact_dedup.enabled, st.minhash_dedup.enabled
        self.survivor = st.minhash_dedup.survivor
        self.seed = st.mixture.seed
        self.partitions = partitions
        self.chunk = config.runner.records_per_chunk

    def payload(self, d: Doc) -> Payload:
        return doc_payload(d, self.seed)

    def process(self, batch: list[Doc]) -> Iterable:
        infos: dict[tuple, list] = defaultdict(list)
        exact: dict[int, list] = defaultdict(list)
        urls: dict[int, list] = defaultdict(list)
        band_nodes, deltas = [], []
        for d in batch:
            f, rec = split_uid(d["uid"])
            infos[(f, rec // self.chunk)].append((rec, Info.of(d)))
            deltas.append((READ, 0, 1, 0, d["n_bytes"]))
            if d.get("drop") is not None:
                continue
            p = self.payload(d)
            deltas.append(stat_delta(p, 1))
            node = node_of(d["id"], d["uid"], d.get("quality_score"), self.survivor)
            bands = d["band_keys"].tobytes() if d.get("band_keys") is not None else None
            if self.url and d.get("url"):
                key = stable_hash64(normalize_url(d["url"])) >> KEY_SHIFT
                urls[key % self.partitions].append(
                    UrlItem(key, timestamp_key(d.get("timestamp")), node, p, d.get("exact_key"), bands)
                )
            elif self.exact:
                exact[d["exact_key"] % self.partitions].append(ExactItem(d["exact_key"], node, p, bands))
            elif self.minhash:
                band_nodes.append((node, p, bands))
        for key, lst in infos.items():
            yield (key, ("info", pack_records(lst)))
        for part, lst in urls.items():
            yield beam.pvalue.TaggedOutput(URL_TAG, (part, pack_records(lst)))
        for part, lst in exact.items():
            yield beam.pvalue.TaggedOutput(DEDUP_TAG, (part, pack_records(lst)))
        yield from band_items(band_nodes, self.partitions, main=False)
        yield beam.pvalue.TaggedOutput(STATS_TAG, deltas)
