"""Build a tiny, randomly initialised Llama checkpoint for tests and benchmarks.

Its verdicts mean nothing; what it gives is a REAL Hugging Face model directory
(config, safetensors weights, a byte-level BPE tokenizer trained on real text) that the
real vLLM engine and server load, so the judge's code path is exercised end to end.

    python -m tests.tiny_llama OUT_DIR [--no-chat-template]

Sizes: hidden 64, 2 layers, 2 heads of head_dim 32 (vLLM's CPU attention kernel rejects
head_dim below 32), vocabulary 2,048, context 4,096 like Llama 2. Weights are random
(normal, std 0.1) except for a handful set so that it answers the 0-5 rubric in format,
with a score that moves with the document (see `_bias_towards_digit_answers`).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from pathlib import Path

BENCH_CORPUS = Path("/work/shared/data/bench-corpus")

VOCAB_SIZE = 2048
HIDDEN_SIZE = 64
NUM_LAYERS = 2
NUM_HEADS = 2  # head_dim = 64 / 2 = 32
MAX_POSITIONS = 4096

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
# Weights of the digit answer bias (see _bias_towards_digit_answers).
DIGIT_READOUT = 6.0
DIGIT_SPREAD = 4.0

# Llama-2-chat's prompt format written as a Jinja chat template (system message folded
# into the first user turn between <<SYS>> markers, as Meta's reference code does).
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] %}{% set messages = messages[1:] %}"
    "{% else %}{% set system = '' %}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{{ bos_token }}[INST] "
    "{% if loop.first and system %}<<SYS>>\n{{ system }}\n<</SYS>>\n\n{% endif %}"
    "{{ message['content'] | trim }} [/INST]"
    "{% elif message['role'] == 'assistant' %}"
    " {{ message['content'] | trim }} {{ eos_token }}"
    "{% endif %}{% endfor %}"
)

# Words the judge's rubrics score with; repeated in the tokenizer's training text so the
# BPE learns them as single tokens (digits are single tokens anyway: split one by one).
_SCORE_WORDS = "Answer: yes\nAnswer: no\nAnswer: Yes\nAnswer: No\nScore: 0 1 2 3 4 5\n"


def read_corpus_texts(max_docs: int = 600, max_chars: int = 3_000_000) -> list[str]:
    """The first documents of the bench corpus (real English help pages, multilingual
    sentences, code): enough real text to train a small BPE vocabulary."""
    import zstandard

    texts: list[str] = []
    total = 0
    for part in sorted(BENCH_CORPUS.glob("part-*.jsonl.zst")):
        with open(part, "rb") as fh:
            reader = io.TextIOWrapper(
                zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8"
            )
            for line in reader:
                text = json.loads(line)["text"]
                texts.append(text)
                total += len(text)
                if len(texts) >= max_docs or total >= max_chars:
                    return texts
    if not texts:
        raise FileNotFoundError(f"no documents under {BENCH_CORPUS}")
    return texts


def train_tokenizer(texts: list[str]):
    """A byte-level BPE (GPT-2/Llama-3 style) with digits split one by one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[UNK, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts + [_SCORE_WORDS] * 200, trainer=trainer)
    return tok


def build_tiny_llama(
    out_dir: str | Path,
    *,
    chat_template: bool = True,
    answer_digits: bool = True,
    initializer_range: float = 0.1,
    seed: int = 0,
) -> Path:
    """Write a tiny random Llama (config + weights + tokenizer) to ``out_dir``.

    answer_digits: see `_bias_towards_digit_answers`.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(read_corpus_texts())
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=MAX_POSITIONS,
    )
    if chat_template:
        hf_tok.chat_template = LLAMA2_CHAT_TEMPLATE
    hf_tok.save_pretrained(out)

    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=HIDDEN_SIZE,
        intermediate_size=4 * HIDDEN_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_HEADS,
        head_dim=HIDDEN_SIZE // NUM_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tok.token_to_id(BOS),
        eos_token_id=tok.token_to_id(EOS),
        tie_word_embeddings=False,
        initializer_range=initializer_range,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if answer_digits:
        _bias_towards_digit_answers(model, hf_tok, seed)
    model.save_pretrained(out, safe_serialization=True)
    return out


def _bias_towards_digit_answers(model, tokenizer, seed: int) -> None:
    """Edit a few random weights so the model answers a digit 0..5 that depends on the
    document: the judge's arithmetic, ordering and distillation then have a signal to
    check, while the yes/no rubric stays off-format (its tokens are left random).

    - dimension 0 of every token embedding is 1: a constant feature; the digits' lm_head
      rows read it with a large weight, so most next-token probability lands on them;
    - dimension 1 of the embedding is +1 or -1 (a fixed random sign) for alphabetic
      tokens of 3+ letters, 0 otherwise; layer 0's attention copies it (v_proj and
      o_proj identity on that dimension), so the last position carries the average
      sign over the prompt, which differs from document to document;
    - digit d reads dimension 1 with weight proportional to d - 2.5: the average sign
      moves the expected score up or down.
    """
    import torch

    vocab = tokenizer.convert_ids_to_tokens(list(range(model.config.vocab_size)))
    gen = torch.Generator().manual_seed(seed + 1)
    signs = torch.where(torch.rand(len(vocab), generator=gen) < 0.5, -1.0, 1.0)
    wordlike = torch.tensor(
        [1.0 if t.lstrip("\u0120").isalpha() and len(t.lstrip("\u0120")) >= 3 else 0.0 for t in vocab]
    )
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        model.model.embed_tokens.weight[:, 1] = signs * wordlike
        attn = model.model.layers[0].self_attn
        attn.v_proj.weight[1, 1] = 1.0
        attn.o_proj.weight[1, 1] = 1.0
        for d in range(6):
            row = model.lm_head.weight[tokenizer.convert_tokens_to_ids(str(d))]
            row[0] = DIGIT_READOUT
            row[1] = DIGIT_SPREAD * (d - 2.5)


def copy_without_chat_template(src: str | Path, dst: str | Path) -> Path:
    """Same weights and tokenizer, no chat template (exercises the Llama-2 fallback)."""
    src, dst = Path(src), Path(dst)
    shutil.copytree(src, dst, dirs_exist_ok=True)
    cfg_path = dst / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("chat_template", None)
    cfg_path.write_text(json.dumps(cfg, indent=2))
    (dst / "chat_template.jinja").unlink(missing_ok=True)
    (dst / "chat_template.json").unlink(missing_ok=True)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--no-chat-template", action="store_true")
    args = ap.parse_args()
    path = build_tiny_llama(args.out_dir, chat_template=not args.no_chat_template)
    print(path)


if __name__ == "__main__":
    main()
