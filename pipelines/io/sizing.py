"""The size of a build's file sources, estimated at planning time (no record is read): what the
dedup stages size their buckets and shards by."""

from __future__ import annotations

_EXPANSION = {".gz": 4.0, ".zst": 5.0, ".bz2": 5.0, ".parquet": 3.0}
_SAMPLE = 4 << 20


def input_size(sources) -> tuple[int | None, int | None]:
    """(uncompressed bytes, documents) of the configured file sources, estimated at planning
    time from file sizes (compressed files: typical ratios) and, for plain JSONL, the line
    density of the first 4 MiB. ``(None, None)`` when a source cannot be sized (hf, a remote
    source in a dry run, which lists nothing remote: stages then use their defaults, e.g.
    minhash_dedup's ``UNSIZED_SHARDS`` candidate shards)."""
    from pipelines.core import remote
    from pipelines.io.sources import expand_files

    total, docs = 0, 0
    for i, src in enumerate(sources):
        if src.type not in ("jsonl", "parquet", "demo_corpus"):
            return None, None
        if remote.offline() and remote.is_remote(src.path):  # a dry run lists nothing remote
            return None, None
        try:
            files, _skipped = expand_files(src, i)
        except remote.RemoteUnreachable:
            raise
        except Exception:  # noqa: BLE001 - sizing is best effort; reading reports real errors
            return None, None
        for f in files:
            ext = next((e for e in _EXPANSION if f.path.endswith(e)), None)
            size = int(f.size * (_EXPANSION[ext] if ext else 1.0))
            total += size
            lines = None
            if ext is None and "://" not in f.path:
                try:
                    with open(f.path, "rb") as fh:
                        head = fh.read(_SAMPLE)
                    if head:
                        lines = max(1, head.count(b"\n")) * f.size / len(head)
                except OSError:
                    pass
            docs += int(lines if lines is not None else size / 1000)
    return total, docs
