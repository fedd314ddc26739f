"""Materialize a recommended training mixture (``datamill materialize REC.yaml``).

Reads each pool's Parquet files (the ``materialize`` block written by ``datamill recommend``),
selects the pool's records (score bucket or source), and emits the recommended number of
epochs: every full epoch repeats the whole pool (one row per record and epoch, with an
``epoch`` column); a fractional last epoch takes a deterministic, seeded sample.

Sampling is exact and scalable: each record gets ``h = xxh64(seed:pool:epoch:id)``; the sample
is the prefix of records in ``h`` order whose cumulative token count first reaches the target
(so it overshoots by less than one document). To find that prefix without sorting the pool,
a histogram of tokens over the top 12 bits of ``h`` (4,096 buckets) is combined per pool; the
buckets below the crossing bucket are taken whole, and only the crossing bucket's records
(~1/4,096 of the pool) are grouped and sorted.

Output: ``<out>/data/part-*.parquet`` (deterministic shards, sorted by ``h``) and
``<out>/manifest.json`` with the target and achieved tokens/documents per pool and epoch.
"""

from __future__ import annotations

import json
import math
from typing import Any

import apache_beam as beam
import pyarrow as pa
import xxhash
from apache_beam.io.filesystems import FileSystems

from filters.tokens import DEFAULT_TOKENIZER, load_token_counter
from pipelines.core.fs import write_json

N_BUCKETS_BITS = 12
N_BUCKETS = 1 << N_BUCKETS_BITS

SCHEMA = pa.schema([
    ("id", pa.string()), ("text", pa.string()), ("source", pa.string()),
    ("pool", pa.string()), ("epoch", pa.int64()), ("tokens", pa.float64()),
    ("sample_key", pa.string()),
])


class MaterializeError(ValueError):
    """The recommendation cannot be materialized; the message says which field and why."""


def sample_hash(seed: int, pool: str, epoch: int, doc_id: str) -> int:
    return xxhash.xxh64_intdigest(f"{seed}:{pool}:{epoch}:{doc_id}".encode("utf-8"))


def plan_from_recommendation(rec: dict[str, Any]) -> dict[str, Any]:
    """Validate the ``materialize`` block of a recommendation and return it."""
    m = rec.get("materialize") if isinstance(rec, dict) else None
    if not isinstance(m, dict):
        raise MaterializeError(
            "materialize: the recommendation has no 'materialize' block — its pools were given "
            "by hand (no files). Use pools_from_build (or give each pool 'files' and 'select') "
            "in the recommend config to get a materializable plan")
    pools = m.get("pools")
    if not isinstance(pools, list) or not pools:
        raise MaterializeError("materialize.pools: must be a non-empty list")
    for i, p in enumerate(pools):
        for key in ("name", "files", "epochs", "unique_tokens"):
            if key not in p:
                raise MaterializeError(f"materialize.pools[{i}].{key}: missing")
        if not p["files"]:
            raise MaterializeError(f"materialize.pools[{i}].files: empty; a pool needs files")
        if not (isinstance(p["epochs"], (int, float)) and p["epochs"] >= 0):
            raise MaterializeError(f"materialize.pools[{i}].epochs: must be a number >= 0 "
                                   f"(got {p['epochs']!r})")
        sel = p.get("select")
        if sel is not None and not ("source" in sel or "column" in sel):
            raise MaterializeError(f"materialize.pools[{i}].select: needs 'source' or 'column' "
                                   f"(got {sel!r})")
    return m


def epoch_targets(epochs: float, unique_tokens: float) -> list[tuple[int, float | None]]:
    """(epoch, target tokens) per epoch; ``None`` means the whole pool."""
    full = int(math.floor(epochs + 1e-9))
    out: list[tuple[int, float | None]] = [(k, None) for k in range(full)]
    frac = epochs - full
    if frac > 1e-9:
        out.append((full, frac * unique_tokens))
    return out


