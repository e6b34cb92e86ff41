"""`curate submit`: the same pipeline graph as `curate run`, on Google Cloud Dataflow, or on a
Flink or Spark cluster through Beam's portable runners.

  curate submit [CONFIG] --project P --region R --temp-location gs://B/tmp [--output gs://B/out]
                [--gpu-type nvidia-l4 [--gpu-count 1]] [--image IMAGE] [--max-workers N]
                [--dry-run DIR] [--input ...] [--set key=value ...]
  curate submit [CONFIG] --runner flink --flink-master HOST:8081 | --job-endpoint HOST:8099 ...
  curate submit [CONFIG] --runner spark --spark-master-url spark://HOST:7077 | --job-endpoint ...

Inputs. The graph is built from the list of input files (`pipeline.sources.FileSpec`): a file's
index is part of every record's uid and the last pass re-reads files by index, so the list is
frozen into the job. A real submission lists gs:// patterns on this machine (it holds the
credentials that submit the job anyway), exactly like `curate run` lists local ones, and setup
problems (a pattern matching nothing, an unknown format) are one line here, not a failed job.
A dry run touches no remote filesystem: each remote pattern becomes one *unlisted* FileSpec
(the pattern itself, size 0). The graph has the same shape either way (the files are data of the
`Files` step and of `Finalize`, not steps), so the written job shows every step, option and
environment; the only number that depends on sizes, the dedup shuffle's partition count, is
taken from `runner.shuffle_partitions` when set (else the minimum). A dry-run job is for
inspection: it is never launchable (its staging is local).

GPUs. Only the Llama judge on vLLM (`stages.quality`, classifier llama_judge, backend vllm)
needs a GPU. `--gpu-type` puts one on every worker (the `worker_accelerator` service option with
`install-nvidia-driver`) and runs ONE SDK process with ONE harness thread per VM
(`no_use_multiple_sdk_containers`, `number_of_worker_harness_threads=1`): Dataflow otherwise
starts a Python process per vCPU, each of which would load its own engine into the same GPU.
The judge is ~100x slower per document than every CPU stage together, so the single thread
costs nothing it is not already waiting for. To keep the judge off documents that dedup would
remove, split the run in two jobs (docs/scaling.md): `--defer-judge` (CPU workers: everything
but the judge and the mixture sampling) then `--judge-input OUT1` (GPU workers: judge + mixture
on the first job's output).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.cli_common import add_config_args, resolve_config
from pipeline.config import Config, ConfigError, Source
from pipeline.outdir import check_output
from pipeline.sources import MAX_FILES, FileSpec, infer_format

RUNNERS = ("dataflow", "flink", "spark")
BEAM_RUNNER_NAMES = {"dataflow": "DataflowRunner", "flink": "FlinkRunner", "spark": "SparkRunner"}
CPU_MACHINE_TYPE = "n2-highmem-8"  # 8 vCPUs, 64 GB: 8 GB per SDK process (a shard is built in memory)

# Dataflow accelerator types -> machine family that carries them, and the machine type with
# that many GPUs (Compute Engine GPU machine families: G2 = L4, A2 = A100, A3 = H100, N1 = older).
GPU_MACHINES: dict[str, tuple[str, dict[int, str]]] = {
    "nvidia-l4": ("g2-", {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"}),
    "nvidia-tesla-a100": ("a2-highgpu-", {n: f"a2-highgpu-{n}g" for n in (1, 2, 4, 8)}),
    "nvidia-a100-80gb": ("a2-ultragpu-", {n: f"a2-ultragpu-{n}g" for n in (1, 2, 4, 8)}),
    "nvidia-h100-80gb": ("a3-highgpu-", {n: f"a3-highgpu-{n}g" for n in (1, 2, 4, 8)}),
    "nvidia-tesla-t4": ("n1-", {n: "n1-standard-8" for n in (1, 2, 4)}),
    "nvidia-tesla-v100": ("n1-", {n: "n1-standard-8" for n in (1, 2, 4, 8)}),
}
# What a dry run points Dataflow's client at: nothing listens there and nothing is sent, because
# --template_location makes the client write the job description instead of creating the job.
DRY_RUN_ENDPOINT = "http://localhost:1"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
# How long a real portable submission waits for its job server (and, with the embedded job
# service, its EXTERNAL worker pool) to answer before saying so; Beam alone would wait 300 s for a
# job server, and fail the job with a traceback per attempt on a worker pool that is not there.
ENDPOINT_WAIT_S = 10.0
EMBEDDED_JOB_ENDPOINT = "embed"  # Beam's in-process job service: the job runs in this process


class SubmitParams(BaseModel):
    """Where and on what the job runs; the pipeline itself is the run config. Not a stage
    (no `enabled`): the command line fills it, these defaults are the product's."""

    model_config = ConfigDict(extra="forbid")

    runner: Literal["dataflow", "flink", "spark"] = "dataflow"
    image: str | None = None  # worker container; None: dataflow REGION-docker.pkg.dev/PROJECT/curate/worker:VERSION
    max_workers: int = Field(100, ge=1)
    # --- dataflow
    project: str | None = None
    region: str | None = None
    temp_location: str | None = None
    staging_location: str | None = None  # None: TEMP_LOCATION/staging
    job_name: str | None = None  # None: curate-<config sha256[:8]>-<UTC time>
    machine_type: str | None = None  # None: CPU_MACHINE_TYPE, or the GPU's machine from GPU_MACHINES
    num_workers: int | None = Field(None, ge=1)  # initial workers; None: Dataflow decides
    disk_size_gb: int = Field(100, ge=30)  # the GPU image (CUDA, vLLM) plus judge weights take ~30 GB
    gpu_type: str | None = None
    gpu_count: int = Field(1, ge=1)
    service_account: str | None = None
    subnetwork: str | None = None
    public_ips: bool = True
    # --- flink / spark
    flink_master: str | None = None
    spark_master_url: str | None = None
    job_endpoint: str | None = None  # a running Beam job server: PortableRunner
    environment_type: Literal["DOCKER", "PROCESS", "EXTERNAL"] = "DOCKER"
    environment_config: str | None = None  # None with DOCKER: the image
    # --- anything else, passed to Beam as is (e.g. --worker_zone=us-central1-a)
    beam_options: list[str] = Field(default_factory=list)


