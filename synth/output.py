"""Training-ready output: chat formats, DPO preference pairs and a declared Parquet schema.

* ``messages``: OpenAI / Hugging Face chat format, ``[{"role": "user", "content": problem},
  {"role": "assistant", "content": verified solution}]`` (``tokenizer.apply_chat_template``
  and TRL's SFT trainer read it directly);
* ``conversations``: ShareGPT, ``[{"from": "human", "value": ...}, {"from": "gpt", ...}]``;
* preference pairs for DPO: ``prompt`` (messages), ``chosen`` / ``rejected`` (one assistant
  message each): chosen is a verified-correct sample, rejected a verified-wrong one (an
  extracted answer that differs from the reference or from the accepted vote; for code, a
  program that ran and failed the kept tests). ``rejected_evidence`` says which.

Every record table has a declared schema (:data:`MATH_SCHEMA`, :data:`CODE_SCHEMA`,
:data:`PAIR_SCHEMA`): nested fields are Arrow structs and lists of structs (never JSON
strings), no column is ``list<null>``, and an empty shard is written with the full schema, so
shards from different runs concatenate (``pyarrow.concat_tables`` / ``datasets``).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

SCHEMA_VERSION = "synth-records-v1"

_MSG = pa.struct([("role", pa.string()), ("content", pa.string())])
_SHAREGPT = pa.struct([("from", pa.string()), ("value", pa.string())])
_SAMPLING = pa.struct([
    ("n", pa.int64()), ("temperature", pa.float64()), ("top_p", pa.float64()),
    ("max_tokens", pa.int64()), ("allocation", pa.string()), ("pot_n", pa.int64()),
])
PROVENANCE = pa.struct([
    ("backend", pa.string()), ("model", pa.string()), ("model_resolved", pa.string()),
    ("model_revision", pa.string()), ("revision_kind", pa.string()),
    ("datamill_version", pa.string()), ("schema_version", pa.string()),
    ("template", pa.string()), ("template_version", pa.string()),
    ("problem_template", pa.string()), ("judge_template", pa.string()),
    ("sampling", _SAMPLING), ("seed", pa.int64()), ("batch_id", pa.string()),
    ("verifier", pa.string()), ("parent", pa.string()),
    # backend options that change generations (dtype, batch_size, ...), values as JSON
    ("generation_options", pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())]))),
    # the run's settings that decide a record besides the backend: the task section (sampling,
    # allocation, judge and its backend, verification), problem generation, resume unit size
    ("settings", pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())]))),
])
_COUNT = pa.struct([("check", pa.string()), ("count", pa.int64())])
_COMMON = [
    ("id", pa.string()), ("text", pa.string()), ("source", pa.string()),
    ("problem", pa.string()), ("pass_rate", pa.float64()), ("n_samples", pa.int64()),
    ("n_correct", pa.int64()), ("solutions", pa.list_(pa.string())),
    ("messages", pa.list_(_MSG)), ("conversations", pa.list_(_SHAREGPT)),
    ("keep_reason", pa.string()), ("provenance", PROVENANCE),
]
MATH_SCHEMA = pa.schema(_COMMON + [
    ("reference", pa.string()), ("answer", pa.string()), ("agreement", pa.float64()),
    ("rounds", pa.int64()),
    ("verdicts", pa.list_(pa.struct([("answer", pa.string()), ("kind", pa.string()),
                                     ("round", pa.int64()), ("correct", pa.bool_()),
                                     ("check", pa.string()), ("finish_reason", pa.string())]))),
    ("sample_checks", pa.list_(_COUNT)),
    ("judge", pa.struct([("verdict", pa.string()), ("text", pa.string())])),
])
CODE_SCHEMA = pa.schema(_COMMON + [
    ("evidence", pa.string()), ("reference_agrees", pa.bool_()),
    ("tests", pa.list_(pa.string())), ("rejected_tests", pa.list_(pa.string())),
    ("verdicts", pa.list_(pa.struct([("sample", pa.int64()), ("code_found", pa.bool_()),
                                     ("passed", pa.bool_()), ("passes", pa.list_(pa.bool_())),
                                     ("status", pa.string()), ("error", pa.string())]))),
])
PAIR_SCHEMA = pa.schema([
    ("id", pa.string()), ("pair", pa.int64()), ("prompt", pa.list_(_MSG)),
    ("chosen", pa.list_(_MSG)), ("rejected", pa.list_(_MSG)),
    ("chosen_answer", pa.string()), ("rejected_answer", pa.string()),
    ("rejected_evidence", pa.string()), ("provenance", PROVENANCE),
])


def schema_for(task: str) -> pa.Schema:
    return MATH_SCHEMA if task == "math" else CODE_SCHEMA


def chat_messages(problem: str, solution: str | None) -> list[dict[str, str]]:
    if solution is None:
        return []
    return [{"role": "user", "content": problem}, {"role": "assistant", "content": solution}]


def sharegpt(problem: str, solution: str | None) -> list[dict[str, str]]:
    if solution is None:
        return []
    return [{"from": "human", "value": problem}, {"from": "gpt", "value": solution}]


def add_chat_formats(rec: dict, formats: list[str]) -> dict:
    """``messages`` / ``conversations`` for the first verified solution (empty when none)."""
    sol = rec["solutions"][0] if rec.get("solutions") else None
    rec["messages"] = chat_messages(rec["problem"], sol) if "messages" in formats else []
    rec["conversations"] = sharegpt(rec["problem"], sol) if "sharegpt" in formats else []
    return rec


def preference_pairs(rec_id: str, problem: str, chosen: list[tuple[str, str | None]],
                     rejected: list[tuple[str, str | None]], evidence: str,
                     provenance: dict, max_pairs: int, *, chosen_kept: bool = True,
                     rejected_wrong: Any = None) -> list[dict]:
    """Pair the i-th chosen with the i-th rejected sample (deterministic, at most max_pairs).

    Pairs exist only when the chosen side carries the evidence a kept record needs
    (``chosen_kept``: the caller's keep decision, including a code task whose passing
    samples disagree beyond the given tests, which makes no pairs) and each rejected side is
    wrong by the same standard: ``rejected_wrong(chosen_answer, rejected_answer)`` (for math,
    a decidably different plain number) must hold when given.
    """
    if not chosen_kept:
        return []
    if rejected_wrong is not None:
        ca = next((a for _, a in chosen), None)
        rejected = [(r, ra) for r, ra in rejected if rejected_wrong(ca, ra)]
    out = []
    for i, ((c, ca), (r, ra)) in enumerate(zip(chosen, rejected)):
        if i >= max_pairs:
            break
        out.append({"id": rec_id, "pair": i, "prompt": [{"role": "user", "content": problem}],
                    "chosen": [{"role": "assistant", "content": c}],
                    "rejected": [{"role": "assistant", "content": r}],
                    "chosen_answer": ca, "rejected_answer": ra, "rejected_evidence": evidence,
                    "provenance": provenance})
    return out


def check_fields(row: dict, schema: pa.Schema) -> None:
    """A field not in the declared schema is an error, not lost (Arrow would drop it)."""
    extra = set(row) - set(schema.names)
    if extra:
        raise ValueError(f"record {row.get('id')!r} has fields outside the declared schema "
                         f"{SCHEMA_VERSION}: {sorted(extra)}")


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows -> a table of exactly ``schema``; a field not in the schema is an error, not lost."""
    for r in rows:
        check_fields(r, schema)
    return pa.Table.from_pylist(rows, schema=schema)


def provenance_row(base: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A provenance dict with every PROVENANCE field present (None when unknown)."""
    row = {f.name: None for f in PROVENANCE}
    row.update({k: v for k, v in base.items() if k in row})
    row.update({k: v for k, v in extra.items() if k in row})
    row["schema_version"] = SCHEMA_VERSION
    s = row.get("sampling")
    if isinstance(s, dict):
        row["sampling"] = {f.name: s.get(f.name) for f in _SAMPLING}
    return row
