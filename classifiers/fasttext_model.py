"""The distilled quality classifier's prediction, compiled: a fastText model file read directly
(its dictionary, and its two matrices mapped from the file, not copied) and predicted by
`classifiers/fasttext_kernel.py` with fastText's own arithmetic, so every probability is the one
fastText returns, bit for bit, about 1.5x faster than its predict (no text stream, no string per
word) and straight from the normalised line's code points.

What it reads is what `curate distill` trains: a supervised model (file format version 12, the
one fastText 0.9 writes), softmax loss, dense matrices, no subword n-grams (minn/maxn 0).
`SoftmaxModel.load` returns None for any other model (quantised .ftz, hierarchical softmax,
one-vs-all, subwords), and the scorer then predicts with fastText itself.

The file layout (fastText's FastText::saveModel): magic and version (int32), Args (12 int32 and
a double), the Dictionary (size, nwords, nlabels as int32; ntokens and pruneidx_size as int64;
then per entry its bytes, a NUL, an int64 count and an int8 type; then pruneidx_size pairs of
int32), a quantised-input flag (one byte), the input matrix (rows and columns as int64, then
float32s), a quantised-output flag, the output matrix.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

import numpy as np

MAGIC, VERSION = 793712314, 12
SUPERVISED, SOFTMAX = 3, 3  # fastText's model_name::sup, loss_name::softmax
LABEL_PREFIX = "__label__"  # not in the file: fastText always loads models with its default
_ARGS = struct.Struct("<12id")  # dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate t
_DICT = struct.Struct("<3i2q")  # size nwords nlabels ntokens pruneidx_size


class SoftmaxModel:
    """A supervised softmax fastText model, predicting through the compiled kernel."""

    def __init__(self, path, data, labels, blob, offsets, nwords, bucket, ngrams, pruned, inp, out):
        self.path = path
        self._data = data  # the mapped file: the matrices are views of it
        self.labels = labels  # without the prefix, by label id
        self.blob, self.offsets = blob, offsets
        self.nwords, self.bucket, self.ngrams, self.pruned = nwords, bucket, ngrams, pruned
        self.input, self.output = inp, out
        from classifiers.kernels import kernels

        size = 1 << (2 * (offsets.size - 1)).bit_length()
        self.table = kernels().ft_vocab_table(blob, offsets, size)

    @classmethod
    def load(cls, path: str | Path) -> SoftmaxModel | None:
        """The model, or None where the file is not one this predictor computes exactly."""
        path = Path(path)
        try:
            with open(path, "rb") as f:
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # ValueError if empty
            magic, version = struct.unpack_from("<2i", data, 0)
            if (magic, version) != (MAGIC, VERSION):
                return None
            args = _ARGS.unpack_from(data, 8)
            dim, ngrams, loss, model, bucket, maxn = args[0], args[5], args[6], args[7], args[8], args[10]
            if loss != SOFTMAX or model != SUPERVISED or maxn > 0:
                return None
            at = 8 + _ARGS.size
            size, nwords, nlabels, _ntokens, pruneidx_size = _DICT.unpack_from(data, at)
            if pruneidx_size > 0:
                return None
            at += _DICT.size
            words = []
            for _ in range(size):
                end = data.find(b"\0", at)
                if end < 0:
                    return None
                words.append(data[at:end])
                at = end + 1 + 8 + 1  # the NUL, the count, the type
            if data[at] != 0:  # a quantised input matrix
                return None
            inp, at = _matrix(data, at + 1)
            if data[at] != 0:
                return None
            out, at = _matrix(data, at + 1)
        except (struct.error, ValueError, IndexError):
            return None
        if at != len(data) or inp.shape != (nwords + bucket, dim) or out.shape != (nlabels, dim):
            return None
        labels = [w.decode("utf-8", "replace").removeprefix(LABEL_PREFIX) for w in words[nwords:]]
        offsets = np.zeros(len(words) + 1, np.int64)
        np.cumsum([len(w) for w in words], out=offsets[1:])
        blob = np.frombuffer(b"".join(words), np.uint8)
        return cls(path, data, labels, blob, offsets, nwords, bucket, ngrams, pruneidx_size == 0, inp, out)

    def predict(self, codes: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """(outcome, probabilities by label id, label ids in fastText's order) of one normalised
        line's code points (fasttext_kernel.predict_softmax)."""
        from classifiers.kernels import kernels

        return kernels().ft_predict_softmax(
            codes,
            self.table,
            self.blob,
            self.offsets,
            self.nwords,
            self.bucket,
            self.ngrams,
            self.pruned,
            self.input,
            self.output,
        )


def _matrix(data: mmap.mmap, at: int) -> tuple[np.ndarray, int]:
    """A dense matrix at `at` (its rows and columns, then its float32s), mapped, and where it ends."""
    rows, cols = struct.unpack_from("<2q", data, at)
    at += 16
    if rows < 0 or cols < 0 or at + rows * cols * 4 > len(data):
        raise ValueError("matrix beyond the file")
    return np.frombuffer(data, np.float32, rows * cols, at).reshape(rows, cols), at + rows * cols * 4
