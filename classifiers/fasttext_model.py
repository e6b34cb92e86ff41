"""fastText's supervised predict, compiled: a model file read directly (its dictionary, its
matrices mapped from the file, not copied) and predicted by `classifiers/fasttext_kernel.py` with
fastText's own arithmetic, so every probability is the one fastText returns, bit for bit, and in
its order, without its text stream and a string per word and n-gram. Used for the language-ID
model (lid.176.ftz: quantised, hierarchical softmax, character n-grams) and the distilled quality
classifier (dense, softmax, word bigrams).

`load_predictor(path)` returns a `FastTextModel` where the file is one it computes exactly: a
supervised model in the format fastText 0.9 writes (version 12), softmax or hierarchical-softmax
loss, a dense or product-quantised input matrix (with or without quantised norms, pruned or
not), a dense output matrix; else fastText's own model (one-vs-all or negative-sampling loss,
a quantised output matrix, older files). Both answer `predict(texts, k, threshold)` and
`get_labels()` as fastText's Python wrapper does.

The file layout (fastText's FastText::saveModel): magic and version (int32), Args (12 int32 and a
double), the Dictionary (size, nwords, nlabels as int32; ntokens and pruneidx_size as int64; per
entry its bytes, a NUL, an int64 count and an int8 type; pruneidx_size pairs of int32), then the
input matrix after a quantised flag (dense: rows and columns as int64, then float32s; quantised:
a qnorm flag, rows and columns, the code size as int32, the codes, the product quantiser
(dim, nsubq, dsub, lastdsub as int32, then dim x 256 centroids), and with qnorm a norm code per
row and the norms' quantiser), then the output matrix after its own quantised flag.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

import numpy as np

from classifiers.fasttext_consts import SURROGATE, VOCAB_ID_BITS

MAGIC, VERSION = 793712314, 12
SUPERVISED = 3  # fastText's model_name::sup
HS, SOFTMAX = 1, 3  # fastText's loss_name
KSUB = 256  # centroids per sub-quantiser
_ARGS = struct.Struct("<12id")  # dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate t
_DICT = struct.Struct("<3i2q")  # size nwords nlabels ntokens pruneidx_size
_PQ = struct.Struct("<4i")  # dim nsubq dsub lastdsub
_NONE_U8, _NONE_F32 = np.zeros(0, np.uint8), np.zeros(0, np.float32)  # no norms


class Unsupported(ValueError):
    """A fastText model of a kind the compiled predictor does not compute (fastText predicts it)."""


class _Reader:
    """Values read in order from the mapped file; ValueError past its end."""

    def __init__(self, data: mmap.mmap, at: int = 0) -> None:
        self.data, self.at = data, at

    def unpack(self, fmt: struct.Struct | str) -> tuple:
        fmt = struct.Struct(fmt) if isinstance(fmt, str) else fmt
        values = fmt.unpack_from(self.data, self.at)
        self.at += fmt.size
        return values

    def array(self, dtype, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if count < 0 or self.at + size > len(self.data):
            raise ValueError("an array beyond the file's end")
        out = np.frombuffer(self.data, dtype, count, self.at)
        self.at += size
        return out

    def quantiser(self) -> tuple[np.ndarray, int, int, int]:
        dim, nsubq, dsub, lastdsub = self.unpack(_PQ)
        return self.array(np.float32, dim * KSUB), nsubq, dsub, lastdsub


class FastTextModel:
    """A supervised fastText model predicting through the compiled kernel."""

    def __init__(self, path: Path, data: mmap.mmap) -> None:
        self.path = path
        self._data = data  # the mapped file: the matrices are views of it
        r = _Reader(data)
        if r.unpack("<2i") != (MAGIC, VERSION):
            raise Unsupported("not a version-12 fastText model")
        args = r.unpack(_ARGS)
        dim, self.ngrams, loss, model, self.bucket, self.minn, self.maxn = (args[i] for i in (0, 5, 6, 7, 8, 9, 10))
        if model != SUPERVISED or loss not in (HS, SOFTMAX):
            raise Unsupported("not a supervised softmax or hierarchical-softmax model")
        size, self.nwords, nlabels, _ntokens, pruneidx_size = r.unpack(_DICT)
        from classifiers.kernels import kernels

        k = kernels()
        if size < 0:
            raise ValueError("a dictionary of negative size")
        if size >= 1 << VOCAB_ID_BITS:
            raise Unsupported(f"a dictionary of {size:,} entries")
        # the entries (a word, NUL, int64 count, int8 type), read by the kernel: the words' bytes
        # one after another in `blob`, word k at offsets[k]:offsets[k + 1]
        self.blob, self.offsets, counts, end = k.ft_read_dictionary(np.frombuffer(data, np.uint8), r.at, size)
        if end < 0:
            raise ValueError("the dictionary runs past the file's end")
        r.at = end
        pairs = r.array(np.int32, 2 * max(pruneidx_size, 0)).reshape(-1, 2)
        self.prune_mode = -1 if pruneidx_size < 0 else (0 if pruneidx_size == 0 else 1)
        self.prune = k.ft_prune_table(
            pairs[:, 0].copy(), pairs[:, 1].copy(), self.bucket if self.prune_mode == 1 else 0
        )
        if r.unpack("<?")[0]:  # a quantised input matrix: decoded once (3.2 MB for lid.176)
            qnorm, rows, cols, codesize = r.unpack("<?qqi")
            qcodes = r.array(np.uint8, codesize)
            centroids, nsubq, dsub, lastdsub = r.quantiser()
            norm_codes, norm_centroids = _NONE_U8, _NONE_F32
            if qnorm:
                norm_codes = r.array(np.uint8, rows)
                norm_centroids, *shape = r.quantiser()
                if shape != [1, 1, 1]:
                    raise Unsupported("norms quantised in more than one dimension")
            if (nsubq - 1) * dsub + lastdsub != cols or centroids.size != cols * KSUB or codesize != rows * nsubq:
                raise ValueError("a product quantiser that does not fit its matrix")
            self.input = k.ft_decode_quantized(
                qcodes, centroids, nsubq, dsub, lastdsub, norm_codes, norm_centroids, rows
            )
        else:
            rows, cols = r.unpack("<2q")
            self.input = r.array(np.float32, rows * cols).reshape(rows, cols)
        if r.unpack("<?")[0]:
            raise Unsupported("a quantised output matrix")
        out_rows, out_cols = r.unpack("<2q")
        self.output = r.array(np.float32, out_rows * out_cols).reshape(out_rows, out_cols)
        if r.at != len(data) or cols != dim or out_cols != dim or out_rows != nlabels:
            raise ValueError("matrices that do not fit the model")
        if rows < self.nwords + (self.bucket if pruneidx_size < 0 else max(pruneidx_size, 0)):
            raise ValueError("an input matrix with fewer rows than the dictionary needs")
        if (
            nlabels < 1
            or self.bucket < 0
            or (pairs.size and not 0 <= pairs[:, 1].min() <= pairs[:, 1].max() < rows - self.nwords)
        ):
            raise ValueError("no labels, or n-gram rows outside the input matrix")
        at = self.offsets.tolist()
        self.labels = [
            self.blob[a:b].tobytes().decode("utf-8", "replace")
            for a, b in zip(at[self.nwords :], at[self.nwords + 1 :])
        ]
        self.tree = _tree(counts[self.nwords :].tolist()) if loss == HS else np.zeros((0, 2), np.int32)
        self.table = k.ft_vocab_table(self.blob, self.offsets, 1 << (2 * size).bit_length())
        self.sub_starts = self.subs = np.zeros(0, np.int64)  # no character n-grams: nothing to look up
        if self.maxn > 0:
            self.sub_starts, self.subs = k.ft_vocab_subwords(
                self.blob, self.offsets, self.nwords, self.minn, self.maxn, self.bucket, self.prune_mode, self.prune
            )

    def get_labels(self) -> list[str]:
        return list(self.labels)

    def predict_bytes(self, data: np.ndarray, starts: np.ndarray, k: int = 1, threshold: float = 0.0):
        """(outcome, probabilities, label ids, count) per line data[starts[i]:starts[i + 1]], its
        UTF-8 bytes (fasttext_kernel.predict_batch); k -1 for every label."""
        from classifiers.kernels import kernels

        if k == 0 or k < -1:
            raise ValueError("k needs to be 1 or higher!")  # fastText's message
        return kernels().ft_predict_batch(
            data, starts, self.table, self.blob, self.offsets, self.nwords, self.bucket, self.ngrams, self.minn,
            self.maxn, self.prune_mode, self.prune, self.sub_starts, self.subs, self.input, self.output, self.tree, k,
            threshold,
        )  # fmt: skip

    def predict(self, texts: list[str], k: int = 1, threshold: float = 0.0):
        """fastText's `predict` for a list of lines: (the labels of each, their probabilities)."""
        if any("\n" in t for t in texts):
            raise ValueError("predict processes one line at a time (remove '\\n')")
        lines = [t.encode("utf-8", "surrogatepass") for t in texts]
        starts = np.zeros(len(lines) + 1, np.int64)
        np.cumsum([len(b) for b in lines], out=starts[1:])
        outcome, probs, ids, count = self.predict_bytes(np.frombuffer(b"".join(lines), np.uint8), starts, k, threshold)
        if (outcome == SURROGATE).any():
            from classifiers.fasttext_quiet import load_model

            return load_model(self.path).predict(texts, k, threshold)  # fastText's own error
        labels = self.labels
        return (
            [tuple(labels[i] for i in row[:n]) for row, n in zip(ids.tolist(), count.tolist())],
            [p[:n] for p, n in zip(probs, count.tolist())],
        )


