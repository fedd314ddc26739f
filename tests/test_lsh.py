"""LSH banding parameters and the LSHBloom index."""

import io

import numpy as np
import pytest
from datasketch.lsh import _optimal_param

from filters.lsh import (
    BloomIndex,
    band_hashes,
    bloom_size,
    candidate_probability,
    lsh_summary,
    optimal_params,
)
from filters.minhash import MinHashConfig


@pytest.mark.parametrize("t,p", [(0.8, 128), (0.5, 128), (0.9, 112), (0.7, 64), (0.85, 256)])
def test_optimal_params_match_datasketch(t, p):
    assert optimal_params(t, p) == _optimal_param(t, p, 0.5, 0.5)


def test_weights_move_the_curve():
    b1, r1 = optimal_params(0.8, 128)
    b2, r2 = optimal_params(0.8, 128, fp_weight=0.2, fn_weight=0.8)
    assert candidate_probability(0.8, b2, r2) > candidate_probability(0.8, b1, r1)
    s = lsh_summary(0.8, 128, b1, r1)
    assert s["bands"] * s["rows"] <= 128 and 0 < s["p_candidate_at_threshold"] < 1
    with pytest.raises(ValueError, match="threshold"):
        optimal_params(1.5, 128)


def test_band_hashes():
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 2**32, size=(4, 128), dtype=np.uint32)
    sigs[1] = sigs[0]
    sigs[2, :13] = sigs[0, :13]  # same first band only
    h = band_hashes(sigs, 9, 13)
    assert h.shape == (4, 9) and h.dtype == np.uint64
    assert np.array_equal(h[0], h[1])
    assert h[2, 0] == h[0, 0] and not np.any(h[2, 1:] == h[0, 1:])
    assert len(set(h[3].tolist())) == 9  # band index is part of the key
    with pytest.raises(ValueError):
        band_hashes(sigs, 10, 13)


def _index(n=20_000, fp=1e-4):
    return BloomIndex.create(MinHashConfig(), 9, 13, n, fp)


def test_bloom_no_false_negatives_and_bounded_false_positives():
    rng = np.random.default_rng(1)
    idx = _index()
    ins = rng.integers(0, 2**63, size=(20_000, 9), dtype=np.uint64)
    idx.insert(ins)
    assert idx.query(ins).all()
    other = rng.integers(0, 2**63, size=(20_000, 9), dtype=np.uint64)
    band_fp = idx.contains(other).mean()
    assert band_fp < 5e-4  # target 1e-4 per band filter
    assert idx.estimated_fp_rate() < 5e-4
    m, k = bloom_size(20_000, 1e-4)
    assert idx.nbytes == 9 * m // 8 and k == idx.params.probes


def test_bloom_save_load_merge_and_compat():
    rng = np.random.default_rng(2)
    a, b = _index(), _index()
    ka = rng.integers(0, 2**63, size=(500, 9), dtype=np.uint64)
    kb = rng.integers(0, 2**63, size=(500, 9), dtype=np.uint64)
    a.insert(ka)
    b.insert(kb)
    assert a.fill_ratio() == pytest.approx(float(np.unpackbits(a.bits).mean()), rel=1e-12)
    assert a.fill_ratio() > 0
    assert _index().fill_ratio() == 0.0
    buf = io.BytesIO()
    a.save(buf)
    buf.seek(0)
    loaded = BloomIndex.load(buf)
    assert loaded.params == a.params and np.array_equal(loaded.bits, a.bits)
    assert loaded.query(ka).all() and loaded.inserted == 500
    loaded.merge(b)
    assert loaded.query(kb).all() and loaded.inserted == 1000
    loaded.check_compatible(MinHashConfig(), 9, 13)
    with pytest.raises(ValueError, match="seed"):
        loaded.check_compatible(MinHashConfig(seed=5), 9, 13)
    with pytest.raises(ValueError, match="different parameters"):
        loaded.merge(BloomIndex.create(MinHashConfig(), 9, 13, 10, 1e-3))


def _brute_pairs(keys, max_bucket_size):
    from collections import defaultdict

    pairs = set()
    for band in range(keys.shape[1]):
        buckets = defaultdict(list)
        for d, k in enumerate(keys[:, band].tolist()):
            buckets[k].append(d)
        for mem in buckets.values():
            if len(mem) < 2:
                continue
            if len(mem) > max_bucket_size:
                pairs.update((mem[0], m) for m in mem[1:])
            else:
                pairs.update((a, b) for x, a in enumerate(mem) for b in mem[x + 1 :])
    return pairs


