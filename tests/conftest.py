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
