"""A NumPy reader and predictor for quantized fastText classifiers such as ``lid.176.ftz``.

fastText's ``predict`` spends most of a language-ID call rebuilding the same character
n-grams of the same words and decoding their product-quantized rows, document after document.
This module reads the model file once and computes the same thing with a per-word cache: a
word's input rows (its own row, if in the dictionary, plus its hashed and pruned character
n-grams, exactly as fastText's ``Dictionary::getLine``) are summed the first time the word is
seen, and the sum (and how many rows it has) is kept. A batch of lines costs, per token, its
Python string hash (the key of a NumPy hash table probed for the whole batch at once); for
the batch's new words, their n-gram hashes, all at once (FNV-1a over UTF-8, every start
position extended one character per n-gram length); and one gather of all lines' cached
word sums, summed per line. The hidden vector is the mean of a line's rows, as in
``Model::computeHidden``; the output is fastText's hierarchical softmax (the Huffman tree of
``Loss::buildTree``, ``HierarchicalSoftmaxLoss``), scored for every leaf at once for a batch of
lines. Probabilities follow fastText's ``exp(sum(log(p + 1e-5)))``. No BLAS call (OpenBLAS's
worker threads cost more than the small products here) and no SciPy (importing
``scipy.sparse`` costs more CPU than a small build's language ID): the (node x dim) by
(dim x line) product is an ``einsum``, and the row sums are gathers and column sums.

Supported: supervised models with ``loss hs`` and ``wordNgrams 1`` (lid.176), input matrix
dense or product-quantized (with or without quantized norms), output dense or quantized.
Anything else raises ``ValueError``; the caller then uses the fastText bindings instead.
Sums are float32 like fastText's, in a different order, so probabilities agree to ~1e-6.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
_FNV_OFFSET = np.uint32(2166136261)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _word_keys(words: Sequence[str]) -> np.ndarray:
    """A 64-bit key per token: Python's ``hash`` (SipHash of the string's stored code units)
    mixed with its length, since strings stored with different code-unit sizes can hash alike
    (``'of'`` and ``'\\u666f'`` store the same two bytes). Distinct tokens share a key with
    probability ~2**-64 per pair; 0 marks an empty table cell, so a key of 0 becomes 1. The
    keys differ from one process to another (string hashes are salted per process)."""
    n = len(words)
    keys = np.fromiter(map(hash, words), np.int64, n).view(np.uint64)
    keys ^= np.fromiter(map(len, words), np.int64, n).view(np.uint64) * _MIX
    keys[keys == 0] = 1
    return keys


class _WordTable:
    """An open-addressing hash table (linear probing, at most 3/4 full; 12 bytes a cell) from
    nonzero 64-bit keys to int32 values, probed for a whole batch at once: the word cache's
    index (:func:`_word_keys` -> slot), the dictionary's (-> own row) and the kept n-gram
    buckets' (bucket + 1 -> row)."""

    def __init__(self, capacity: int = 1 << 14):
        self.keys = np.zeros(capacity, np.uint64)
        self.slots = np.zeros(capacity, np.int32)
        self.size = 0

    @classmethod
    def of(cls, keys: np.ndarray, slots: np.ndarray) -> _WordTable:
        """A table of these (nonzero, distinct) keys, at most half full."""
        table = cls(1 << max(4, (2 * len(keys)).bit_length()))
        table.add(keys, slots)
        return table

    def clear(self) -> None:
        self.keys[:] = 0
        self.size = 0

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Each key's slot, -1 where absent."""
        mask = np.uint64(len(self.keys) - 1)
        pos = (keys & mask).astype(np.int64)
        found = self.keys[pos]
        out = np.where(found == keys, self.slots[pos], -1)
        todo = np.flatnonzero((out < 0) & (found != 0))
        while todo.size:  # collisions: the next cells, until the key or an empty cell
            p = (pos[todo] + 1) & int(mask)
            pos[todo] = p
            found = self.keys[p]
            hit = found == keys[todo]
            out[todo[hit]] = self.slots[p[hit]]
            todo = todo[~hit & (found != 0)]
        return out

    def add(self, keys: np.ndarray, slots: np.ndarray) -> None:
        """Insert ``keys`` (distinct, not in the table) with their slots."""
        if 4 * (self.size + len(keys)) > 3 * len(self.keys):
            old = self.keys != 0
            old_keys, old_slots = self.keys[old], self.slots[old]
            cap = len(self.keys)
            while 4 * (self.size + len(keys)) > 3 * cap:
                cap *= 2
            self.keys = np.zeros(cap, np.uint64)
            self.slots = np.zeros(cap, np.int32)
            self.size = 0
            self.add(old_keys, old_slots)
        mask = len(self.keys) - 1
        pos = (keys & np.uint64(mask)).astype(np.int64)
        todo = np.arange(len(keys))
        while todo.size:
            p = pos[todo]
            free = self.keys[p] == 0
            # the keys aiming at a free cell are all written there: one of them stays (the
            # one read back); the others, and those aiming at a taken cell, move on
            cand, cells = todo[free], p[free]
            self.keys[cells] = keys[cand]
            won = self.keys[cells] == keys[cand]
            self.slots[cells[won]] = slots[cand[won]]
            left = np.ones(len(keys), bool)
            left[cand[won]] = False
            todo = todo[left[todo]]
            pos[todo] = (pos[todo] + 1) & mask
        self.size += len(keys)