def _selected(record: dict[str, Any], sel: dict[str, Any] | None) -> bool:
    if not sel:
        return True
    if "source" in sel:
        return record.get("source") == sel["source"]
    v = record.get(sel["column"])
    if v is None:
        return False
    try:
        v = float(v)
    except (TypeError, ValueError):
        return False
    if math.isnan(v):
        return False
    lo, hi = sel.get("min"), sel.get("max")
    return (lo is None or v >= lo) and (hi is None or v < hi)


class _Prepare(beam.DoFn):
    """Select a pool's records and take their token counts (the build's ``tokens`` column when
    the plan names it, else counted with the plan's tokenizer); bad rows go to ``dead``."""

    def __init__(self, pool: str, sel: dict[str, Any] | None, tokenizer: str,
                 token_column: str | None):
        self._pool, self._sel, self._tok, self._col = pool, sel, tokenizer, token_column
        self._counter = None

    def setup(self) -> None:
        self._counter = load_token_counter(self._tok)

    def _tokens(self, row: dict[str, Any], text: str) -> float:
        v = row.get(self._col) if self._col else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
            return float(v)
        if self._counter is None:
            self.setup()
        return float(self._counter.count(text))

    def process(self, row: dict[str, Any]):
        doc_id, text = row.get("id"), row.get("text")
        if not isinstance(doc_id, str) or not doc_id or not isinstance(text, str):
            yield beam.pvalue.TaggedOutput("dead", {
                "pool": self._pool, "id": str(doc_id),
                "row_hash": xxhash.xxh64_hexdigest(repr(sorted(row.items())).encode("utf-8")),
                "reason": "missing_id" if not isinstance(doc_id, str) or not doc_id
                else "text_not_string"})
            return
        if not _selected(row, self._sel):
            return
        yield {"id": doc_id, "text": text, "source": str(row.get("source") or ""),
               "pool": self._pool, "tokens": self._tokens(row, text)}


def _with_epoch(r: dict[str, Any], epoch: int, seed: int) -> dict[str, Any]:
    h = sample_hash(seed, r["pool"], epoch, r["id"])
    return {**r, "epoch": epoch, "h": h, "sample_key": f"{h:016x}:{r['pool']}:{epoch}:{r['id']}"}


class _HistFn(beam.CombineFn):
    def create_accumulator(self):
        return [0.0] * N_BUCKETS

    def add_input(self, acc, item):
        acc[item[0]] += item[1]
        return acc

    def merge_accumulators(self, accs):
        out = [0.0] * N_BUCKETS
        for a in accs:
            for i, v in enumerate(a):
                out[i] += v
        return out

    def extract_output(self, acc):
        return acc


def _crossing(hist: list[float], target: float) -> tuple[int, float]:
    """(bucket where the cumulative tokens reach ``target``, tokens in buckets below it)."""
    cum = 0.0
    for i, v in enumerate(hist):
        if cum + v >= target:
            return i, cum
        cum += v
    return N_BUCKETS, cum  # target above the pool: everything is taken


def _take_prefix(item, target: float, below: dict):
    """Sort the crossing bucket's records by hash and take them while under the target."""
    _key, recs = item
    cum = below.get("below", 0.0)
    for r in sorted(recs, key=lambda r: (r["h"], r["id"])):
        if cum >= target:
            break
        cum += r["tokens"]
        yield r


