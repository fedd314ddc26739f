"""MinHash signatures, vectorized with numpy (plain Python, no Beam).

Pipeline for one document::

    text -> normalize -> tokens -> 64-bit token hashes -> n-gram shingle hashes -> signature

Normalization (documented contract, part of the signature definition):

* word shingles (default): Unicode NFKC, ``str.casefold``, then the tokens are the maximal runs
  of word characters (regex ``\\w+``); punctuation and whitespace only separate tokens. A
  shingle is ``n`` consecutive tokens (default ``n = 5``). A document with at least one but
  fewer than ``n`` tokens has a single shingle made of all its tokens.
* character shingles (``char_ngrams=True``): NFKC, casefold, every run of whitespace becomes
  one space and the text is stripped; a shingle is ``n`` consecutive code points.
* a document with no token (empty or punctuation only) has no shingle; its signature is all
  ``0xFFFFFFFF`` and :func:`estimate_jaccard` treats two such signatures as unrelated.

Hashing (64-bit, seeded, all on whole batches in numpy). A word token's hash is
``mix64(len * C + sum_j mix64(cp_j ^ seed) R^j mod 2^64)`` over its code points ``cp_j`` (a
polynomial hash with a seeded odd radix ``R``, computed for all tokens of a batch from one prefix
sum; ``mix64`` = the splitmix64 finalizer); a character token's hash is ``mix64(cp ^ seed)``.
A shingle hash is ``mix64(n ^ (((t_1 C + t_2) C + ... + t_n) C))`` over its token hashes with
an odd constant ``C`` (order-sensitive). Permutation ``i`` is the multiply-add map
``x -> a_i * x + b_i (mod 2^64)`` with ``a_i`` odd; the signature keeps the top 32 bits of the
minimum (the top bits of a multiply-add are the well-mixed ones, as in Dietzfelbinger's
multiply-shift hashing; the top 32 bits of the minimum are the minimum of the top 32 bits). ``a_i, b_i`` come from a splitmix64
stream of ``seed``, pure integer arithmetic, so a signature is identical on every machine
and numpy version. Signatures are ``uint32`` arrays of length ``num_perm``.

Permutations (``MinHashConfig.permutations``): the default ``"rensa"`` hands the
concatenated 64-bit shingle hashes of a batch and their document offsets to rensa's
``RMinHash.digest_matrix_from_flat_token_hashes`` (Rust, MIT, pinned in pyproject.toml),
seeded with ``seed``; ``"numpy"`` keeps the multiply-add permutations described above. Both
estimate Jaccard equally well (``bench/bench_minhash.py --quality-pairs``:
RMSE vs exact Jaccard 0.016 rensa, 0.018 numpy, 0.018 datasketch on 2000 real pairs); rensa is
~1.6x faster per core end to end.

Speed: everything after tokenization runs once per *batch* of documents: one concatenated
array of shingle hashes, each block of permutations applied to all of it at once, and
``np.minimum.reduceat`` over the document boundaries. See ``bench/bench_minhash.py``.
"""

from __future__ import annotations

import re
import typing
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

MASK64 = (1 << 64) - 1
EMPTY_VALUE = np.uint32(0xFFFFFFFF)
_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")

# splitmix64 constants (Steele, Lea, Flood 2014: "Fast splittable pseudorandom number generators").
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
# Odd multipliers for combining token hashes into a shingle hash (arbitrary odd 64-bit constants).
_COMBINE = np.uint64(0x9FB21C651E98DF25)


