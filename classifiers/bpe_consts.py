"""What Llama 3's token-counting kernel (classifiers/bpe_kernel.py) and its callers share,
without numba: the pre-tokenizer's character classes (classifiers.unicode_tables builds the
table of them) and the size of the kernel's BPE cache (classifiers.tokens allocates it)."""

OTHER, LETTER, NUMBER, SPACE, UNSURE = 0, 1, 2, 3, 4
CACHE_BITS = 16  # entries of the BPE cache: 2^16
CACHE_WIDTH = 24  # bytes per entry: length, up to 22 bytes of the piece, its count
