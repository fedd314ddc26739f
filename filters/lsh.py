"""LSH banding for MinHash signatures and the LSHBloom index (plain Python + numpy, no Beam).

* :func:`optimal_params` picks the number of bands ``b`` and rows per band ``r`` for a Jaccard
  threshold ``t`` by minimizing ``w_fp * FP + w_fn * FN``, the weighted areas under the
  S-curve ``P(s) = 1 - (1 - s^r)^b`` left of ``t`` (false positives) and above it right of ``t``
  (false negatives), over all ``b * r <= num_perm``; the same criterion as datasketch's
  ``MinHashLSH`` (Leskovec, Rajaraman, Ullman, *Mining of Massive Datasets*, ch. 3).
* :func:`band_hashes` turns signatures into ``b`` 64-bit band keys per document;
  :func:`bucket_pairs` the documents sharing a key (one LSH bucket) into candidate
  pairs, and :func:`component_arrays` verified pairs into clusters (connected components).
* :class:`BloomIndex` is the LSHBloom index (Khan et al. 2024, "LSHBloom: Memory-efficient,
  Extreme-scale Document Deduplication", arXiv:2411.04257): one Bloom filter per band instead
  of a hash table of keys, so a document costs a few bytes per band and the index cannot list
  candidates, only answer "was one of my band keys inserted before?". Bits are a packed numpy
  array; the ``k`` probe positions come from the 64-bit band key by double hashing
  (Kirsch & Mitzenmacher 2006). Filters are sized from the expected number of documents ``n``
  and the per-band false-positive rate ``p``: ``m = ceil(-n ln p / (ln 2)^2)`` bits and
  ``k = round(m / n * ln 2)`` probes. The index saves to / loads from one ``.npz`` stream with its
  parameters, so a later run can deduplicate a new crawl against it.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass
from typing import BinaryIO

import numpy as np

from filters.minhash import EMPTY_VALUE, MinHashConfig, mix64

_BAND_MULT = np.uint64(0xD6E8FEB86659FD93)
FORMAT_VERSION = 1


def _integrate(f, lo: float, hi: float, n: int = 2001) -> float:
    """Simpson's rule on ``n`` (odd) points; the S-curve is smooth, 2001 points is plenty."""
    if hi <= lo:
        return 0.0
    x = np.linspace(lo, hi, n)
    y = f(x)
    h = (hi - lo) / (n - 1)
    return float(h / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum()))


def candidate_probability(s: float | np.ndarray, b: int, r: int) -> float | np.ndarray:
    """P(two documents with Jaccard ``s`` share at least one band) = 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(s, dtype=float) ** r) ** b


def false_positive_area(threshold: float, b: int, r: int) -> float:
    return _integrate(lambda s: candidate_probability(s, b, r), 0.0, threshold)


def false_negative_area(threshold: float, b: int, r: int) -> float:
    return _integrate(lambda s: 1.0 - candidate_probability(s, b, r), threshold, 1.0)


def optimal_params(
    threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5
) -> tuple[int, int]:
    """(b, r) minimizing ``fp_weight * FP area + fn_weight * FN area`` with ``b * r <= num_perm``."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1) (got {threshold})")
    if num_perm < 2:
        raise ValueError(f"num_perm must be >= 2 (got {num_perm})")
    best, best_err = (1, 1), math.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            err = fp_weight * false_positive_area(
                threshold, b, r
            ) + fn_weight * false_negative_area(threshold, b, r)
            if err < best_err:
                best, best_err = (b, r), err
    return best


def lsh_summary(threshold: float, num_perm: int, b: int, r: int) -> dict[str, float | int]:
    """Facts about a banding, for stats: b, r, P(candidate) at threshold, FP/FN areas."""
    return {
        "num_perm": num_perm,
        "bands": b,
        "rows": r,
        "threshold": threshold,
        "p_candidate_at_threshold": float(candidate_probability(threshold, b, r)),
        "fp_area": false_positive_area(threshold, b, r),
        "fn_area": false_negative_area(threshold, b, r),
    }


def band_hashes(sigs: np.ndarray, b: int, r: int) -> np.ndarray:
    """``(docs, b)`` ``uint64`` band keys: band ``i`` hashes rows ``[i*r, (i+1)*r)`` and ``i``."""
    sigs = np.atleast_2d(sigs)
    if b * r > sigs.shape[1]:
        raise ValueError(f"b * r = {b * r} exceeds the signature length {sigs.shape[1]}")
    bands = sigs[:, : b * r].astype(np.uint64).reshape(sigs.shape[0], b, r)
    h = np.broadcast_to(np.arange(b, dtype=np.uint64) + np.uint64(1), (sigs.shape[0], b)).copy()
    for j in range(r):
        h = mix64(h * _BAND_MULT + bands[:, :, j])
    return h