# ----------------------------------------------------------------------------- small helpers


def is_remote(path: str) -> bool:
    """A path with a scheme Beam's filesystems serve (gs://, s3://, hdfs://, ...), not file://."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.get_scheme(path) not in (None, "file")


def default_image(params: SubmitParams) -> str:
    version = _curate_version()
    if params.runner == "dataflow":
        return f"{params.region}-docker.pkg.dev/{params.project}/curate/worker:{version}"
    return f"curate-worker:{version}"


def _curate_version() -> str:
    try:
        return metadata.version("curate")
    except metadata.PackageNotFoundError:
        return "dev"


def default_job_name(config: Config) -> str:
    return f"curate-{config.digest()[:8]}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def machine_type(params: SubmitParams) -> str:
    if params.machine_type:
        return params.machine_type
    if params.gpu_type:
        return GPU_MACHINES[params.gpu_type][1][params.gpu_count]
    return CPU_MACHINE_TYPE


def judge_needs_gpu(config: Config) -> bool:
    q = config.stages.quality
    return q.enabled and q.classifier == "llama_judge" and q.backend == "vllm"


def accelerator_option(params: SubmitParams) -> str:
    return f"worker_accelerator=type:{params.gpu_type};count:{params.gpu_count};install-nvidia-driver"


# ----------------------------------------------------------------------------- checks


def check_gcp_extra() -> None:
    try:
        import google.cloud.storage  # noqa: F401  (gs:// through Beam's GCS filesystem)
        from apache_beam.runners.dataflow.internal import apiclient  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            f"submit error: the Dataflow runner needs Beam's gcp extra ({e.name or e} is missing):"
            " pip install -e '.[gcp]'"
        ) from None


def check_params(params: SubmitParams, dry_run: bool) -> None:
    if params.runner == "dataflow":
        for flag, value in (("--project", params.project), ("--region", params.region)):
            if not value:
                raise ConfigError(f"submit error: {flag} is required for a Dataflow job")
        if not dry_run:
            if not params.temp_location:
                raise ConfigError("submit error: --temp-location gs://BUCKET/tmp is required for a Dataflow job")
            for flag, value in (
                ("--temp-location", params.temp_location),
                ("--staging-location", params.staging_location),
            ):
                if value and not value.startswith("gs://"):
                    raise ConfigError(
                        f"submit error: {flag} {value!r} must be a gs:// path (Dataflow stages"
                        " and keeps temporary files in Cloud Storage)"
                    )
        check_gpu(params)
    else:
        if params.gpu_type:
            raise ConfigError(
                f"submit error: --gpu-type is a Dataflow option; on {params.runner} GPUs come with the"
                " cluster's nodes: serve the judge with `vllm serve` and set"
                " stages.quality.backend=openai (docs/scaling.md)"
            )
        if params.runner == "flink" and not (params.flink_master or params.job_endpoint):
            raise ConfigError("submit error: --runner flink needs --flink-master HOST:PORT or --job-endpoint HOST:PORT")
        if params.runner == "spark" and not (params.spark_master_url or params.job_endpoint):
            raise ConfigError(
                "submit error: --runner spark needs --spark-master-url spark://HOST:PORT or --job-endpoint HOST:PORT"
            )
        if params.environment_type != "DOCKER" and not params.environment_config:
            raise ConfigError(f"submit error: --environment-type {params.environment_type} needs --environment-config")


def check_gpu(params: SubmitParams) -> None:
    if not params.gpu_type:
        return
    known = GPU_MACHINES.get(params.gpu_type)
    if known is None:
        if not params.machine_type:
            raise ConfigError(
                f"submit error: --gpu-type {params.gpu_type}: no default machine type for it"
                f" (known: {', '.join(GPU_MACHINES)}); pass --machine-type too"
            )
        return
    family, sizes = known
    if params.machine_type and not params.machine_type.startswith(family):
        raise ConfigError(
            f"submit error: --gpu-type {params.gpu_type} is attached to {family}* machine"
            f" types, not {params.machine_type}"
        )
    if not params.machine_type and params.gpu_count not in sizes:
        raise ConfigError(
            f"submit error: --gpu-count {params.gpu_count}: {params.gpu_type} machines"
            f" carry {sorted(sizes)} GPUs; pass --machine-type for another count"
        )


def _grpc_answers(address: str, wait_s: float) -> bool:
    """Whether a gRPC server completes a connection at HOST:PORT within wait_s (a port that
    accepts TCP but speaks something else does not)."""
    import grpc

    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=wait_s)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def check_endpoints(params: SubmitParams, wait_s: float | None = None) -> None:
    """Before a real Flink/Spark submission: the job server named by --job-endpoint answers, and,
    with the embedded job service, so does an EXTERNAL worker pool (that service starts workers
    from this machine; a cluster's job server reaches pools on its own hosts, not checked here)."""
    if params.runner == "dataflow" or not params.job_endpoint:
        return
    wait_s = ENDPOINT_WAIT_S if wait_s is None else wait_s
    if params.job_endpoint != EMBEDDED_JOB_ENDPOINT:
        if not _grpc_answers(params.job_endpoint, wait_s):
            raise ConfigError(
                f"submit error: --job-endpoint {params.job_endpoint}: no Beam job server answered"
                f" within {wait_s:g} s; start it first (docs/scaling.md, section 6)"
            )
        return
    if params.environment_type == "EXTERNAL":
        url = params.environment_config or ""
        if url.lstrip().startswith("{"):  # Beam also takes {"url": ..., "params": ...}
            try:
                url = str(json.loads(url).get("url") or "")
            except (ValueError, AttributeError):
                raise ConfigError("submit error: --environment-config: not valid JSON") from None
        if not url or not _grpc_answers(url, wait_s):
            raise ConfigError(
                f"submit error: --environment-config {url}: no Beam worker pool answered within"
                f" {wait_s:g} s; start one there (python -m apache_beam.runners.worker.worker_pool_main"
                " --service_port=PORT, with this project's python first on its PATH)"
            )


def _worker_path_problem(key: str, path: str | None) -> str | None:
    """A model or tokenizer path is opened by the workers, inside the worker image."""
    if not path:
        return None
    if is_remote(path):
        return (
            f"config error: {key}: {path} is a remote path; workers load it from their container:"
            " bake it into the image (dataflow/models/ -> /models/) and give that absolute path"
        )
    if not Path(path).is_absolute():
        return (
            f"config error: {key}: {path!r} is relative; workers resolve it inside the worker image:"
            " give its absolute path there (dataflow/models/ is copied to /models/)"
        )
    return None


def check_config(config: Config, params: SubmitParams, dry_run: bool) -> None:
    """Problems the job would hit on its workers (or costs it would waste), as one line now."""
    st = config.stages
    if not config.sources:
        raise ConfigError(
            "input error: no source configured: give --input (a gs:// pattern for Dataflow);"
            " the demo corpus is built on this machine, which workers cannot read"
        )
    q = st.quality
    paths = [
        ("stages.langid.model_path", st.langid.model_path if st.langid.enabled else None),
        ("tokenizer.path", config.tokenizer.path),
    ]
    if q.enabled:
        if q.classifier == "llama_judge" and not q.model:
            raise ConfigError(
                "config error: stages.quality.model: the llama judge needs the model directory"
                " (inside the worker image)"
            )
        if q.classifier == "fasttext" and not q.model_path:
            raise ConfigError(
                "config error: stages.quality.model_path: the fasttext classifier needs a model"
                " trained by `curate distill` (inside the worker image)"
            )
        paths.append(("stages.quality.model", q.model if q.classifier == "llama_judge" else None))
        paths.append(("stages.quality.model_path", q.model_path if q.classifier == "fasttext" else None))
        if q.classifier == "llama_judge" and q.backend == "openai":
            host = urlparse(q.base_url).hostname or ""
            if host in LOCAL_HOSTS:
                raise ConfigError(
                    f"config error: stages.quality.base_url: {q.base_url} is this machine; workers"
                    " cannot reach it: give the judge server's address on the workers' network"
                )
    for key, path in paths:
        problem = _worker_path_problem(key, path)
        if problem:
            raise ConfigError(problem)
    if params.runner == "dataflow":
        if judge_needs_gpu(config) and not params.gpu_type:
            raise ConfigError(
                "submit error: stages.quality runs the Llama judge on vLLM, which needs a GPU: pass"
                " --gpu-type (e.g. nvidia-l4), or use backend openai or the distilled fasttext classifier"
            )
        if params.gpu_type and not judge_needs_gpu(config):
            raise ConfigError(
                "submit error: --gpu-type asks for GPUs but no stage uses one (only the vLLM judge"
                " does: stages.quality.enabled, classifier llama_judge, backend vllm); drop it"
            )
        if params.gpu_type and q.tensor_parallel_size > params.gpu_count:
            raise ConfigError(
                f"submit error: stages.quality.tensor_parallel_size={q.tensor_parallel_size} needs"
                f" that many GPUs per worker; --gpu-count is {params.gpu_count}"
            )
        if not dry_run:
            if not is_remote(config.output.path):
                raise ConfigError(
                    f"output error: {config.output.path!r} is a local path; Dataflow workers write"
                    " through Beam's filesystems: give --output gs://BUCKET/PATH"
                )
            for src in config.sources:
                for pattern in src.paths:
                    if not is_remote(pattern):
                        raise ConfigError(
                            f"input error: source {src.name!r}: {pattern!r} is a local path, which"
                            " Dataflow workers cannot read: copy it to gs:// and give that"
                        )
    elif judge_needs_gpu(config):
        raise ConfigError(
            f"submit error: the vLLM judge needs GPUs, which {params.runner} workers are not given"
            " by `curate submit`: serve it with `vllm serve` and set stages.quality.backend=openai"
        )


# ----------------------------------------------------------------------------- split runs


def defer_judge(config: Config) -> Config:
    """First job of a split run: every CPU stage, no judge, no mixture sampling (the mixture's
    shares are planned after the judge, in the second job); OUT/mixture/ holds every survivor."""
    st = config.stages
    stages = st.model_copy(
        update={
            "quality": st.quality.model_copy(update={"enabled": False}),
            "mixture": st.mixture.model_copy(update={"enabled": False}),
        }
    )
    return config.model_copy(update={"stages": stages})


JUDGE_INPUT_TEXT, JUDGE_INPUT_CODE = "judge-input", "judge-input-code"


def judge_input_sources(out1: str, config: Config, dry_run: bool) -> tuple[list[Source], list[str]]:
    """Second job's sources: the first job's mixture shards, code apart (its language comes from
    the `code` kind, not from language ID). Read from OUT1's manifest (which also proves the
    first job finished); a dry run on a remote OUT1 uses one pattern per bucket the config can
    produce instead. Returns (sources, notes)."""
    from apache_beam.io.filesystems import FileSystems

    from pipeline import schema
    from pipeline.stages.langid import CODE_BUCKET
    from pipeline.stages.write import bucket_glob

    base = out1.rstrip("/")
    notes: list[str] = []
    if dry_run and is_remote(base):
        langs = ["en", *config.stages.langid.languages] if config.stages.langid.enabled else ["und"]
        text = [f"{base}/{bucket_glob(b)}" for b in dict.fromkeys(langs) if b != CODE_BUCKET]
        code = [f"{base}/{bucket_glob(CODE_BUCKET)}"]
        notes.append(f"{base}/manifest.json not read (dry run): one pattern per bucket the config can produce")
    else:
        path = f"{base}/{schema.MANIFEST_NAME}"
        try:
            with FileSystems.open(path, compression_type="uncompressed") as f:
                manifest = json.loads(f.read())
        except Exception as e:  # noqa: BLE001 - any filesystem error: the first job is not done
            raise ConfigError(
                f"input error: --judge-input: cannot read {path} ({type(e).__name__}); the first job"
                " (--defer-judge) must have finished"
            ) from None
        stages = manifest.get("config", {}).get("stages", {})
        if stages.get("mixture", {}).get("enabled", True) or stages.get("quality", {}).get("enabled", False):
            raise ConfigError(
                f"input error: --judge-input: {base} was written with the mixture or the quality stage"
                " on; run the first job with --defer-judge so that the judge sees every survivor"
            )
        shards = [s for s in manifest.get("shards", []) if s.get("kind") == "mixture" and s.get("rows")]
        text = [f"{base}/{s['path']}" for s in shards if s["bucket"] != CODE_BUCKET]
        code = [f"{base}/{s['path']}" for s in shards if s["bucket"] == CODE_BUCKET]
        if not text and not code:
            raise ConfigError(f"input error: --judge-input: {base} holds no mixture document to judge")
    sources = []
    if text:
        sources.append(Source(name=JUDGE_INPUT_TEXT, paths=text, format="parquet"))
    if code:
        sources.append(Source(name=JUDGE_INPUT_CODE, paths=code, format="parquet", kind="code"))
    return sources, notes


def judge_after(config: Config, out1: str, dry_run: bool) -> tuple[Config, list[str]]:
    """Second job of a split run: the judge and the mixture on the first job's output. The
    filters and dedup already ran there, so they are off here; language ID runs again (same
    model and text: same buckets) because the mixture's columns are recomputed from text."""
    if not config.stages.quality.enabled:
        raise ConfigError(
            "submit error: --judge-input runs the judge job, but stages.quality is disabled"
            " (set stages.quality.enabled=true)"
        )
    sources, notes = judge_input_sources(out1, config, dry_run)
    if config.sources:
        notes.append(
            f"the config's sources ({', '.join(s.name for s in config.sources)}) are replaced by {out1}'s"
            " mixture shards"
        )
    st = config.stages
    off = {"enabled": False}
    stages = st.model_copy(
        update={
            name: getattr(st, name).model_copy(update=off)
            for name in ("heuristics", "url_dedup", "exact_dedup", "minhash_dedup", "line_dedup")
        }
    )
    return config.model_copy(update={"stages": stages, "sources": sources}), notes


# ----------------------------------------------------------------------------- inputs


def plan_inputs(config: Config, dry_run: bool) -> tuple[list[FileSpec], list[str]]:
    """FileSpecs of every input file, and the patterns left unlisted (dry run, remote only).
    Local patterns, and every pattern of a real submission, are listed by `discover`."""
    from pipeline.sources import discover

    specs: list[FileSpec] = []
    unlisted: list[str] = []
    seen: set[str] = set()
    for src in config.sources:
        for pattern in src.paths:
            if dry_run and is_remote(pattern):
                fmt, comp = infer_format(pattern)
                fmt = src.format or fmt
                if not fmt:
                    raise ConfigError(
                        f"input error: {pattern}: unknown format (expected .jsonl[.gz|.zst],"
                        " .parquet or .warc[.gz|.zst]; set sources[].format)"
                    )
                found = [FileSpec(0, src.name, pattern, fmt, comp, 0)]
                unlisted.append(pattern)
            else:
                found = discover([src.model_copy(update={"paths": [pattern]})])
            for s in found:
                if s.path not in seen:
                    seen.add(s.path)
                    specs.append(dataclasses.replace(s, file_idx=len(specs)))
    if len(specs) >= MAX_FILES:
        raise ConfigError(f"input error: {len(specs)} files; at most {MAX_FILES - 1} per run")
    return specs, unlisted


# ----------------------------------------------------------------------------- options


def dataflow_flags(config: Config, params: SubmitParams, job_name: str) -> list[str]:
    """DataflowRunner options of a real submission (omitting what is not set)."""
    flags = ["--runner=DataflowRunner"]
    for name, value in (
        ("project", params.project),
        ("region", params.region),
        ("temp_location", params.temp_location),
        (
            "staging_location",
            params.staging_location or (params.temp_location and params.temp_location.rstrip("/") + "/staging"),
        ),
    ):
        if value:
            flags.append(f"--{name}={value}")
    flags += [
        f"--job_name={job_name}",
        f"--labels=curate-config={config.digest()[:12]}",
    ]
    if params.image or (params.project and params.region):  # else the flex-template launcher gives it
        flags.append(f"--sdk_container_image={params.image or default_image(params)}")
    flags += [
        # the worker container holds Beam, this project, its models and (GPU) vLLM: nothing is
        # staged or pip-installed at worker start
        "--sdk_location=container",
        "--experiments=use_runner_v2",
        "--experiments=shuffle_mode=service",  # Dataflow Shuffle: GroupByKeys off the workers' disks
        f"--machine_type={machine_type(params)}",
        f"--max_num_workers={params.max_workers}",
        "--autoscaling_algorithm=THROUGHPUT_BASED",
        f"--disk_size_gb={params.disk_size_gb}",
    ]
    if params.num_workers:
        flags.append(f"--num_workers={params.num_workers}")
    if params.gpu_type:
        flags += [
            f"--dataflow_service_options={accelerator_option(params)}",
            "--experiments=no_use_multiple_sdk_containers",  # one SDK process per VM ...
            "--number_of_worker_harness_threads=1",
        ]  # ... one judge DoFn, one vLLM engine
    if params.service_account:
        flags.append(f"--service_account_email={params.service_account}")
    if params.subnetwork:
        flags.append(f"--subnetwork={params.subnetwork}")
    if not params.public_ips:
        flags.append("--no_use_public_ips")
    return flags + list(params.beam_options)


def dry_run_flags(dry_dir: Path) -> list[str]:
    """Appended to a real submission's flags (the last value wins): local staging, no
    credentials, and a template location, so Beam writes the job description and creates nothing."""
    return [
        f"--temp_location={dry_dir / 'tmp'}",
        f"--staging_location={dry_dir / 'staging'}",
        f"--dataflow_endpoint={DRY_RUN_ENDPOINT}",
        "--no_auth",
        f"--template_location={dry_dir / 'job.json'}",
    ]


def portable_flags(params: SubmitParams) -> list[str]:
    """Options for a Flink or Spark cluster: the runner's own job server (Beam launches its jar)
    or, with --job-endpoint, a job server already running (PortableRunner)."""
    if params.job_endpoint:
        flags = ["--runner=PortableRunner", f"--job_endpoint={params.job_endpoint}"]
    elif params.runner == "flink":
        flags = ["--runner=FlinkRunner", f"--flink_master={params.flink_master}"]
    else:
        flags = ["--runner=SparkRunner", f"--spark_master_url={params.spark_master_url}"]
    if params.runner == "flink":
        flags.append(f"--parallelism={params.max_workers}")
    env_config = params.environment_config or (params.image or default_image(params))
    flags += [f"--environment_type={params.environment_type}", f"--environment_config={env_config}"]
    return flags + list(params.beam_options)


def runner_flags(config: Config, params: SubmitParams, job_name: str) -> list[str]:
    return dataflow_flags(config, params, job_name) if params.runner == "dataflow" else portable_flags(params)


def pipeline_options(flags: list[str]):
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(flags=flags, save_main_session=False)


# ----------------------------------------------------------------------------- submission


def build_pipeline(config: Config, specs: list[FileSpec], flags: list[str], run_info: dict):
    import apache_beam as beam

    from pipeline.graph import build

    p = beam.Pipeline(options=pipeline_options(flags))
    build(p, config, specs, run_info)
    return p


def run_info_for(config: Config, specs: list[FileSpec], params: SubmitParams, job_name: str) -> dict:
    from pipeline.graph import input_info

    runner = (
        BEAM_RUNNER_NAMES[params.runner]
        if params.runner == "dataflow" or not params.job_endpoint
        else f"PortableRunner ({params.runner})"
    )
    return {"runner": runner, "workers": params.max_workers, "job_name": job_name, **input_info(config, specs)}


def _prepare_dry_dir(dry_dir: Path) -> None:
    if dry_dir.exists() and any(dry_dir.iterdir()) and not (dry_dir / "submit.json").exists():
        raise ConfigError(f"output error: --dry-run {dry_dir} is not empty and not an earlier dry run")
    for name in ("tmp", "staging"):
        shutil.rmtree(dry_dir / name, ignore_errors=True)
        (dry_dir / name).mkdir(parents=True)


def submit(
    config: Config,
    params: SubmitParams,
    specs: list[FileSpec],
    *,
    dry_dir: Path | None = None,
    unlisted: list[str] = (),
    notes: list[str] = (),
    wait: bool = False,
) -> dict:
    """Build the graph on the chosen runner and submit it, or (dry_dir) write what would be
    submitted: DIR/job.json (Dataflow's job description), DIR/pipeline.pb (the Beam pipeline
    proto), DIR/submit.json (options, inputs, config). Returns the summary."""
    import logging

    from apache_beam.options.pipeline_options import GoogleCloudOptions

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    job_name = params.job_name or default_job_name(config)
    flags = runner_flags(config, params, job_name)
    run_info = run_info_for(config, specs, params, job_name)
    summary = {
        "runner": run_info["runner"],
        "job_name": job_name,
        "flags": flags,
        "config_sha256": config.digest(),
        "config": config.model_dump(mode="json"),
        "input": {"files": len(specs), "bytes": sum(s.size for s in specs), "unlisted_patterns": list(unlisted)},
        "notes": list(notes),
    }
    if dry_dir is None:
        p = build_pipeline(config, specs, flags, run_info)
        result = p.run()
        if params.runner == "dataflow" and not result.has_job:  # --beam-option=--template_location=...
            summary["template"] = pipeline_options(flags).view_as(GoogleCloudOptions).template_location
            return summary
        if params.runner == "dataflow":
            job_id = result.job_id()
            summary["job_id"] = job_id
            summary["console"] = (
                f"https://console.cloud.google.com/dataflow/jobs/{params.region}/{job_id}?project={params.project}"
            )
        # on Flink/Spark this process may hold the job server (Beam started it): stay to the end
        if wait or params.runner != "dataflow":
            try:
                summary["state"] = str(result.wait_until_finish())
            except Exception as e:  # noqa: BLE001 - Beam raises when a job ends in another state than DONE
                summary["state"] = str(getattr(result, "_state", None) or "FAILED")
                lines = [x.strip() for x in str(e).splitlines() if x.strip() and x.strip() != ">"]
                summary["error"] = lines[-1] if lines else type(e).__name__
        return summary

    dry_dir = dry_dir.resolve()
    _prepare_dry_dir(dry_dir)
    if params.runner == "dataflow":
        summary["dry_run_flags"] = dry_run_flags(dry_dir)
        p = build_pipeline(config, specs, flags + summary["dry_run_flags"], run_info)
        p.run()  # writes DIR/job.json and DIR/staging/pipeline.pb; creates no job
        shutil.copyfile(dry_dir / "staging" / "pipeline.pb", dry_dir / "pipeline.pb")
    else:
        # A portable runner would start or call a job server here: build the proto it would get.
        p = build_pipeline(config, specs, flags, run_info)
        env = p.runner.default_environment(p.options)
        proto = p.to_runner_api(default_environment=env)
        (dry_dir / "pipeline.pb").write_bytes(proto.SerializeToString())
        shutil.rmtree(p.local_tempdir, ignore_errors=True)  # Beam removes it in run(), never called here
    (dry_dir / "submit.json").write_text(json.dumps(summary, indent=1))
    return summary


# ----------------------------------------------------------------------------- CLI


def add_parser(subparsers) -> argparse.ArgumentParser:
    d = SubmitParams()
    sp = subparsers.add_parser(
        "submit",
        help="run the pipeline on Dataflow, Flink or Spark",
        description="Build the pipeline and submit it to a distributed runner"
        " (docs/scaling.md). --dry-run DIR writes the job instead.",
    )
    add_config_args(sp)
    sp.add_argument("--runner", choices=RUNNERS, default=d.runner)
    sp.add_argument(
        "--image",
        help="worker container image (Dockerfile); default for dataflow:"
        " REGION-docker.pkg.dev/PROJECT/curate/worker:VERSION",
    )
    sp.add_argument("--max-workers", type=int, default=d.max_workers, help="most workers (flink: parallelism)")
    sp.add_argument(
        "--dry-run",
        metavar="DIR",
        help="write the job description and pipeline proto to DIR; submit nothing (no credentials, no network)",
    )
    sp.add_argument("--overwrite", action="store_true", help="replace an existing output")
    sp.add_argument("--wait", action="store_true", help="wait for the Dataflow job to finish (flink/spark: always)")
    sp.add_argument(
        "--beam-option",
        action="append",
        default=[],
        dest="beam_options",
        metavar="--NAME=VALUE",
        help="any other Beam pipeline option, passed as is (repeatable)",
    )
    split = sp.add_argument_group("split run (CPU job, then GPU judge job)")
    split.add_argument(
        "--defer-judge", action="store_true", help="first job: all CPU stages, no judge and no mixture sampling"
    )
    split.add_argument("--judge-input", metavar="OUT1", help="second job: judge and mix the output of the first")
    df = sp.add_argument_group("dataflow")
    df.add_argument("--project")
    df.add_argument("--region")
    df.add_argument("--temp-location", metavar="gs://BUCKET/tmp")
    df.add_argument("--staging-location", metavar="gs://BUCKET/staging")
    df.add_argument("--job-name")
    df.add_argument("--machine-type", help=f"default {CPU_MACHINE_TYPE}, or the GPU's machine type")
    df.add_argument("--num-workers", type=int)
    df.add_argument("--disk-size-gb", type=int, default=d.disk_size_gb)
    df.add_argument("--gpu-type", help="e.g. nvidia-l4, nvidia-tesla-t4, nvidia-tesla-a100")
    df.add_argument("--gpu-count", type=int, default=d.gpu_count)
    df.add_argument("--service-account")
    df.add_argument("--subnetwork")
    df.add_argument("--no-public-ips", action="store_false", dest="public_ips")
    pf = sp.add_argument_group("flink / spark")
    pf.add_argument("--flink-master", metavar="HOST:PORT")
    pf.add_argument("--spark-master-url", metavar="spark://HOST:PORT")
    pf.add_argument("--job-endpoint", metavar="HOST:PORT", help="a running Beam job server")
    pf.add_argument("--environment-type", choices=["DOCKER", "PROCESS", "EXTERNAL"], default=d.environment_type)
    pf.add_argument("--environment-config", help="default with DOCKER: the image")
    return sp


def params_from_args(args) -> SubmitParams:
    fields = {k: getattr(args, k) for k in SubmitParams.model_fields if getattr(args, k, None) is not None}
    try:
        return SubmitParams(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"submit error: --{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None


def prepare(args) -> tuple[Config, SubmitParams, list[FileSpec], list[str], list[str]]:
    """Everything a submission decides before building the graph; every user error is a ConfigError."""
    dry_run = bool(args.dry_run)
    params = params_from_args(args)
    if params.runner == "dataflow":
        check_gcp_extra()
    check_params(params, dry_run)
    config, specs, unlisted, notes = plan_job(args, params, dry_run)
    return config, params, specs, unlisted, notes


def plan_job(args, params: SubmitParams, dry_run: bool) -> tuple[Config, list[FileSpec], list[str], list[str]]:
    """The job's config (a split run's half, if asked) and input files, from the config arguments
    (`cli_common.add_config_args`) and the split-run ones; `submit` and the flex template share it."""
    config = resolve_config(args)
    notes: list[str] = []
    if args.defer_judge and args.judge_input:
        raise ConfigError("submit error: --defer-judge (first job) and --judge-input (second job) are exclusive")
    if args.defer_judge:
        config = defer_judge(config)
    if args.judge_input:
        if args.input:
            raise ConfigError("submit error: --judge-input reads the first job's output; drop --input")
        if params.runner == "dataflow" and not dry_run and not is_remote(args.judge_input):
            raise ConfigError(
                f"input error: --judge-input {args.judge_input!r} is a local path, which Dataflow workers cannot read"
            )
        config, notes = judge_after(config, args.judge_input, dry_run)
    check_config(config, params, dry_run)
    specs, unlisted = plan_inputs(config, dry_run)
    if unlisted:
        notes.append(
            f"{len(unlisted)} remote pattern(s) not listed (dry run): shuffle partitions ="
            f" {config.runner.shuffle_partitions or 'the minimum'}; set runner.shuffle_partitions to choose"
        )
    if params.runner != "dataflow" and any(s.path.startswith("gs://") for s in specs):
        check_gcp_extra()  # gs:// through Beam's GCS filesystem
    return config, specs, unlisted, notes


def cmd_submit(args) -> int:
    config, params, specs, unlisted, notes = prepare(args)
    if not args.dry_run:
        check_endpoints(params)  # before check_output, which may clear an old output
        check_output(config.output.path, args.overwrite)
    dry_dir = Path(args.dry_run) if args.dry_run else None
    summary = submit(config, params, specs, dry_dir=dry_dir, unlisted=unlisted, notes=notes, wait=args.wait)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if dry_dir is not None:
        written = ", ".join(n for n in ("job.json", "pipeline.pb", "submit.json") if (dry_dir / n).exists())
        print(
            f"dry run: {summary['runner']} job {summary['job_name']} ({len(specs)} input files) written to"
            f" {dry_dir}: {written}; nothing submitted"
        )
        return 0
    if "template" in summary:
        print(f"wrote a classic template to {summary['template']}; no job created")
        return 0
    print(
        f"submitted {summary['runner']} job {summary['job_name']}"
        + (f" ({summary['job_id']}): {summary['console']}" if "job_id" in summary else "")
    )
    if "state" in summary:
        print(f"final state: {summary['state']}")
        if "error" in summary:
            print(f"job error: {summary['error']}", file=sys.stderr)
        return 0 if summary["state"].endswith("DONE") else 1
    return 0


# ----------------------------------------------------------------------------- flex template

# The flex template's parameters (dataflow/metadata.json declares the same names).
TEMPLATE_PARAMETERS = (
    "config",
    "input",
    "output",
    "overrides",
    "overwrite",
    "gpu_type",
    "gpu_count",
    "defer_judge",
    "judge_input",
)


def template_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="curate-flex-template")
    ap.add_argument("--config", help="run config: a path in the image (/src/configs/...) or a gs:// URI")
    ap.add_argument("--input", default="", help="comma-separated input patterns")
    ap.add_argument("--output")
    ap.add_argument("--overrides", default="", help="semicolon-separated KEY=VALUE config overrides")
    ap.add_argument("--overwrite", default="false", choices=["true", "false"])
    ap.add_argument("--gpu_type")
    ap.add_argument("--gpu_count", type=int, default=SubmitParams().gpu_count)
    ap.add_argument("--defer_judge", default="false", choices=["true", "false"])
    ap.add_argument("--judge_input")
    ap.add_argument("--job_name")  # a standard launcher option, read here to label the manifest
    return ap


def template_main(argv: list[str]) -> int:
    """Entry point of the flex template (dataflow/main.py): the launcher calls it with the
    template's parameters and the job's Beam options (project, region, temp and staging
    locations, sdk_container_image, ...); those are passed through as given, after this
    project's own options, so that they win."""
    args, beam_flags = template_parser().parse_known_args(argv)
    try:
        ns = argparse.Namespace(
            config=_local_config(args.config) if args.config else None,
            input=[p for p in args.input.split(",") if p.strip()],
            output=args.output,
            overrides=[o for o in args.overrides.split(";") if o.strip()],
            gpu_type=args.gpu_type,
            gpu_count=args.gpu_count,
            job_name=args.job_name,
            defer_judge=args.defer_judge == "true",
            judge_input=args.judge_input,
        )
        params = params_from_args(ns)
        check_gcp_extra()
        check_gpu(params)  # project, region and locations come from the launcher's options
        config, specs, _, notes = plan_job(ns, params, dry_run=False)
        check_output(config.output.path, args.overwrite == "true")
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    job_name = params.job_name or default_job_name(config)
    flags = dataflow_flags(config, params, job_name) + beam_flags
    p = build_pipeline(config, specs, flags, run_info_for(config, specs, params, job_name))
    p.run()
    return 0


def _local_config(path: str) -> str:
    if not is_remote(path):
        return path
    import tempfile

    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type="uncompressed") as f:
        data = f.read()
    tmp = tempfile.NamedTemporaryFile(prefix="curate-config-", suffix=".yaml", delete=False)
    tmp.write(data)
    tmp.close()
    return tmp.name
