"""A NumPy reader and predictor for quantized fastText classifiers such as ``lid.176.ftz``.

fastText's ``predict`` spends most of a language-ID call rebuilding the same character
n-grams of the same words and decoding their product-quantized rows, document after document.
This module reads the model file once and computes the same thing with a per-word cache: a
word's input vector sum (the word's own row, if in the dictionary, plus its hashed and pruned
character n-grams, exactly as fastText's ``Dictionary::getLine``) is decoded the first time the
word is seen and reused after. The hidden vector is the mean of a line's rows, as in
``Model::computeHidden``; the output is fastText's hierarchical softmax (the Huffman tree of
``Loss::buildTree``, ``HierarchicalSoftmaxLoss``), scored for every leaf at once for a batch of
lines. Probabilities follow fastText's ``exp(sum(log(p + 1e-5)))``.

Supported: supervised models with ``loss hs`` and ``wordNgrams 1`` (lid.176), input matrix
dense or product-quantized (with or without quantized norms), output dense or quantized.
Anything else raises ``ValueError``; the caller then uses the fastText bindings instead.
Sums are float32 like fastText's, in a different order, so probabilities agree to ~1e-6.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import chain, repeat
from pathlib import Path

import numpy as np

_MAGIC, _VERSION = 793712314, 12
_HS, _SUP = 1, 3
_KSUB = 256
_EOS = "</s>"
_LABEL = "__label__"


class _Reader:
    def __init__(self, data: bytes):
        self.b, self.o = data, 0

    def take(self, fmt: str):
        v = struct.unpack_from("<" + fmt, self.b, self.o)
        self.o += struct.calcsize("<" + fmt)
        return v if len(v) > 1 else v[0]

    def array(self, dtype, count: int) -> np.ndarray:
        a = np.frombuffer(self.b, dtype=dtype, count=count, offset=self.o)
        self.o += a.nbytes
        return a

    def cstring(self) -> bytes:
        end = self.b.index(b"\0", self.o)
        s = self.b[self.o:end]
        self.o = end + 1
        return s


def _read_pq(r: _Reader) -> tuple[int, int, int, np.ndarray]:
    dim, nsubq, dsub, lastdsub = r.take("iiii")
    return nsubq, dsub, lastdsub, r.array(np.float32, dim * _KSUB)


def _decode_pq(pq, codes: np.ndarray, rows: int) -> np.ndarray:
    """All rows of a product-quantized matrix (``ProductQuantizer::addcode`` for each)."""
    nsubq, dsub, lastdsub, cent = pq
    codes = codes.reshape(rows, nsubq)
    parts = []
    for m in range(nsubq):
        d = lastdsub if m == nsubq - 1 else dsub
        table = cent[m * _KSUB * dsub: m * _KSUB * dsub + _KSUB * d].reshape(_KSUB, d)
        parts.append(table[codes[:, m]])
    return np.concatenate(parts, axis=1)


def _read_matrix(r: _Reader, quantized: bool) -> np.ndarray:
    if not quantized:
        m, n = r.take("qq")
        return r.array(np.float32, m * n).reshape(m, n).copy()
    qnorm = r.take("?")
    m, n = r.take("qq")
    codesize = r.take("i")
    codes = r.array(np.uint8, codesize)
    mat = _decode_pq(_read_pq(r), codes, m)
    if qnorm:
        norm_codes = r.array(np.uint8, m)
        npq = _read_pq(r)
        mat = mat * _decode_pq(npq, norm_codes, m)[:, :1]
    return np.ascontiguousarray(mat, dtype=np.float32)


_PRIME = np.uint32(16777619)


def _fnv1a_utf8(cps: np.ndarray, n: np.ndarray) -> np.ndarray:
    """fastText's 32-bit FNV-1a of each row's first ``n`` code points, UTF-8 encoded.

    ``cps``: (grams, maxn) uint32 code points, 0 past ``n``. fastText hashes ``int8_t`` bytes,
    so a byte >= 0x80 is sign-extended before the xor. Rows of ASCII characters (most) take a
    short path: their bytes are the code points.
    """
    h = np.full(len(cps), 2166136261, np.uint32)
    ascii_row = (cps < 0x80).all(axis=1)
    a_cps, a_n = cps[ascii_row], n[ascii_row]
    ha = np.full(len(a_cps), 2166136261, np.uint32)
    for t in range(cps.shape[1]):
        on = t < a_n
        ha[on] = (ha[on] ^ a_cps[on, t]) * _PRIME
    h[ascii_row] = ha
    rest = ~ascii_row
    if rest.any():
        h[rest] = _fnv1a_utf8_any(cps[rest], n[rest])
    return h


def _fnv1a_utf8_any(cps: np.ndarray, n: np.ndarray) -> np.ndarray:
    h = np.full(len(cps), 2166136261, np.uint32)

    def step(h, byte, on):
        x = np.where(byte >= 0x80, byte | np.uint32(0xFFFFFF00), byte)
        return np.where(on, (h ^ x) * _PRIME, h)

    for t in range(cps.shape[1]):
        c = cps[:, t]
        on = t < n
        nb = 1 + (c >= 0x80).astype(np.uint32) + (c >= 0x800) + (c >= 0x10000)
        lead = np.select([nb == 1, nb == 2, nb == 3],
                         [c, 0xC0 | (c >> 6), 0xE0 | (c >> 12)], 0xF0 | (c >> 18))
        h = step(h, lead.astype(np.uint32), on)
        for k in (1, 2, 3):
            shift = (6 * (nb.astype(np.int64) - 1 - k)).clip(0).astype(np.uint32)
            cont = (0x80 | ((c >> shift) & 0x3F)).astype(np.uint32)
            h = step(h, cont, on & (nb > k))
    return h


class FastTextLID:
    """Predict the top label and its probability for many lines (see the module docstring).

    ``max_cached_words`` bounds the word cache (16 floats and a dict entry per word, ~150
    bytes): when full it is emptied and refilled from the next batches.
    """

    max_cached_words = 500_000

    def __init__(self, path: str | Path):
        r = _Reader(Path(path).read_bytes())
        if r.take("ii") != (_MAGIC, _VERSION):
            raise ValueError(f"{path}: not a fastText model file of version {_VERSION}")
        (dim, _ws, _ep, _mc, _neg, word_ngrams, loss, model, bucket, minn, maxn, _lru) = \
            r.take("12i")
        r.take("d")
        if model != _SUP or loss != _HS or word_ngrams != 1:
            raise ValueError(f"{path}: only supervised hs models with wordNgrams 1 are supported")
        size, nwords, nlabels, _ntokens, pruneidx_size = r.take("iiiqq")
        words: dict[str, int] = {}
        label_names, label_counts = [], []
        for i in range(size):
            name = r.cstring()
            count, kind = r.take("qb")
            if kind == 0:
                words[name.decode("utf-8", "replace")] = i
            else:
                label_names.append(name.decode("utf-8", "replace"))
                label_counts.append(count)
        if len(words) != nwords or len(label_names) != nlabels:
            raise ValueError(f"{path}: dictionary counts do not match its header")
        prune = {}
        for _ in range(max(pruneidx_size, 0)):
            k, v = r.take("ii")
            prune[k] = v
        quant_input = r.take("?")
        self._input = _read_matrix(r, quant_input)
        qout = r.take("?")
        self._output = _read_matrix(r, qout)
        if self._input.shape[1] != dim or self._output.shape != (nlabels, dim):
            raise ValueError(f"{path}: matrix shapes do not match the model's arguments")
        self._nwords, self._bucket, self._minn, self._maxn = nwords, bucket, minn, maxn
        # pruned models keep a few n-gram buckets: bucket -> kept row (-1: dropped), 4 bytes
        # per bucket (8 MB for lid.176's 2M buckets); unpruned models use the bucket itself
        self._prune_table: np.ndarray | None = None
        if pruneidx_size >= 0:
            self._prune_table = np.full(bucket, -1, np.int32)
            if prune:
                self._prune_table[np.fromiter(prune.keys(), np.int64, len(prune))] = \
                    np.fromiter(prune.values(), np.int32, len(prune))
        self._words = words
        self.labels = [n.removeprefix(_LABEL) for n in label_names]
        self._build_tree(label_counts)
        self._dim = dim
        # word cache: token -> slot in _sums (its rows summed) / _counts (how many rows)
        self._slot: dict[str, int] = {}
        self._sums = np.zeros((4096, dim), np.float32)
        self._counts = np.zeros(4096, np.float32)
        self._add_words([_EOS])  # slot 0

    # ---------------------------------------------------------------- output layer
    def _build_tree(self, counts: Sequence[int]) -> None:
        """``Loss::buildTree`` (Huffman tree over label counts, sorted descending)."""
        osz = len(counts)
        n = 2 * osz - 1
        cnt = [1e15] * n
        left, right, parent, binary = [-1] * n, [-1] * n, [-1] * n, [False] * n
        for i in range(osz):
            cnt[i] = counts[i]
        leaf, node = osz - 1, osz
        for i in range(osz, n):
            mini = [0, 0]
            for j in range(2):
                if leaf >= 0 and cnt[leaf] < cnt[node]:
                    mini[j], leaf = leaf, leaf - 1
                else:
                    mini[j], node = node, node + 1
            left[i], right[i], cnt[i] = mini[0], mini[1], cnt[mini[0]] + cnt[mini[1]]
            parent[mini[0]] = parent[mini[1]] = i
            binary[mini[1]] = True
        # leaf score = sum over its path of log(f + 1e-5) (right child) or log(1 - f + 1e-5)
        go_right = np.zeros((osz, osz - 1), np.float32)
        go_left = np.zeros((osz, osz - 1), np.float32)
        for leaf_i in range(osz):
            c = leaf_i
            while parent[c] != -1:
                p = parent[c] - osz
                (go_right if binary[c] else go_left)[leaf_i, p] = 1.0
                c = parent[c]
        self._go_right, self._go_left = go_right.T.copy(), go_left.T.copy()

    # ---------------------------------------------------------------- input layer
    def _add_words(self, words: list[str], may_clear: bool = True) -> bool:
        """Decode and cache the row sums of words not seen before, all at once; True if the
        cache was emptied first to make room.

        A token's rows (``Dictionary::getLine``): its own row if it is in the dictionary, then
        the rows of the n-grams of ``<token>`` (none for ``</s>``); a ``__label__`` token adds
        nothing.
        """
        cleared = False
        if (may_clear and len(self._slot) + len(words) > self.max_cached_words
                and len(self._slot) > 1):
            self._slot.clear()
            self._slot[_EOS] = 0  # slot 0 stays the end-of-line token
            cleared = True
        first = len(self._slot)
        need = first + len(words)
        if need > len(self._counts):
            grow = max(need, 2 * len(self._counts))
            sums = np.zeros((grow, self._dim), np.float32)
            sums[: len(self._counts)] = self._sums
            counts = np.zeros(grow, np.float32)
            counts[: len(self._counts)] = self._counts
            self._sums, self._counts = sums, counts
        wid_of = self._words.get
        seg: list[int] = []
        rows: list[int] = []
        boxed: list[str] = []  # "<token>" of the tokens whose n-grams count
        boxed_k: list[int] = []
        for k, w in enumerate(words):
            if w.startswith(_LABEL):
                continue
            wid = wid_of(w)
            if wid is not None:
                seg.append(k)
                rows.append(wid)
            if w != _EOS and self._maxn > 0:
                boxed.append("<" + w + ">")
                boxed_k.append(k)
        seg_a = np.asarray(seg, np.int64)
        row_a = np.asarray(rows, np.int64)
        if boxed:
            g_seg, g_row = self._gram_rows(boxed)
            seg_a = np.concatenate([seg_a, np.asarray(boxed_k, np.int64)[g_seg]])
            row_a = np.concatenate([row_a, g_row])
        vecs = self._input[row_a]
        out = self._sums[first:need]
        for d in range(self._dim):
            out[:, d] = np.bincount(seg_a, weights=vecs[:, d], minlength=len(words))
        self._counts[first:need] = np.bincount(seg_a, minlength=len(words))
        for k, w in enumerate(words):
            self._slot[w] = first + k
        return cleared

    def _gram_rows(self, boxed: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(which boxed word, input row) of every kept n-gram (``computeSubwords`` +
        ``pushHash``): ``minn`` to ``maxn`` characters of ``<word>``, never the lone ``<``
        or ``>``, hashed over their UTF-8 bytes modulo ``bucket``, then mapped through the
        pruning table (n-grams it lacks add nothing)."""
        cp = np.frombuffer("".join(boxed).encode("utf-32-le", "surrogatepass"), np.uint32)
        lens = np.fromiter(map(len, boxed), np.int64, len(boxed))
        ends = np.cumsum(lens)
        word_of = np.repeat(np.arange(len(boxed)), lens)
        end_of = ends[word_of]
        pos = np.arange(len(cp))
        start_of = end_of - lens[word_of]
        starts, sizes = [], []
        for n in range(self._minn, self._maxn + 1):
            ok = pos + n <= end_of
            if n == 1:
                ok &= (pos != start_of) & (pos + 1 != end_of)
            p = pos[ok]
            starts.append(p)
            sizes.append(np.full(len(p), n, np.int64))
        p = np.concatenate(starts)
        n = np.concatenate(sizes)
        cp = np.concatenate([cp, np.zeros(self._maxn, np.uint32)])
        cps = np.empty((len(p), self._maxn), np.uint32)
        for t in range(self._maxn):
            cps[:, t] = np.where(t < n, cp[p + t], 0)
        h = (_fnv1a_utf8(cps, n) % np.uint32(self._bucket)).astype(np.int64)
        seg = word_of[p]
        if self._prune_table is None:
            return seg, self._nwords + h
        j = self._prune_table[h]
        hit = j >= 0
        return seg[hit], self._nwords + j[hit].astype(np.int64)

    def predict(self, tokenized: Sequence[Sequence[str]]) -> list[tuple[str, float]]:
        """Top label and probability of each line, given as its whitespace-split tokens
        (without the end-of-line token, added here as fastText does)."""
        nlines = len(tokenized)
        if not nlines:
            return []
        flat = list(chain.from_iterable(tokenized))
        get = self._slot.get
        ids = np.fromiter(map(get, flat, repeat(-1, len(flat))), np.int64, len(flat))
        miss = np.flatnonzero(ids < 0).tolist()
        if miss:
            fresh = list(dict.fromkeys([flat[i] for i in miss]))
            if self._add_words(fresh):  # the cache was emptied: refill this batch's words
                self._add_words([t for t in dict.fromkeys(flat) if t not in self._slot],
                                may_clear=False)
                ids = np.fromiter(map(self._slot.__getitem__, flat), np.int64, len(flat))
            else:
                slot = self._slot
                ids[miss] = [slot[flat[i]] for i in miss]
        lens = np.fromiter(map(len, tokenized), np.int64, nlines)
        starts = np.zeros(nlines, np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        # the end-of-line token (slot 0) ends every line
        sums = np.repeat(self._sums[:1], nlines, axis=0)
        counts = np.full(nlines, self._counts[0], np.float32)
        has = lens > 0
        if ids.size:
            sums[has] += np.add.reduceat(self._sums[ids], starts[has], axis=0)
            counts[has] += np.add.reduceat(self._counts[ids], starts[has])
        hidden = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        f = 1.0 / (1.0 + np.exp(-(hidden @ self._output[: len(self.labels) - 1].T)))
        score = np.log(f + np.float32(1e-5)) @ self._go_right \
            + np.log(np.float32(1.0) - f + np.float32(1e-5)) @ self._go_left
        best = score.argmax(axis=1)
        probs = np.exp(score[np.arange(nlines), best])
        out = [(self.labels[b], float(p)) for b, p in zip(best.tolist(), probs.tolist())]
        for i in np.flatnonzero(counts == 0).tolist():  # fastText: no prediction without rows
            out[i] = ("", 0.0)
        return out