def _tree(counts: list[int]) -> np.ndarray:
    """HierarchicalSoftmaxLoss::buildTree: the Huffman tree over the labels' counts (labels sorted
    by count, highest first, as fastText's dictionary keeps them): per node its left and right
    child, -1 for a leaf; leaves are the label ids, the root the last node."""
    osz = len(counts)
    count = [*counts, *([10**15] * (osz - 1))]
    tree = np.full((2 * osz - 1, 2), -1, np.int32)
    leaf, node = osz - 1, osz
    for i in range(osz, 2 * osz - 1):
        mini = [0, 0]
        for j in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                mini[j], leaf = leaf, leaf - 1
            else:
                mini[j], node = node, node + 1
        tree[i] = mini
        count[i] = count[mini[0]] + count[mini[1]]
    return tree


def load_predictor(path: str | Path):
    """The compiled model where the file is one it computes exactly, else fastText's. A file that
    starts as a model of its kind but does not hold one (cut short, say) is a ValueError saying
    so, where fastText would fail to allocate."""
    from classifiers.fasttext_quiet import load_model

    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # missing, unreadable, empty: fastText's own error
        return load_model(path)
    if hasattr(mmap, "MADV_WILLNEED"):  # read ahead now: predictions touch rows all over the file
        data.madvise(mmap.MADV_WILLNEED)
    try:
        return FastTextModel(path, data)
    except Unsupported:
        return load_model(path)
    except (ValueError, struct.error) as e:
        raise ValueError(f"{path}: not a whole fastText model ({e})") from None