def _splitmix_stream(seed: int, count: int) -> list[int]:
    """``count`` 64-bit values of the splitmix64 sequence started at ``seed`` (pure Python ints)."""
    out = []
    state = seed & MASK64
    for _ in range(count):
        state = (state + _GOLDEN) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        out.append(z ^ (z >> 31))
    return out


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer applied elementwise to a ``uint64`` array (returns a new array)."""
    x = x ^ (x >> np.uint64(30))
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def normalize_words(text: str) -> list[str]:
    """Tokens used for word shingles (see the module docstring)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def normalize_chars(text: str) -> str:
    """Text used for character shingles (see the module docstring)."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


Permutations = Literal["rensa", "numpy"]
PERMUTATIONS = typing.get_args(Permutations)


@dataclass(frozen=True)
class MinHashConfig:
    """The signature definition. Each field's metadata (bounds, description) is what the
    ``minhash_dedup`` stage's config accepts (``pipelines.stages.base.params_from``); the
    checks in ``__post_init__`` are the wider range this module computes."""

    num_perm: int = field(default=128, metadata={
        "ge": 16, "le": 1024, "description": "MinHash permutations."})
    ngram: int = field(default=5, metadata={
        "ge": 1, "le": 64, "description": "Shingle size (words, or characters)."})
    char_ngrams: bool = field(default=False, metadata={
        "description": "Character instead of word shingles."})
    seed: int = field(default=1, metadata={"ge": 0, "description": "Seed of the hash functions."})
    # how the num_perm min-wise hashes of the shingle hashes are computed (both are part of
    # the signature definition: signatures, band keys and LSHBloom indexes differ between them)
    # * "rensa": rensa's RMinHash (Rust) over our 64-bit shingle hashes, seeded with ``seed``
    # * "numpy": the multiply-add permutations below (datamill <= this change)
    permutations: Permutations = field(default="rensa", metadata={
        "description": "MinHash permutation family: rensa's RMinHash (Rust, faster) or numpy "
        "multiply-add (datamill's earlier signatures; use it to extend an older LSHBloom "
        "index)."})

    def __post_init__(self):
        if self.permutations not in PERMUTATIONS:
            raise ValueError(
                f"permutations must be one of {PERMUTATIONS} (got {self.permutations!r})")
        if not 2 <= self.num_perm <= 4096:
            raise ValueError(f"num_perm must be in [2, 4096] (got {self.num_perm})")
        if not 1 <= self.ngram <= 64:
            raise ValueError(f"ngram must be in [1, 64] (got {self.ngram})")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (got {self.seed})")


class MinHasher:
    """Computes shingle hashes and MinHash signatures for batches of texts.

    >>> mh = MinHasher(MinHashConfig(num_perm=64))
    >>> sigs = mh.signatures(["a b c d e f", "a b c d e g"])
    >>> sigs.shape, sigs.dtype
    ((2, 64), dtype('uint32'))
    """

    _BLOCK_ELEMS = 1 << 19  # permutations x shingles per numpy block (4 MiB of uint64)

    def __init__(self, config: MinHashConfig | None = None):
        self.config = config or MinHashConfig()
        c = self.config
        vals = _splitmix_stream(c.seed, 2 * c.num_perm + 1)
        self._token_seed = vals[0]
        self.a = np.array([v | 1 for v in vals[1 : c.num_perm + 1]], dtype=np.uint64)
        self.b = np.array(vals[c.num_perm + 1 :], dtype=np.uint64)
        self._seed64 = np.uint64(self._token_seed)
        self._radix = vals[0] | 1  # odd, hence invertible mod 2^64
        self._pow = np.ones(1, dtype=np.uint64)
        self._inv_powers = np.ones(1, dtype=np.uint64)
        self._char_table = mix64(np.arange(0x10000, dtype=np.uint64) ^ self._seed64)

    def _powers(self, n: int) -> np.ndarray:
        """R^0 .. R^(n-1) mod 2^64 (and the inverse powers in ``_inv_powers``), cached; a view."""
        if self._pow.size < n:
            size = max(n, 2 * self._pow.size)
            r = np.full(size, np.uint64(self._radix), dtype=np.uint64)
            r[0] = 1
            self._pow = np.cumprod(r, dtype=np.uint64)
            r[1:] = np.uint64(pow(self._radix, -1, 1 << 64))
            self._inv_powers = np.cumprod(r, dtype=np.uint64)
        return self._pow[:n]

    def _char_values(self, cps: np.ndarray) -> np.ndarray:
        out = self._char_table[np.minimum(cps, 0xFFFF)]
        astral = np.flatnonzero(cps > 0xFFFF)
        if astral.size:
            out[astral] = mix64(cps[astral].astype(np.uint64) ^ self._seed64)
        return out

    # ------------------------------------------------------------------ tokens
    def _token_hashes_concat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """64-bit hashes of every token of the batch, concatenated, and per-document counts.

        Word tokens: the batch is normalized with two C-speed passes per text (NFKC+casefold,
        non-word runs -> one space), joined with NUL separators and decoded once into a code
        point array; a token's hash is ``mix64(len + sum_j mix64(cp_j << 32 | j))`` over its code
        points ``cp_j`` at positions ``j``: the set of (code point, position) pairs determines
        the word, so distinct words collide only with probability ~2^-64. Character tokens are
        ``mix64(cp ^ seed)`` of each code point.
        """
        if self.config.char_ngrams:
            parts = [normalize_chars(t) for t in texts]
            lens = np.array([len(p) for p in parts], dtype=np.int64)
            joined = "".join(parts)
            cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
            return mix64(cps ^ self._seed64), lens
        parts = [unicodedata.normalize("NFKC", t).casefold() for t in texts]
        lens = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
        cps = np.frombuffer("".join(parts).encode("utf-32-le"), dtype=np.uint32)
        n_cp = cps.size
        if n_cp == 0:
            return np.zeros(0, dtype=np.uint64), np.zeros(len(texts), dtype=np.int64)
        is_word = _is_word_char(cps)
        # token = maximal run of word characters inside one document
        prev = np.empty_like(is_word)
        prev[0] = False
        prev[1:] = is_word[:-1]
        nxt = np.empty_like(is_word)
        nxt[-1] = False
        nxt[:-1] = is_word[1:]
        bounds = np.cumsum(lens)
        nonempty = lens > 0
        prev[(bounds - lens)[nonempty]] = False
        nxt[(bounds - 1)[nonempty]] = False
        starts = np.flatnonzero(is_word & ~prev)
        if starts.size == 0:
            return np.zeros(0, dtype=np.uint64), np.zeros(len(texts), dtype=np.int64)
        ends = np.flatnonzero(is_word & ~nxt) + 1
        # token hash = sum_j v(cp_{start+j}) R^j (mod 2^64): from one prefix sum over the batch,
        # (S[end] - S[start]) * R^-start, with v(cp) = mix64(cp ^ seed) (a table for the BMP)
        vals = self._char_values(cps)
        vals *= self._powers(n_cp)
        prefix = np.empty(n_cp + 1, dtype=np.uint64)
        prefix[0] = 0
        np.cumsum(vals, out=prefix[1:])
        sums = (prefix[ends] - prefix[starts]) * self._inv_powers[starts]
        tok_len = (ends - starts).astype(np.uint64)
        hashes = mix64(sums + tok_len * _COMBINE)
        counts = np.diff(np.searchsorted(starts, np.concatenate(([0], bounds))))
        return hashes, counts

    # ------------------------------------------------------------------ shingles
    def _shingles_concat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """All shingle hashes of the batch, concatenated, and per-document counts."""
        n = self.config.ngram
        flat, lens = self._token_hashes_concat(texts)
        if len(texts) == 0 or flat.size == 0:
            return np.zeros(0, dtype=np.uint64), np.zeros(len(texts), dtype=np.int64)
        total = flat.size
        starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
        # window k covers flat[k : k + n]; keep the windows that lie inside one document
        m = total - n + 1
        counts = np.maximum(lens - n + 1, 0)
        if m > 0:
            h = _combine_windows(flat, n, m)
            idx = np.repeat(starts, counts) + _ragged_arange(counts)
            h = h[idx]
        else:
            h = np.zeros(0, dtype=np.uint64)
        # documents with 1..n-1 tokens: one shingle made of all their tokens
        short = np.flatnonzero((lens > 0) & (lens < n))
        if short.size:
            offs = np.concatenate(([0], np.cumsum(counts)))
            pieces = []
            for i in range(len(texts)):
                if lens[i] > 0 and lens[i] < n:
                    t = flat[starts[i] : starts[i] + lens[i]]
                    pieces.append(_combine_windows(t, t.size, 1))
                elif counts[i]:
                    pieces.append(h[offs[i] : offs[i + 1]])
            h = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint64)
            counts = np.where((lens > 0) & (lens < n), 1, counts)
        return h, counts

    def shingle_sets(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Sorted unique 64-bit shingle hashes of each text (for exact Jaccard)."""
        h, counts = self._shingles_concat(texts)
        offs = np.concatenate(([0], np.cumsum(counts)))
        return [np.unique(h[offs[i] : offs[i + 1]]) for i in range(len(texts))]

    # ------------------------------------------------------------------ signatures
    def signatures_from_shingles(self, h: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Signatures (``uint32``, shape ``(docs, num_perm)``) from concatenated shingle hashes."""
        ndocs = len(counts)
        P = self.config.num_perm
        out = np.full((ndocs, P), EMPTY_VALUE, dtype=np.uint32)
        nonempty = np.nonzero(counts > 0)[0]
        if nonempty.size == 0:
            return out
        if self.config.permutations == "rensa":
            return _rensa_signatures(h, counts, P, self.config.seed, out, nonempty)
        offs = np.concatenate(([0], np.cumsum(counts)))
        starts = offs[:-1][nonempty]
        perm_block = max(1, min(8, P, self._BLOCK_ELEMS // max(1, h.size)))
        buf = np.empty((perm_block, h.size), dtype=np.uint64)
        mins = np.empty((P, nonempty.size), dtype=np.uint64)
        for p0 in range(0, P, perm_block):
            p1 = min(P, p0 + perm_block)
            t = buf[: p1 - p0]
            np.multiply(self.a[p0:p1, None], h[None, :], out=t)
            t += self.b[p0:p1, None]
            mins[p0:p1] = np.minimum.reduceat(t, starts, axis=1)
        out[nonempty] = (mins >> np.uint64(32)).astype(np.uint32).T
        return out

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """MinHash signatures of ``texts``: ``uint32`` array of shape ``(len(texts), num_perm)``."""
        h, counts = self._shingles_concat(texts)
        return self.signatures_from_shingles(h, counts)

    def signatures_and_shingles(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        h, counts = self._shingles_concat(texts)
        offs = np.concatenate(([0], np.cumsum(counts)))
        sets = [np.unique(h[offs[i] : offs[i + 1]]) for i in range(len(texts))]
        return self.signatures_from_shingles(h, counts), sets

    def signature(self, text: str) -> np.ndarray:
        return self.signatures([text])[0]


def _rensa_signatures(h, counts, num_perm, seed, out, nonempty):
    """rensa ``RMinHash`` (Rust, one pass per shingle) over the concatenated shingle hashes;
    documents without shingles keep the all-``EMPTY_VALUE`` row."""
    import rensa

    offs = np.concatenate(([0], np.cumsum(counts))).astype(np.uint64)
    m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
        np.ascontiguousarray(h, dtype=np.uint64), offs, num_perm, seed)
    rows = np.asarray(m.to_rows(), dtype=np.uint32)
    out[nonempty] = rows[nonempty]
    return out


_BMP_WORD: np.ndarray | None = None


def _is_word_char(cps: np.ndarray) -> np.ndarray:
    """Vectorized ``re`` ``\\w`` test on an array of code points (table for the BMP)."""
    global _BMP_WORD
    if _BMP_WORD is None:
        table = np.zeros(0x10000, dtype=bool)
        chars = "".join(chr(i) if not 0xD800 <= i < 0xE000 else " " for i in range(0x10000))
        for m in _WORD.finditer(chars):
            table[m.start() : m.end()] = True
        _BMP_WORD = table
    # ASCII by comparisons (unsigned wrap-around), the rest by table lookup
    out = ((cps | np.uint32(32)) - np.uint32(97) < 26) | (cps - np.uint32(48) < 10)
    out |= cps == 95
    high = np.flatnonzero(cps >= 128)
    if high.size:
        out[high] = _BMP_WORD[np.minimum(cps[high], 0xFFFF)]
    astral = np.flatnonzero(cps > 0xFFFF)
    if astral.size:
        uniq = np.unique(cps[astral])
        ok = {int(c) for c in uniq if _WORD.fullmatch(chr(int(c)))}
        out[astral] = np.isin(cps[astral], np.fromiter(ok, dtype=np.uint32, count=len(ok)))
    return out


def _combine_windows(flat: np.ndarray, n: int, m: int) -> np.ndarray:
    """Order-sensitive hash of the ``m`` windows ``flat[k : k + n]`` (k < m)."""
    h = flat[:m] * _COMBINE
    for k in range(1, n):
        h += flat[k : k + m]
        h *= _COMBINE
    return mix64(h ^ np.uint64(n))


def _ragged_arange(counts: np.ndarray) -> np.ndarray:
    """concatenate([arange(c) for c in counts]) without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    reset = np.repeat(ends - counts, counts)
    return np.arange(total, dtype=np.int64) - reset


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of equal signature positions; 0.0 when either document had no shingle."""
    if sig_a.shape != sig_b.shape:
        raise ValueError(f"signature shapes differ: {sig_a.shape} vs {sig_b.shape}")
    if np.all(sig_a == EMPTY_VALUE) or np.all(sig_b == EMPTY_VALUE):
        return 0.0
    return float(np.count_nonzero(sig_a == sig_b)) / sig_a.size


def exact_jaccard(set_a: np.ndarray, set_b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique hash arrays (0.0 when both are empty)."""
    if set_a.size > set_b.size:
        set_a, set_b = set_b, set_a
    if set_a.size == 0:
        return 0.0
    # each element of the smaller set looked up in the larger one: ~2x np.intersect1d's speed
    # on ~400-shingle documents (it concatenates and sorts both)
    at = np.searchsorted(set_b, set_a)
    at[at == set_b.size] = 0
    inter = int(np.count_nonzero(set_b[at] == set_a))
    return inter / (set_a.size + set_b.size - inter)
