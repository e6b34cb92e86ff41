"""What the quality classifier's text kernel (classifiers/quality_kernel.py) and its caller
(classifiers/quality_fasttext.py, which builds the tables of them) share, without numba: the
characters' classes, and how the NFKC table (`quality_fasttext._nfkc_table`) is laid out."""

SPACE, MARK = 1, 2  # str.isspace's white space; a marked character, a word of its own (else 0)

# The NFKC table: one int32 per code point, then the longer entries. An entry >= 0 is a code
# point that NFKC keeps as it is and that combines with no code point before it (Unicode's quick
# check "Yes"): its canonical combining class, plus NFKC_COMPOSITE where it has a canonical
# decomposition (a precomposed letter: a combining mark after it may be reordered into it).
# NFKC_HARD marks one the kernel leaves to Python (Hangul's vowel and trailing jamo, U+03A3, whose
# lower-casing depends on its neighbours, and a code point whose NFKC holds one of those). An
# entry below NFKC_HARD is -(where its longer entry starts): for a code point NFKC replaces (a
# compatibility character) the replacement's length L >= 1, then its L code points; for one that
# may combine with the code point before it (quick check "Maybe"), -(F + 1), its combining
# class, then the F code points it combines with.
NFKC_HARD = -1
NFKC_COMPOSITE = 256
