"""What the quality classifier's text kernel (classifiers/quality_kernel.py) and its caller
(classifiers/quality_fasttext.py, which builds the table of them) share, without numba: the
characters' classes."""

SPACE, MARK = 1, 2  # str.isspace's white space; a marked character, a word of its own (else 0)
