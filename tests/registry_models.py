"""Real model artefacts for the tests, rebuilt from packages on PyPI (nothing comes from a
model hub), cached in the checkout under <repo>/.cache/test-models/ (git-ignored) so that
only the first run pays. The product's own builders (classifiers/artifacts.py: llama.cpp's
vocabularies, SmolLM2-135M-Instruct) are used with that cache; the tests add:

- `llama2_tokenizer_dir`: Llama 2's tokenizer (tokenizer.model, tokenizer.json,
  Llama-2-chat template) rebuilt from llama.cpp's ggml-vocab-llama-spm.gguf, shaped like
  meta-llama/Llama-2-7b-chat-hf.
- `tiny_llama2_dir`: a tiny, randomly initialised LlamaForCausalLM with that vocabulary.
  Its answers mean nothing; it tests mechanics only.

    python -m tests.registry_models   # build everything, print the directories
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from classifiers import artifacts
from classifiers.artifacts import LLAMA_BPE_GGUF, LLAMA_CPP_PYTHON, LLAMA_SPM_GGUF, SMOLLM2_GGUF, read_vocab_tests  # noqa: F401 - used by the tests through this module

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "test-models"
_REV = artifacts.REV


def _cached(name, build):
    return artifacts.cached(CACHE, name, build)


def llama_cpp_sdist_dir() -> Path:
    return artifacts.llama_cpp_vocab_dir(CACHE)


def smollm2_dir() -> Path:
    return artifacts.smollm2_dir(CACHE)


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

    tok = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
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
        added = {
            str(i): {
                "content": t,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for i, t in enumerate(("<unk>", "<s>", "</s>"))
        }
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
            f"{LLAMA_CPP_PYTHON} source archive, MIT) by tests/registry_models.py.\n"
        )

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
            vocab_size=32000,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
            hidden_act="silu",
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=None,
            initializer_range=0.02,
        )
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).to(torch.float32).eval()
        model.save_pretrained(out, safe_serialization=True)
        for f in tok_dir.iterdir():
            if f.is_file() and f.name != "SOURCE":
                shutil.copy2(f, out / f.name)
        (out / "SOURCE").write_text(
            "Random weights (seed 0), by tests/registry_models.py; tokenizer as in "
            f"llama2-tokenizer: {(tok_dir / 'SOURCE').read_text()}"
        )

    return _cached(f"tiny-llama2-{_REV}", build)


# ------------------------------------------------------------------ SmolLM2-135M-Instruct


if __name__ == "__main__":
    for fn in (llama_cpp_sdist_dir, llama2_tokenizer_dir, tiny_llama2_dir, smollm2_dir):
        print(fn())