def _sample_partial(recs, label: str, target: float):
    """Exact hash-order prefix of ``recs`` reaching ``target`` tokens (see module doc)."""
    shift = 64 - N_BUCKETS_BITS
    hist = (recs
            | f"{label}Hist" >> beam.Map(lambda r: (r["h"] >> shift, r["tokens"]))
            | f"{label}Combine" >> beam.CombineGlobally(_HistFn()))
    cross = hist | f"{label}Cross" >> beam.Map(
        lambda h: dict(zip(("bucket", "below"), _crossing(h, target))))
    side = beam.pvalue.AsSingleton(cross)
    whole = recs | f"{label}Below" >> beam.Filter(
        lambda r, c: (r["h"] >> shift) < c["bucket"], side)
    edge = (recs
            | f"{label}Edge" >> beam.Filter(lambda r, c: (r["h"] >> shift) == c["bucket"], side)
            | f"{label}KeyEdge" >> beam.Map(lambda r: (0, r))
            | f"{label}GroupEdge" >> beam.GroupByKey()
            | f"{label}Prefix" >> beam.FlatMap(_take_prefix, target, side))
    return (whole, edge) | f"{label}Merge" >> beam.Flatten()


def _manifest(items, plan: dict[str, Any], shards: list[dict[str, Any]],
              dead: list[dict[str, Any]]) -> dict[str, Any]:
    # Pools reading the same files see the same bad row: count each bad row once.
    unique_dead = {(d["row_hash"], d["reason"]): d for d in dead}
    dead = [unique_dead[k] for k in sorted(unique_dead)]
    achieved = {(p, e): (t, n) for (p, e), (t, n) in items}
    pools = []
    for p in plan["pools"]:
        epochs = []
        tot_t = tot_n = 0.0
        for e, target in epoch_targets(p["epochs"], p["unique_tokens"]):
            t, n = achieved.get((p["name"], e), (0.0, 0))
            epochs.append({"epoch": e, "target_tokens": target if target is not None
                           else p["unique_tokens"], "full": target is None,
                           "achieved_tokens": t, "documents": n})
            tot_t += t
            tot_n += n
        target_total = p["epochs"] * p["unique_tokens"]
        pools.append({"name": p["name"], "epochs": p["epochs"],
                      "unique_tokens": p["unique_tokens"], "target_tokens": target_total,
                      "achieved_tokens": tot_t, "documents": int(tot_n),
                      "relative_error": (tot_t - target_total) / target_total
                      if target_total else 0.0, "epochs_detail": epochs})
    return {"seed": plan.get("seed", 0),
            "tokenizer": plan.get("tokenizer") or DEFAULT_TOKENIZER,
            "token_column": plan.get("token_column"),
            "pools": pools, "files": sorted(shards, key=lambda s: s["path"]),
            "dead_letter": {"count": len(dead),
                            "reasons": _count(d["reason"] for d in dead),
                            "examples": [{"id": d["id"], "pool": d["pool"], "reason": d["reason"]}
                                         for d in dead[:20]]}}


def _count(xs) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in xs:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


def pool_files(plan: dict[str, Any]) -> list[list[str]]:
    """Each pool's input files; checks the tokenizer too. Raises :class:`MaterializeError`
    (before any work) when a pool's patterns match nothing."""
    load_token_counter(plan.get("tokenizer") or DEFAULT_TOKENIZER)
    out = []
    for i, pool in enumerate(plan["pools"]):
        files: list[str] = []
        for pattern in pool["files"]:
            found = FileSystems.match([pattern])[0].metadata_list
            files.extend(sorted(m.path for m in found))
        if not files:
            raise MaterializeError(f"materialize.pools[{i}].files: nothing matches "
                                   f"{pool['files']}")
        out.append(files)
    return out