def _bucket_pairs_of(keys, max_bucket_size):
    """Documents' pairs as a candidate shard finds them: all band entries sorted by (band,
    key, document), buckets cut where the key or band changes, ``bucket_pairs`` per bucket."""
    from filters.lsh import bucket_pairs

    n, b = keys.shape
    band = np.repeat(np.arange(b)[None, :], n, axis=0).reshape(-1)
    doc = np.repeat(np.arange(n), b)
    key = keys.reshape(-1)
    order = np.lexsort((doc, key, band))
    band, key, doc = band[order], key[order], doc[order]
    new = np.ones(key.size, dtype=bool)
    new[1:] = (key[1:] != key[:-1]) | (band[1:] != band[:-1])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, key.size))
    multi = sizes >= 2
    a, c, st = bucket_pairs(starts[multi], sizes[multi], max_bucket_size)
    return {(int(x), int(y)) for x, y in zip(doc[a], doc[c])}, a.size, st


@pytest.mark.parametrize("max_bucket", [2, 3, 1000])
def test_bucket_pairs_match_brute_force(max_bucket):
    rng = np.random.default_rng(4)
    keys = rng.integers(0, 6, size=(60, 3)).astype(np.uint64)  # many collisions, some hot
    got, total, st = _bucket_pairs_of(keys, max_bucket)
    assert got == _brute_pairs(keys, max_bucket)
    assert all(a < b for a, b in got)  # the earlier row (smaller document) first
    assert st["bucket_pairs"] == total >= len(got)
    if max_bucket == 1000:
        assert st["hot_buckets"] == 0
    else:
        assert st["hot_buckets"] > 0 and st["hot_bucket_pairs"] > 0


def test_bucket_pairs_edge_cases():
    for n in (0, 1):
        got, total, st = _bucket_pairs_of(np.zeros((n, 4), np.uint64), 10)
        assert not got and total == 0 and st["bucket_pairs"] == 0
    distinct = np.arange(40, dtype=np.uint64).reshape(10, 4)
    assert not _bucket_pairs_of(distinct, 10)[0]
    same = np.ones((5, 2), np.uint64)  # one bucket per band, all 10 pairs, found twice
    got, total, st = _bucket_pairs_of(same, 10)
    assert len(got) == 10 and st["bucket_pairs"] == 20


def test_bloom_bands_read_and_written_one_at_a_time(tmp_path):
    """``load_band`` reads one band of a saved index without the others (from a file or a
    stream that cannot seek); ``save_bands`` writes, from bands given one at a time, a file
    ``load`` reads back as the same index, also to a stream that cannot seek."""
    rng = np.random.default_rng(7)
    idx = _index()
    idx.insert(rng.integers(0, 2**63, size=(800, 9), dtype=np.uint64))
    path = tmp_path / "idx.npz"
    with open(path, "wb") as fh:
        idx.save(fh)

    class Stream(io.RawIOBase):  # readable or writable, never seekable
        def __init__(self, data=b""):
            self.buf = io.BytesIO(data)

        def readable(self):
            return True

        def writable(self):
            return True

        def readinto(self, b):
            chunk = self.buf.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

        def write(self, b):
            return self.buf.write(b)

    for band in (0, 4, 8):
        with open(path, "rb") as fh:
            params, inserted, row = BloomIndex.load_band(fh, band)
        assert params == idx.params and inserted == 800
        assert np.array_equal(row, idx.bits[band])
        with open(path, "rb") as fh:
            assert BloomIndex.load_header(fh) == (idx.params, 800)
        _, _, row = BloomIndex.load_band(Stream(path.read_bytes()), band)
        assert np.array_equal(row, idx.bits[band])
    with pytest.raises(ValueError, match="band 9"):
        with open(path, "rb") as fh:
            BloomIndex.load_band(fh, 9)
    out = Stream()
    BloomIndex.save_bands(out, idx.params, idx.inserted, iter(idx.bits))
    again = BloomIndex.load(io.BytesIO(out.buf.getvalue()))
    assert again.params == idx.params and again.inserted == 800
    assert np.array_equal(again.bits, idx.bits)
    _, _, row = BloomIndex.load_band(io.BytesIO(out.buf.getvalue()), 3)
    assert np.array_equal(row, idx.bits[3])
    with pytest.raises(ValueError, match="8 bands written"):
        BloomIndex.save_bands(io.BytesIO(), idx.params, 0, iter(idx.bits[:8]))