def has_shingles(sigs: np.ndarray) -> np.ndarray:
    """False for signatures of documents without any shingle (never deduplicated)."""
    return ~np.all(np.atleast_2d(sigs) == EMPTY_VALUE, axis=1)


# --------------------------------------------------------------------------- LSHBloom


def bloom_size(expected_items: int, fp_rate: float) -> tuple[int, int]:
    """(bits m, probes k) for a Bloom filter of ``expected_items`` at false-positive ``fp_rate``."""
    if expected_items < 1:
        raise ValueError(f"expected_items must be >= 1 (got {expected_items})")
    if not 0.0 < fp_rate < 1.0:
        raise ValueError(f"fp_rate must be in (0, 1) (got {fp_rate})")
    m = math.ceil(-expected_items * math.log(fp_rate) / (math.log(2) ** 2))
    m = max(64, (m + 63) // 64 * 64)
    k = max(1, round(m / expected_items * math.log(2)))
    return m, k


@dataclass(frozen=True)
class BloomIndexParams:
    bands: int
    rows: int
    bits: int
    probes: int
    expected_items: int
    fp_rate: float
    minhash: dict  # MinHashConfig as a dict: signatures must be computed the same way


class BloomIndex:
    """One Bloom filter per LSH band (LSHBloom). Insert/query whole batches of band keys."""

    def __init__(self, params: BloomIndexParams, bits: np.ndarray | None = None, inserted: int = 0):
        self.params = params
        nbytes = params.bits // 8
        if bits is None:
            bits = np.zeros((params.bands, nbytes), dtype=np.uint8)
        if bits.shape != (params.bands, nbytes) or bits.dtype != np.uint8:
            raise ValueError(f"bit array shape {bits.shape} does not match {params}")
        self.bits = bits
        self.inserted = inserted

    @classmethod
    def create(
        cls, minhash: MinHashConfig, bands: int, rows: int, expected_items: int, fp_rate: float
    ) -> BloomIndex:
        m, k = bloom_size(expected_items, fp_rate)
        return cls(BloomIndexParams(bands, rows, m, k, expected_items, fp_rate, asdict(minhash)))

    # ------------------------------------------------------------------ probes
    def _positions(self, keys: np.ndarray) -> np.ndarray:
        """Probe bit positions, shape ``(docs, bands, k)``."""
        keys = np.asarray(keys, dtype=np.uint64)
        h1 = keys
        h2 = mix64(keys ^ np.uint64(0x5851F42D4C957F2D)) | np.uint64(1)
        j = np.arange(self.params.probes, dtype=np.uint64)
        pos = h1[..., None] + j * h2[..., None]
        return pos % np.uint64(self.params.bits)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """``(docs, bands)`` bool: band key (probably) present in that band's filter."""
        keys = np.atleast_2d(keys)
        if keys.shape[1] != self.params.bands:
            raise ValueError(f"expected {self.params.bands} band keys per doc, got {keys.shape[1]}")
        pos = self._positions(keys)
        band = np.arange(self.params.bands)[None, :, None]
        byte = self.bits[band, (pos >> np.uint64(3)).astype(np.int64)]
        bit = (byte >> (pos & np.uint64(7)).astype(np.uint8)) & 1
        return bit.all(axis=2)

    def query(self, keys: np.ndarray) -> np.ndarray:
        """``(docs,)`` bool: some band of the document was inserted before (a near-duplicate)."""
        return self.contains(keys).any(axis=1)

    def insert(self, keys: np.ndarray) -> None:
        keys = np.atleast_2d(keys)
        if keys.shape[0] == 0:
            return
        pos = self._positions(keys)
        band = np.broadcast_to(np.arange(self.params.bands)[None, :, None], pos.shape)
        np.bitwise_or.at(
            self.bits,
            (band.ravel(), (pos >> np.uint64(3)).astype(np.int64).ravel()),
            (np.uint8(1) << (pos & np.uint64(7)).astype(np.uint8)).ravel(),
        )
        self.inserted += keys.shape[0]

    def merge(self, other: BloomIndex) -> None:
        """Union with another index of the same parameters (Bloom filters OR together)."""
        if other.params != self.params:
            raise ValueError("cannot merge LSHBloom indexes with different parameters")
        np.bitwise_or(self.bits, other.bits, out=self.bits)
        self.inserted += other.inserted

    # ------------------------------------------------------------------ stats
    @staticmethod
    def ones(band: np.ndarray) -> int:
        """Bits set in one band's filter (``np.unpackbits`` would allocate a byte per bit)."""
        return int(np.bitwise_count(band).sum(dtype=np.int64))

    def fill_ratio(self) -> float:
        """Fraction of bits set, counted one band at a time (``np.unpackbits`` of the whole
        index would allocate a byte per bit: 0.4 GB for a 50 MB index)."""
        ones = sum(self.ones(row) for row in self.bits)
        return ones / (self.bits.size * 8) if self.bits.size else 0.0

    def estimated_fp_rate(self) -> float:
        """Per-band false-positive rate implied by the current fill: fill ^ k."""
        return self.fill_ratio() ** self.params.probes

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes)

    # ------------------------------------------------------------------ persistence
    def save(self, f: BinaryIO) -> None:
        meta = {"format": FORMAT_VERSION, "params": asdict(self.params), "inserted": self.inserted}
        buf = io.BytesIO()
        np.savez(buf, bits=self.bits, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
        f.write(buf.getbuffer())  # a view, not a second copy of the index

    @staticmethod
    def _open(f: BinaryIO):
        seekable = getattr(f, "seekable", lambda: False)()
        data = np.load(f if seekable else io.BytesIO(f.read()), allow_pickle=False)
        try:
            meta = json.loads(data["meta"].tobytes().decode())
        except (KeyError, ValueError) as e:
            raise ValueError(f"not an LSHBloom index: {e}") from None
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported LSHBloom index format {meta.get('format')!r}")
        return data, meta

    @classmethod
    def load(cls, f: BinaryIO) -> BloomIndex:
        data, meta = cls._open(f)
        return cls(
            BloomIndexParams(**meta["params"]), np.array(data["bits"]), int(meta["inserted"])
        )

    @classmethod
    def load_band(cls, f: BinaryIO, band: int) -> tuple[BloomIndexParams, int, np.ndarray]:
        """(parameters, documents inserted, one band's filter) without reading the other
        bands: ``bits`` is stored uncompressed in the ``.npz``, band after band, so the band is
        one seek and one read (a stream that cannot seek is read whole first)."""
        import struct
        import zipfile

        if not getattr(f, "seekable", lambda: False)():
            f = io.BytesIO(f.read())
        data, meta = cls._open(f)
        params = BloomIndexParams(**meta["params"])
        if not 0 <= band < params.bands:
            raise ValueError(f"band {band} is not in this index ({params.bands} bands)")
        info = data.zip.getinfo("bits.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError("compressed LSHBloom index: bands cannot be read one at a time")
        # the member's bytes start after its local header (30 bytes, its name, its extra
        # field); seek there in the file itself (a ZipExtFile seek reads up to the offset)
        f.seek(info.header_offset)
        local = f.read(30)
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(f)
        if shape != (params.bands, params.bits // 8) or dtype != np.uint8 or fortran:
            raise ValueError(f"bit array {shape} {dtype} does not match {params}")
        f.seek(f.tell() + band * shape[1])
        row = np.frombuffer(f.read(shape[1]), dtype=np.uint8).copy()
        if row.size != shape[1]:
            raise ValueError(f"LSHBloom index cut short in band {band}")
        return params, int(meta["inserted"]), row

    @staticmethod
    def save_bands(f: BinaryIO, params: BloomIndexParams, inserted: int, rows) -> None:
        """Write an index whose bands come one at a time from ``rows`` (an iterable of the
        ``bands`` filters, in order): the same file :meth:`save` writes, holding one band in
        memory instead of all of them. ``f`` need not be seekable."""
        import zipfile

        meta = {"format": FORMAT_VERSION, "params": asdict(params), "inserted": int(inserted)}
        width = params.bits // 8
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            with zf.open("bits.npy", "w", force_zip64=True) as m:
                np.lib.format.write_array_header_1_0(m, {
                    "descr": "|u1", "fortran_order": False, "shape": (params.bands, width)})
                n = 0
                for row in rows:
                    if row.shape != (width,) or row.dtype != np.uint8:
                        raise ValueError(f"band {n}: {row.shape} {row.dtype}, expected ({width},)")
                    m.write(row.tobytes())
                    n += 1
                if n != params.bands:
                    raise ValueError(f"{n} bands written, the index has {params.bands}")
            with zf.open("meta.npy", "w") as m:
                np.lib.format.write_array(
                    m, np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))

    @classmethod
    def load_params(cls, f: BinaryIO) -> BloomIndexParams:
        """Only the parameters (reads the small metadata member, not the bit arrays)."""
        return cls.load_header(f)[0]

    @classmethod
    def load_header(cls, f: BinaryIO) -> tuple[BloomIndexParams, int]:
        """(parameters, documents inserted), from the metadata member alone."""
        _, meta = cls._open(f)
        return BloomIndexParams(**meta["params"]), int(meta["inserted"])

    def check_compatible(self, minhash: MinHashConfig, bands: int, rows: int) -> None:
        check_compatible(self.params, minhash, bands, rows)


def check_compatible(
    params: BloomIndexParams, minhash: MinHashConfig, bands: int, rows: int
) -> None:
    """Raise ValueError naming every setting that differs from the index's."""
    want = {**asdict(minhash), "bands": bands, "rows": rows}
    # indexes written before ``permutations`` existed used the numpy permutations
    have = {"permutations": "numpy", **params.minhash, "bands": params.bands,
            "rows": params.rows}
    diff = [
        f"{k}: index has {have.get(k)!r}, stage has {v!r}"
        for k, v in want.items()
        if have.get(k) != v
    ]
    if diff:
        raise ValueError(
            "LSHBloom index was built with different settings ("
            + "; ".join(diff)
            + "); use the index's settings or build a new index"
        )


# --------------------------------------------------------------------------- candidate pairs


def bucket_pairs(starts: np.ndarray, sizes: np.ndarray, max_bucket_size: int
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Candidate pairs inside the LSH buckets of an array of band entries sorted by bucket
    (documents sharing the key of one band share a bucket).

    Bucket ``k`` is rows ``starts[k] .. starts[k] + sizes[k] - 1`` (sizes >= 2), sorted so
    that its first row is the member the bucket's star is centred on. A bucket of ``m``
    members yields all ``m (m - 1) / 2`` pairs unless ``m > max_bucket_size`` (a *hot*
    bucket) or ``m == 2``: then the ``m - 1`` pairs of the first row with each other row
    (work linear in ``m``). Returns row indices ``(a, b)`` (``a`` the earlier row, not
    de-duplicated: a pair found in several bands comes once per band) and stats
    ``hot_buckets`` (buckets over ``max_bucket_size``), ``hot_bucket_pairs`` (star pairs from
    them) and ``bucket_pairs`` (all pairs returned)."""
    starts = np.asarray(starts, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    hot = sizes > max_bucket_size
    star = hot | (sizes == 2)
    parts_a, parts_b = [], []
    s_starts, s_sizes = starts[star], sizes[star]
    if s_starts.size:
        parts_a.append(np.repeat(s_starts, s_sizes - 1))
        step = np.repeat(s_starts + 1 - np.concatenate(([0], np.cumsum(s_sizes - 1)[:-1])),
                         s_sizes - 1)
        parts_b.append(step + np.arange(int((s_sizes - 1).sum()), dtype=np.int64))
    for st, m in zip(starts[~star].tolist(), sizes[~star].tolist()):
        ii, jj = np.triu_indices(m, 1)
        parts_a.append(st + ii)
        parts_b.append(st + jj)
    z = np.zeros(0, dtype=np.int64)
    a = np.concatenate(parts_a) if parts_a else z
    b = np.concatenate(parts_b) if parts_b else z.copy()
    stats = {"hot_buckets": int(hot.sum()),
             "hot_bucket_pairs": int((sizes[hot] - 1).sum()),
             "bucket_pairs": int(a.size)}
    return a, b, stats


def component_arrays(n: int, i, j):
    """Connected components of the graph on nodes ``0..n-1`` with edges ``(i[k], j[k])``.

    Returns ``(comp, size)``: ``comp[v]`` is the smallest node of ``v``'s component and
    ``size[v]`` the component's size (1 for isolated nodes). Uses
    ``scipy.sparse.csgraph.connected_components``: memory O(n + edges), no Python loop.
    """
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(i.size, dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    _, lab = connected_components(graph, directed=False)
    first = np.full(lab.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, lab, np.arange(n, dtype=np.int64))
    counts = np.bincount(lab)
    return first[lab], counts[lab]
