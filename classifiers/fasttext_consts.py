"""Constants shared by the compiled fastText predictor (`fasttext_kernel.py`, compiled) and its
Python side (`fasttext_model.py`, which must not import the kernel module: that imports numba)."""

# fastText's Dictionary::hash (32-bit FNV-1a over the word's bytes, each byte sign-extended
# first) and the multiplier Dictionary::addWordNgrams chains a word n-gram's hashes with.
FT_OFFSET, FT_PRIME, FT_NGRAM = 2166136261, 16777619, 116049371
# predict's outcome per line (the first array `fasttext_kernel.predict_batch` returns)
OK, NO_WORDS, SURROGATE = 0, 1, 2
# The predictor's vocabulary table keeps an entry's id in this many bits (fastText's own limit,
# MAX_VOCAB_SIZE, is 30M < 2**25); a larger dictionary is left to fastText.
VOCAB_ID_BITS = 25