def build_materialize(p: beam.Pipeline, plan: dict[str, Any], out: str,
                      files_per_pool: list[list[str]] | None = None) -> None:
    """Add the materialization graph for ``plan`` to pipeline ``p`` writing under ``out``
    (``files_per_pool``: :func:`pool_files`' result, computed here when not given)."""
    from pipelines.io.sinks import WriteSortedShards

    seed = int(plan.get("seed", 0))
    tokenizer = plan.get("tokenizer") or DEFAULT_TOKENIZER
    token_column = plan.get("token_column")
    if files_per_pool is None:
        files_per_pool = pool_files(plan)  # fail before building the graph
    n_shards = int(plan.get("shards", 8))
    out = out.rstrip("/")
    rows, deads = [], []
    for i, (pool, files) in enumerate(zip(plan["pools"], files_per_pool, strict=True)):
        name = pool["name"]
        label = f"P{i}"
        sel = pool.get("select") or {}
        columns = (["id", "text", "source"] + ([sel["column"]] if "column" in sel else [])
                   + ([token_column] if token_column else []))
        read = (p | f"{label}Files" >> beam.Create(sorted(set(files)))
                | f"{label}Read" >> beam.io.ReadAllFromParquet(columns=columns))
        prep = read | f"{label}Prepare" >> beam.ParDo(
            _Prepare(name, pool.get("select"), tokenizer, token_column)
        ).with_outputs("dead", main="ok")
        deads.append(prep.dead)
        for e, target in epoch_targets(pool["epochs"], pool["unique_tokens"]):
            recs = prep.ok | f"{label}E{e}Key" >> beam.Map(_with_epoch, e, seed)
            if target is not None:
                recs = _sample_partial(recs, f"{label}E{e}", target)
            rows.append(recs)
    if not rows:
        raise MaterializeError("materialize: every pool has 0 epochs; nothing to write")
    allrows = tuple(rows) | "AllRows" >> beam.Flatten()
    out_rows = allrows | "Row" >> beam.Map(lambda r: {k: r[k] for k in SCHEMA.names})
    written = out_rows | "Write" >> WriteSortedShards(
        f"{out}/data", n_shards, "parquet", sort_key=lambda r: r["sample_key"], schema=SCHEMA)
    counts = (allrows
              | "CountKey" >> beam.Map(lambda r: ((r["pool"], r["epoch"]), (r["tokens"], 1)))
              | "CountSum" >> beam.CombinePerKey(
                  lambda vs: tuple(map(sum, zip(*vs))) if vs else (0.0, 0))
              | "CountList" >> beam.combiners.ToList())
    shard_list = written | "ShardList" >> beam.combiners.ToList()
    dead = tuple(deads) | "AllDead" >> beam.Flatten()
    dead_list = dead | "DeadList" >> beam.combiners.ToList()
    (counts
     | "Manifest" >> beam.Map(
         lambda items, shards, dl: _manifest(items, plan, shards, dl),
         beam.pvalue.AsSingleton(shard_list), beam.pvalue.AsSingleton(dead_list))
     | "WriteManifest" >> beam.Map(lambda m: write_json(f"{out}/manifest.json", m)))


ENTRIES = ("data", "manifest.json")  # what a materialization publishes


def materialize(rec: dict[str, Any], out: str, *, pipeline_args: list[str] | None = None,
                pipeline: beam.Pipeline | None = None) -> dict[str, Any]:
    """Run the materialization and return the manifest. Written as a build is: under the
    output directory's lock into a staging directory, then promoted (the previous mixture
    stays the visible one until this one is complete)."""
    from pipelines.build.promote import publish, staged_run

    plan = plan_from_recommendation(rec)
    files = pool_files(plan)  # config mistakes fail before the output directory is touched
    with staged_run(out, ENTRIES) as target:
        if pipeline is None:
            from pipelines.core.runner import make_options
            from pipelines.core.settings import RunnerConfig

            runner, opts = make_options(RunnerConfig(), pipeline_args or [])
            pipeline = beam.Pipeline(runner=runner, options=opts)
        build_materialize(pipeline, plan, target.staging, files)
        pipeline.run().wait_until_finish()
        with FileSystems.open(f"{target.staging}/manifest.json") as fh:
            payload = json.loads(fh.read().decode("utf-8"))
        # shard paths as a reader sees them (below the output directory, not the staging one)
        payload["files"] = [{**f, "path": target.out + f["path"][len(target.staging):]}
                            for f in payload["files"]]
        return publish(target, {"kind": "materialize", **payload})
