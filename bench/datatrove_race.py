"""datatrove's nearest equivalent of our pipeline, for the race (`python -m bench.run`).

Runs inside its own virtualenv (bench/.cache/dt-venv, made by bench/run.py with
`pip install datatrove[processing]==0.10.1 spacy pyarrow zstandard`), never imports our code:

    dt-venv/bin/python bench/datatrove_race.py --input DIR --work DIR [--tasks 2] [--workers 2]
        --lid-model classifiers/models/lid.176.ftz [--languages en,de,...]

Stages, each a LocalPipelineExecutor (datatrove's FineWeb recipe, its MinHash example):
 1. JsonlReader -> LanguageFilter (fastText lid.176, the same model file as ours) ->
    GopherRepetitionFilter -> GopherQualityFilter -> JsonlWriter (the filtered documents) ->
    MinhashDedupSignature (5-grams, 14 bands x 8 rows, like our defaults)      tasks
 2. MinhashDedupBuckets                                                        14 tasks
 3. MinhashDedupCluster                                                        1 task
 4. JsonlReader (the filtered documents) -> MinhashDedupFilter -> ParquetWriter  tasks

Offline: LanguageFilter would download lid.176.bin on first use; the model file is put where
datatrove's asset cache looks for it (with its ".completed" mark), so nothing is fetched. The
Gopher filters and MinHash tokenise English with spaCy's blank English tokenizer, which needs no
model download. Prints one JSON line: seconds per stage and in all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time


def install_lid_model(model_path: str) -> str:
    """Place `model_path` where datatrove's FT176LID looks for its downloaded model."""
    from datatrove.io import strip_protocol
    from datatrove.utils.lid import FT176LID
    from huggingface_hub import cached_assets_path

    folder = cached_assets_path(library_name="datatrove", namespace="lid", subfolder=FT176LID.MODEL_SUBFOLDER)
    local = os.path.join(folder, strip_protocol(FT176LID.MODEL_URL).replace("/", "_"))
    if not os.path.exists(local + ".completed"):
        shutil.copyfile(model_path, local)
        open(local + ".completed", "a").close()
    return local


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True, help="directory of part-*.jsonl.zst")
    ap.add_argument("--glob", default="part-*.jsonl.zst")
    ap.add_argument("--work", required=True, help="scratch directory (output under WORK/output)")
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--lid-model", required=True)
    ap.add_argument("--languages", default="", help="comma-separated ISO 639-1 codes; empty: all")
    ap.add_argument("--language-threshold", type=float, default=0.65)
    args = ap.parse_args(argv)

    install_lid_model(args.lid_model)

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LanguageFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter, ParquetWriter

    w = args.work
    if os.path.exists(w):
        shutil.rmtree(w)
    minhash = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
    languages = [x for x in args.languages.split(",") if x] or None
    stages = [
        (
            "filter+signatures",
            LocalPipelineExecutor(
                pipeline=[
                    JsonlReader(args.input, glob_pattern=args.glob, text_key="text", id_key="id"),
                    LanguageFilter(languages=languages, language_threshold=args.language_threshold),
                    GopherRepetitionFilter(),
                    GopherQualityFilter(),
                    JsonlWriter(f"{w}/filtered", compression=None),
                    MinhashDedupSignature(output_folder=f"{w}/signatures", config=minhash),
                ],
                tasks=args.tasks,
                workers=args.workers,
                logging_dir=f"{w}/logs/1",
            ),
        ),
        (
            "buckets",
            LocalPipelineExecutor(
                pipeline=[
                    MinhashDedupBuckets(input_folder=f"{w}/signatures", output_folder=f"{w}/buckets", config=minhash)
                ],
                tasks=minhash.num_buckets,
                workers=args.workers,
                logging_dir=f"{w}/logs/2",
            ),
        ),
        (
            "cluster",
            LocalPipelineExecutor(
                pipeline=[
                    MinhashDedupCluster(input_folder=f"{w}/buckets", output_folder=f"{w}/remove_ids", config=minhash)
                ],
                tasks=1,
                workers=1,
                logging_dir=f"{w}/logs/3",
            ),
        ),
        (
            "dedup filter+write",
            LocalPipelineExecutor(
                pipeline=[
                    JsonlReader(f"{w}/filtered", text_key="text", id_key="id"),
                    MinhashDedupFilter(input_folder=f"{w}/remove_ids"),
                    ParquetWriter(f"{w}/output"),
                ],
                tasks=args.tasks,
                workers=args.workers,
                logging_dir=f"{w}/logs/4",
            ),
        ),
    ]
    seconds = {}
    t0 = time.monotonic()
    for name, executor in stages:
        t = time.monotonic()
        executor.run()
        seconds[name] = round(time.monotonic() - t, 2)
    print(json.dumps({"seconds": round(time.monotonic() - t0, 2), "stages": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