def _utf8_bytes(cp: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Each code point's UTF-8 bytes as fastText's hash reads them (``int8_t``, sign-extended
    to ``uint32``): the lead byte of every code point; the positions of the multi-byte ones,
    longest encodings first; and for k = 1, 2, 3 the k-th continuation byte of the first
    ``len(cont[k - 1])`` of those positions (the ones that have it)."""
    multi = np.flatnonzero(cp >= 0x80)
    lead = cp.copy()
    if not multi.size:
        return lead, multi, []
    c = cp[multi]
    n = 2 + (c >= 0x800).astype(np.uint32) + (c >= 0x10000)
    order = np.argsort(-n.astype(np.int8), kind="stable")
    multi, c, n = multi[order], c[order], n[order]
    lead[multi] = np.select([n == 2, n == 3], [0xC0 | (c >> 6), 0xE0 | (c >> 12)],
                            0xF0 | (c >> 18)) | 0xFFFFFF00
    cont = []
    for k in (1, 2, 3):
        has = n > k
        shift = 6 * (n[has] - 1 - k)
        cont.append((0xFFFFFF80 | ((c[has] >> shift) & 0x3F)).astype(np.uint32))
    return lead, multi, cont


class FastTextLID:
    """Predict the top label and its probability for many lines (see the module docstring).

    ``max_cached_words`` bounds the word cache (per word: ``dim + 1`` float32s and 1.3 to 2.7
    hash-table cells of 12 bytes; 85-100 bytes for lid.176; the tokens themselves are not
    kept): a batch that leaves more words than that empties it afterwards, and the next
    batches refill it.
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
        inp = _read_matrix(r, quant_input)
        qout = r.take("?")
        self._output = _read_matrix(r, qout)
        if inp.shape[1] != dim or self._output.shape != (nlabels, dim):
            raise ValueError(f"{path}: matrix shapes do not match the model's arguments")
        self._nwords, self._bucket, self._minn, self._maxn = nwords, bucket, minn, maxn
        # pruned models keep a few n-gram buckets (lid.176: 42,765 of 2M): a bitset of the
        # kept ones (256 kB, fits in cache) and their rows by bucket + 1 in a hash table
        # (0.8 MB); unpruned models use the bucket itself
        self._prune_bits: np.ndarray | None = None
        if pruneidx_size >= 0:
            kept = np.fromiter(prune.keys(), np.int64, len(prune))
            self._prune = _WordTable.of(kept.astype(np.uint64) + np.uint64(1),
                                        np.fromiter(prune.values(), np.int64, len(prune)))
            bits = np.zeros(bucket, bool)
            bits[kept] = True
            self._prune_bits = np.packbits(bits, bitorder="little")
        self._dict_words = list(words)
        self._dict_ids = np.fromiter(words.values(), np.int64, len(words))  # their rows
        self.labels = [n.removeprefix(_LABEL) for n in label_names]
        self._build_tree(label_counts)
        self._inner = np.ascontiguousarray(self._output[: nlabels - 1])  # inner nodes' rows
        self._dim = dim
        # each input row with a 1 appended: a sum of these rows carries its row count
        self._input = np.hstack([inp, np.ones((len(inp), 1), np.float32)])
        # word cache: token key -> slot; _vec[slot] = its rows summed, then how many rows.
        # Slot 0 is the end-of-line token (its own row), which ends every line; the last row
        # is never a slot and stays zero (the padding of _line_sums).
        self._vec = np.zeros((4096, dim + 1), np.float32)
        eos = words.get(_EOS)
        if eos is not None:
            self._vec[0] = self._input[eos]
        self._index_keys()

    def _index_keys(self) -> None:
        """The parts keyed by :func:`_word_keys`, whose string hashes differ from one process
        to another: the dictionary's words by key (to find a new token's own row) and an
        empty word cache. Rebuilt after unpickling."""
        self._dict = _WordTable.of(_word_keys(self._dict_words), self._dict_ids)
        self._eos_key = _word_keys([_EOS])
        self._table = _WordTable()
        self._clear_cache()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_table", "_dict", "_eos_key")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._index_keys()

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
        # (left child) of the inner nodes' f: per leaf, its path's rows of the stacked
        # [right | left] node logs, ascending, padded with row 2 * (osz - 1) (zeros)
        paths = []
        for leaf_i in range(osz):
            c, path = leaf_i, []
            while parent[c] != -1:
                p = parent[c] - osz
                path.append(p if binary[c] else osz - 1 + p)
                c = parent[c]
            paths.append(sorted(path))
        self._paths = np.full((osz, max(map(len, paths), default=0)), 2 * (osz - 1), np.intp)
        for leaf_i, path in enumerate(paths):
            self._paths[leaf_i, : len(path)] = path

    # ---------------------------------------------------------------- input layer
    def _decode(self, words: list[str], keys: np.ndarray, first: int) -> None:
        """Sum the rows of ``words`` (their :func:`_word_keys` ``keys``; slots ``first``,
        ``first + 1``, ...) into ``_vec``.

        A token's rows (``Dictionary::getLine``): its own row if it is in the dictionary, then
        the rows of the kept n-grams of ``<token>``; a ``__label__`` token and the empty word
        add nothing (the end-of-line token, slot 0, is never decoded here).
        """
        k = len(words)
        if first + k >= len(self._vec):  # doubling, but not past the cache's bound
            rows = max(first + k + 1, min(2 * len(self._vec), self.max_cached_words + 2))
            grow = np.zeros((rows, self._dim + 1), np.float32)
            grow[: len(self._vec)] = self._vec
            self._vec = grow
        own = self._dict.find(keys)  # the word's own row, -1 if not in the dictionary
        seg, rows = [np.flatnonzero(own >= 0)], [own[own >= 0].astype(np.int64)]
        if self._maxn > 0:
            g_seg, g_row = self._gram_rows(words)
            seg.append(g_seg)
            rows.append(g_row)
        seg_a, row_a = np.concatenate(seg), np.concatenate(rows)
        # each word's input rows (with their trailing 1) summed, a column at a time (seg_a is
        # not sorted; bincount sums in float64, then rounds once to float32)
        vals = self._input.take(row_a, axis=0)
        out = self._vec[first: first + k]
        for j in range(self._dim + 1):
            out[:, j] = np.bincount(seg_a, weights=vals[:, j], minlength=k)

    def _gram_rows(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(which word, input row) of every kept n-gram of every word (``computeSubwords`` +
        ``pushHash``): ``minn`` to ``maxn`` characters of ``<word>``, never the lone ``<`` or
        ``>``, hashed over their UTF-8 bytes modulo ``bucket``, then mapped through the pruning
        table (n-grams it lacks add nothing). All words at once: ``h[q]`` holds the hash of the
        ``g`` characters from position ``q`` of the concatenated ``<w1><w2>...``, extended by one
        character per step ``g``; an n-gram counts if it ends inside its word."""
        boxed = "<" + "><".join(words) + ">"
        cp = np.frombuffer(boxed.encode("utf-32-le", "surrogatepass"), np.uint32)
        blen = np.fromiter(map(len, words), np.int64, len(words)) + 2
        n = len(cp)
        word_of = np.repeat(np.arange(len(words)), blen)
        # characters from each position to the end of its word ('>' included)
        left = np.repeat(np.cumsum(blen), blen) - np.arange(n)
        none = blen == 2  # the empty word has no n-grams, nor do labels
        if "<__label__" in boxed:
            none |= np.fromiter((w.startswith(_LABEL) for w in words), bool, len(words))
        if none.any():
            left[none[word_of]] = 0
        lead, multi, cont = _utf8_bytes(cp)
        h = np.full(n, _FNV_OFFSET, np.uint32)
        segs, rows = [], []
        for g in range(1, min(self._maxn, n) + 1):
            m = n - g + 1  # positions with g characters left in the array
            hv = h[:m]
            hv ^= lead[g - 1:]
            hv *= _PRIME
            if multi.size:  # the n-grams whose g-th character takes more than one byte
                q = multi - (g - 1)
                for c in cont:
                    qk = q[: len(c)]
                    ok = qk >= 0
                    qk = qk[ok]
                    h[qk] = (h[qk] ^ c[ok]) * _PRIME
            if g < self._minn:
                continue
            ok = left[:m] >= g
            if g == 1:  # fastText skips the lone '<' and '>'
                ok &= (left[:m] != blen[word_of[:m]]) & (left[:m] != 1)
            q = np.flatnonzero(ok)
            b = h[q] % np.uint32(self._bucket)
            if self._prune_bits is not None:  # pruned away: add nothing
                kept = (self._prune_bits[b >> 3] >> (b & 7).astype(np.uint8)) & 1 == 1
                q, b = q[kept], b[kept]
            segs.append(q)
            rows.append(b)
        if not segs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        b = np.concatenate(rows).astype(np.int64)
        if self._prune_bits is not None:
            b = self._prune.find(b.astype(np.uint64) + np.uint64(1)).astype(np.int64)
        return word_of[np.concatenate(segs)], self._nwords + b

    def predict_lines(self, lines: Sequence[str]) -> list[tuple[str, float]]:
        """Top label and probability of each line, its words split at whitespace exactly as
        ``str.split()`` splits them (fastText also splits at NUL: callers replace it).

        Arrow splits the whole batch and finds its distinct words (dictionary encoding), so
        Python touches each distinct word of a batch once (a quarter of its tokens), not
        every token."""
        if not lines:
            return []
        try:
            # stripped: Arrow 25's split decodes one character past a whitespace run, also
            # past the string's end, and keeps trailing whitespace in the last word when the
            # bytes there are not UTF-8 (4 of the first 100k build-corpus documents)
            split = pc.utf8_split_whitespace(pa.array([line.strip() for line in lines],
                                                      pa.large_string()))
        except UnicodeEncodeError:  # lone surrogates: Arrow holds valid UTF-8 only
            return self.predict([line.split() for line in lines])
        enc = pc.dictionary_encode(split.flatten())
        # an empty line splits into one empty word, which has no rows
        ids = self._slots(enc.dictionary.to_pylist())[enc.indices.to_numpy()]
        offsets = split.offsets.to_numpy()
        return self._score(ids, offsets - offsets[0])

    def predict(self, tokenized: Sequence[Sequence[str]]) -> list[tuple[str, float]]:
        """Top label and probability of each line, given as its whitespace-split tokens
        (without the end-of-line token, added here as fastText does; a literal ``</s>`` token
        ends the line there, as in fastText's ``getLine``)."""
        indptr = np.zeros(len(tokenized) + 1, np.int64)
        np.cumsum(np.fromiter(map(len, tokenized), np.int64, len(tokenized)), out=indptr[1:])
        return self._score(self._slots(list(chain.from_iterable(tokenized))), indptr)

    def _slots(self, words: list[str]) -> np.ndarray:
        """Each word's slot in the word cache, decoding and adding the words not in it."""
        keys = _word_keys(words)
        ids = self._table.find(keys)
        miss = np.flatnonzero(ids < 0)
        if miss.size:  # new words: decode them, then index them
            new, at, inv = np.unique(keys[miss], return_index=True, return_inverse=True)
            first = self._table.size
            slots = np.arange(first, first + len(new))
            self._decode([words[i] for i in miss[at].tolist()], new, first)
            self._table.add(new, slots)
            ids[miss] = slots[inv]
        return ids

    def _score(self, ids: np.ndarray, indptr: np.ndarray) -> list[tuple[str, float]]:
        """Top label and probability of each line: its tokens' slots are
        ``ids[indptr[i]:indptr[i + 1]]``."""
        nlines = len(indptr) - 1
        if not nlines:
            return []
        eos = np.flatnonzero(ids == 0)
        if eos.size:
            ids, indptr = _cut_at_eos(ids, indptr, eos)
        sums = _line_sums(self._vec, ids, indptr)  # each line's rows summed (and counted)
        sums += self._vec[0]  # the end-of-line token
        if self._table.size > self.max_cached_words:
            self._clear_cache()
        dim = self._dim
        counts = sums[:, dim]
        hidden = (sums[:, :dim] / np.maximum(counts, 1)[:, None]).astype(np.float32)
        # per inner node and line (nodes x lines): f = sigmoid(output row . hidden), then
        # log(f + 1e-5) and log(1 - f + 1e-5) stacked (and a row of zeros), summed along each
        # leaf's path. einsum without ``optimize`` never calls BLAS (its worker threads cost
        # more than this small product) and sums over dim in order
        f = np.einsum("nd,dl->nl", self._inner, np.ascontiguousarray(hidden.T))
        f = 1.0 / (1.0 + np.exp(-f))
        inner = len(f)
        logs = np.zeros((2 * inner + 1, nlines), np.float32)
        logs[:inner] = f
        np.subtract(1.0, f, out=logs[inner: 2 * inner])
        np.log(logs[: 2 * inner] + np.float32(1e-5), out=logs[: 2 * inner])
        score = logs[self._paths].sum(axis=1)  # leaves x lines
        best = score.argmax(axis=0)
        probs = np.exp(score[best, np.arange(nlines)])
        out = [(self.labels[b], float(p)) for b, p in zip(best.tolist(), probs.tolist())]
        for i in np.flatnonzero(counts == 0).tolist():  # fastText: no prediction without rows
            out[i] = ("", 0.0)
        return out

    def _clear_cache(self) -> None:
        self._table.clear()
        self._table.add(self._eos_key, np.zeros(1, np.int64))


def _line_sums(vec: np.ndarray, ids: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Per line ``i``, the sum of the rows ``vec[ids[indptr[i]:indptr[i + 1]]]`` (zeros for an
    empty line), added in token order: the rows are gathered into a (position x line x column)
    grid padded with ``vec``'s last row, which must be zero, and the grid is summed over
    positions (the outer axis: a running sum, vectorized over lines and columns)."""
    lens = np.diff(indptr)
    nlines, n = len(lens), int(indptr[-1])
    grid = np.full((int(lens.max()) if nlines else 0, nlines), len(vec) - 1, np.intp)
    line = np.repeat(np.arange(nlines), lens)
    grid[np.arange(n) - indptr[line], line] = ids[:n]
    return vec.take(grid, axis=0).sum(axis=0)


def _cut_at_eos(ids: np.ndarray, indptr: np.ndarray, eos: np.ndarray):
    """Drop each line's tokens from its first literal end-of-line token (slot 0) on."""
    line = np.searchsorted(indptr, eos, side="right") - 1
    lines, at = np.unique(line, return_index=True)
    keep = np.ones(len(ids), bool)
    lens = np.diff(indptr)
    for i, p in zip(lines.tolist(), eos[at].tolist()):
        keep[p: indptr[i + 1]] = False
        lens[i] = p - indptr[i]
    new_ptr = np.zeros_like(indptr)
    np.cumsum(lens, out=new_ptr[1:])
    return ids[keep], new_ptr
