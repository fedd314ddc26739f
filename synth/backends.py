"""Text-generation backends behind one interface: batched requests -> n samples each.

* :class:`TransformersBackend`: Hugging Face transformers on CPU (or any torch device), batched
  ``generate`` with the model's chat template; for small local models.
* :class:`OpenAICompatibleBackend`: any server speaking the OpenAI completions / chat API
  (``vllm serve``, TGI, llama.cpp server...), over stdlib HTTP with bounded concurrency,
  retries with exponential backoff and per-request timeouts.
* :class:`VLLMBackend`: vLLM's offline ``LLM`` engine (GPU; ``pip install datamill[synth]``).

Nothing is downloaded unless the configured model is a hub name and the user allows it
(``allow_download``); by default ``HF_HUB_OFFLINE=1`` is set before loading.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt. ``messages`` (chat) takes precedence over ``prompt`` (raw completion)."""

    id: str
    params: SamplingParams
    messages: tuple[tuple[str, str], ...] = ()  # (role, content) pairs
    prompt: str = ""

    def chat(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]


@dataclass
class Sample:
    text: str
    num_tokens: int
    finish_reason: str = "stop"  # stop | length | error


@dataclass
class GenerationResult:
    request_id: str
    samples: list[Sample]
    error: str | None = None
    seconds: float = 0.0


class Backend(Protocol):
    name: str
    model: str

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]: ...

    def close(self) -> None: ...


def derive_seed(*parts: Any) -> int:
    """A stable 31-bit seed from arbitrary parts (request id, base seed, round)."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def _truncate_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if s and 0 <= i < cut:
            cut = i
    return text[:cut], cut < len(text)


# --------------------------------------------------------------------------- transformers


def cpu_supports_bf16() -> bool:
    """True when the CPU has bfloat16 matrix instructions (x86 AMX / AVX512-BF16, Arm BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"amx_bf16", "avx512_bf16", "bf16"})


def resolve_dtype(dtype: str | None, device: str = "cpu") -> str:
    """``auto`` -> ``bfloat16`` on a GPU or a CPU with bf16 instructions, else ``float32``."""
    if dtype in (None, "", "auto"):
        if device != "cpu" or cpu_supports_bf16():
            return "bfloat16"
        return "float32"
    return str(dtype)


# backend options that change what is generated (batching changes the per-batch seed, the
# dtype the numbers): they go into the resume fingerprint and the provenance; options that
# only change speed or transport (threads, max_concurrency, timeouts, api_key) do not
GENERATION_OPTIONS = {
    "transformers": ("dtype", "batch_size", "device"),
    "openai": ("base_url", "split_n", "chat"),
    "vllm": ("dtype", "max_model_len", "tensor_parallel_size", "seed", "quantization"),
}
_OPTION_DEFAULTS = {"transformers": {"dtype": "auto", "batch_size": 8, "device": "cpu"},
                    "openai": {"split_n": True, "chat": True}, "vllm": {"dtype": "auto"}}


def generation_options(cfg: BackendConfig) -> dict[str, Any]:
    """The options of ``cfg`` that change generations, defaults filled, dtype resolved."""
    keys = GENERATION_OPTIONS.get(cfg.type, ())
    out = {k: cfg.options.get(k, _OPTION_DEFAULTS.get(cfg.type, {}).get(k)) for k in keys}
    if cfg.type == "transformers":
        out["dtype"] = resolve_dtype(out.get("dtype"), out.get("device") or "cpu")
    return {k: v for k, v in out.items() if v is not None}


def dtype_reason(requested: str | None, resolved: str, device: str = "cpu") -> str:
    """Why ``resolved`` is the dtype: asked for, or what ``auto`` chose on this machine."""
    if requested not in (None, "", "auto"):
        return "requested"
    if device != "cpu":
        return f"auto: {device}"
    return ("auto: this CPU has bf16 matrix instructions" if resolved == "bfloat16" else
            "auto: this CPU has no bf16 matrix instructions")


def describe_generation(cfg: BackendConfig) -> str:
    """One line saying how generations are made: backend, model and the options that change
    them (the dtype with the reason for it)."""
    opts = generation_options(cfg)
    parts = [f"{k} {v}" for k, v in sorted(opts.items()) if k != "dtype"]
    if "dtype" in opts:
        device = opts.get("device") or "cpu"
        parts.insert(0, f"dtype {opts['dtype']} "
                        f"({dtype_reason(cfg.options.get('dtype'), opts['dtype'], device)})")
    return f"{cfg.type} backend, model {cfg.model}" + (": " + ", ".join(parts) if parts else "")


class TransformersBackend:
    """Batched sampling with transformers' ``generate``; seeded per batch (deterministic).

    ``dtype="auto"`` (the default) is bfloat16 where the CPU has bf16 matrix instructions
    (about twice the tokens per CPU-second of float32 there) and float32 elsewhere; the
    choice is printed when ``datamill synth`` starts (:func:`describe_generation`), written to
    stats.json and recorded in the provenance (``generation_options``).
    """

    name = "transformers"

    def __init__(self, model: str, *, device: str = "cpu", dtype: str = "auto",
                 batch_size: int = 8, allow_download: bool = False, threads: int | None = None):
        if not allow_download:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self._torch = torch
        kw = {} if allow_download else {"local_files_only": True}
        self.tokenizer = AutoTokenizer.from_pretrained(model, **kw)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.dtype = resolve_dtype(dtype, device)
        log.info("transformers backend: dtype %s (%s)", self.dtype,
                 dtype_reason(dtype, self.dtype, device))
        self.lm = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, self.dtype),
                                                       **kw)
        self.lm.to(device).eval()
        self._lock = threading.Lock()

    def _render(self, req: GenerationRequest) -> str:
        if req.messages and getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                req.chat(), tokenize=False, add_generation_prompt=True)
        if req.messages:
            return "\n\n".join(c for _, c in req.messages) + "\n\n"
        return req.prompt

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        out: list[GenerationResult] = []
        # group requests with identical sampling params (generate takes one config per call)
        i = 0
        while i < len(requests):
            p = requests[i].params
            j = i
            while (j < len(requests) and requests[j].params.n == p.n
                   and requests[j].params.temperature == p.temperature
                   and requests[j].params.top_p == p.top_p
                   and requests[j].params.max_tokens == p.max_tokens
                   and requests[j].params.stop == p.stop
                   and (j - i) * p.n < max(self.batch_size, p.n)):
                j += 1
            out.extend(self._generate_group(requests[i:j]))
            i = j
        return out

    def _generate_group(self, reqs: list[GenerationRequest]) -> list[GenerationResult]:
        torch = self._torch
        p = reqs[0].params
        t0 = time.perf_counter()
        texts = [self._render(r) for r in reqs]
        with self._lock, torch.inference_mode():
            enc = self.tokenizer(texts, return_tensors="pt", padding=True,
                                 add_special_tokens=False).to(self.device)
            torch.manual_seed(derive_seed(*(r.params.seed for r in reqs), *(r.id for r in reqs)))
            sample = p.temperature > 0
            gen_kw: dict[str, Any] = {
                "max_new_tokens": p.max_tokens, "do_sample": sample,
                "num_return_sequences": p.n, "pad_token_id": self.tokenizer.pad_token_id,
            }
            if sample:
                gen_kw.update(temperature=p.temperature, top_p=p.top_p)
            if p.stop:
                gen_kw.update(stop_strings=list(p.stop), tokenizer=self.tokenizer)
            ids = self.lm.generate(**enc, **gen_kw)
        new = ids[:, enc["input_ids"].shape[1]:]
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        dt = time.perf_counter() - t0
        results = []
        for k, r in enumerate(reqs):
            samples = []
            for m in range(p.n):
                row = new[k * p.n + m].tolist()
                n_tok = len(row)
                finish = "length"
                for pos, tok in enumerate(row):
                    if tok == eos or (tok == pad and pad is not None):
                        n_tok, finish = pos, "stop"
                        break
                text = self.tokenizer.decode(row[:n_tok], skip_special_tokens=True)
                text, hit = _truncate_at_stop(text, p.stop)
                samples.append(Sample(text, n_tok, "stop" if hit else finish))
            results.append(GenerationResult(r.id, samples, None, dt / len(reqs)))
        return results

    def close(self) -> None:
        self.lm = None


# --------------------------------------------------------------------------- OpenAI-compatible


class OpenAICompatibleBackend:
    """Client for an OpenAI-compatible server (``/v1/chat/completions`` or ``/v1/completions``).

    Truly concurrent: one persistent pool of ``max_concurrency`` worker threads per backend
    bounds the requests in flight across every ``generate`` call (and every thread calling
    it). With ``split_n`` (default) a request for n samples becomes n HTTP requests with
    ``n=1`` and seeds ``derive_seed(seed, j)``, so a batch of b problems keeps up to
    ``min(max_concurrency, b * n)`` requests in flight instead of b. Each HTTP call has
    ``timeout_s``; 408/409/425/429/5xx and connection errors are retried ``max_retries`` times
    with exponential backoff and jitter (a ``Retry-After`` header is honoured, capped at 30 s).
    A request that still fails yields a result with ``error`` set (the pipeline dead-letters it)
    instead of raising.
    """

    name = "openai"

    def __init__(self, model: str, base_url: str = "http://localhost:8000/v1", *,
                 api_key: str | None = None, max_concurrency: int = 8, timeout_s: float = 120.0,
                 max_retries: int = 4, backoff_s: float = 1.0, chat: bool = True,
                 split_n: bool = True):
        if max_concurrency < 1:
            raise ValueError(f"backend.options.max_concurrency: must be >= 1, got "
                             f"{max_concurrency}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.chat_api = chat
        self.split_n = split_n
        self.retries = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.max_concurrency,
                                                thread_name_prefix="openai-backend")
            return self._pool

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(self.base_url + path, data=data, headers=headers)
            wait = None
            try:
                with self._stats_lock:
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                        return json.loads(resp.read().decode())
                finally:
                    with self._stats_lock:
                        self.in_flight -= 1
            except urllib.error.HTTPError as e:
                body = e.read().decode(errors="replace")[:300]
                last = RuntimeError(f"HTTP {e.code}: {body}")
                if e.code not in (408, 409, 425, 429) and e.code < 500:
                    raise last from None
                try:
                    ra = e.headers.get("Retry-After") if e.headers else None
                    wait = min(30.0, float(ra)) if ra else None
                except ValueError:
                    wait = None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = e
            if attempt < self.max_retries:
                with self._stats_lock:
                    self.retries += 1
                time.sleep(wait if wait is not None else
                           self.backoff_s * (2**attempt) * (0.5 + random.random() / 2))
        assert last is not None
        raise last

    def _call(self, r: GenerationRequest, n: int, seed: int) -> tuple[list[Sample], float]:
        p = r.params
        t0 = time.perf_counter()
        payload: dict[str, Any] = {
            "model": self.model, "n": n, "temperature": p.temperature, "top_p": p.top_p,
            "max_tokens": p.max_tokens, "seed": seed,
        }
        if p.stop:
            payload["stop"] = list(p.stop)
        if self.chat_api and r.messages:
            body = self._post("/chat/completions", {**payload, "messages": r.chat()})
            texts = [(c["message"].get("content") or "", c.get("finish_reason") or "stop")
                     for c in sorted(body["choices"], key=lambda c: c.get("index", 0))]
        else:
            prompt = r.prompt or "\n\n".join(c for _, c in r.messages)
            body = self._post("/completions", {**payload, "prompt": prompt})
            texts = [(c.get("text") or "", c.get("finish_reason") or "stop")
                     for c in sorted(body["choices"], key=lambda c: c.get("index", 0))]
        usage = body.get("usage") or {}
        total = int(usage.get("completion_tokens") or 0)
        per = [total // max(1, len(texts))] * len(texts)
        return [Sample(t, k, f) for (t, f), k in zip(texts, per)], time.perf_counter() - t0

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        pool = self._executor()
        jobs: list[tuple[int, Any]] = []
        for k, r in enumerate(requests):
            n = r.params.n
            if self.split_n and n > 1:
                for j in range(n):
                    jobs.append((k, pool.submit(self._call, r, 1,
                                                derive_seed(r.params.seed, j))))
            else:
                jobs.append((k, pool.submit(self._call, r, n, r.params.seed)))
        samples: list[list[Sample]] = [[] for _ in requests]
        errors: list[str | None] = [None] * len(requests)
        secs = [0.0] * len(requests)
        for k, fut in jobs:
            try:
                got, dt = fut.result()
                samples[k].extend(got)
                secs[k] += dt
            except Exception as e:  # noqa: BLE001 - becomes a dead-letter row upstream
                errors[k] = errors[k] or f"{type(e).__name__}: {e}"
        return [GenerationResult(r.id, [] if errors[k] else samples[k], errors[k], secs[k])
                for k, r in enumerate(requests)]

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


# --------------------------------------------------------------------------- vLLM


class VLLMBackend:
    """vLLM's offline engine (GPU only). Untested on the CPU-only development machines."""

    name = "vllm"

    def __init__(self, model: str, *, dtype: str = "auto", gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None, seed: int = 0, allow_download: bool = False,
                 tensor_parallel_size: int = 1):
        if not allow_download:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from vllm import LLM
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise RuntimeError(
                "the vllm backend needs a GPU machine with `pip install datamill[synth]` "
                f"(vllm==0.32.0): {e}") from None
        self.model = model
        kw: dict[str, Any] = {"model": model, "dtype": dtype, "seed": seed,
                              "gpu_memory_utilization": gpu_memory_utilization,
                              "tensor_parallel_size": tensor_parallel_size}
        if max_model_len:
            kw["max_model_len"] = max_model_len
        self.llm = LLM(**kw)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:  # pragma: no cover - GPU
        from vllm import SamplingParams as VSP

        t0 = time.perf_counter()
        prompts, params = [], []
        for r in requests:
            if r.messages:
                prompts.append(self.tokenizer.apply_chat_template(
                    r.chat(), tokenize=False, add_generation_prompt=True))
            else:
                prompts.append(r.prompt)
            p = r.params
            params.append(VSP(n=p.n, temperature=p.temperature, top_p=p.top_p,
                              max_tokens=p.max_tokens, stop=list(p.stop) or None,
                              seed=derive_seed(p.seed, r.id)))
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        dt = time.perf_counter() - t0
        res = []
        for r, o in zip(requests, outs):
            samples = [Sample(c.text, len(c.token_ids), c.finish_reason or "stop")
                       for c in o.outputs]
            res.append(GenerationResult(r.id, samples, None, dt / max(1, len(requests))))
        return res

    def close(self) -> None:  # pragma: no cover - GPU
        self.llm = None


# --------------------------------------------------------------------------- factory


@dataclass
class BackendConfig:
    """Backend choice as it appears in a synth config (``backend:`` block)."""

    type: str = "transformers"  # transformers | openai | vllm
    model: str = "smollm2"  # path, hub name, or "smollm2" (the offline SmolLM2-135M-Instruct)
    options: dict[str, Any] = field(default_factory=dict)


def resolve_model(model: str) -> str:
    if model == "smollm2":
        from synth.tiny_model import smollm2_path

        return str(smollm2_path())
    return model


def make_backend(cfg: BackendConfig) -> Backend:
    if cfg.type == "transformers":
        return TransformersBackend(resolve_model(cfg.model), **cfg.options)
    if cfg.type == "openai":
        return OpenAICompatibleBackend(cfg.model, **cfg.options)
    if cfg.type == "vllm":
        return VLLMBackend(resolve_model(cfg.model), **cfg.options)
    raise ValueError(f"backend.type: unknown backend {cfg.type!r}; use transformers, openai or vllm")


# --------------------------------------------------------------------------- provenance

_COMMIT = __import__("re").compile(r"/snapshots/([0-9a-f]{40})(?:/|$)")


def _datamill_version() -> str:
    try:
        from importlib.metadata import version

        return version("datamill")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


def model_provenance(cfg: BackendConfig, *, max_hash_bytes: int = 2 * 1024**3) -> dict[str, Any]:
    """Where the weights came from: resolved path or repo, and a revision that pins them.

    * a Hugging Face cache snapshot path: the commit hash in ``snapshots/<commit>/``;
    * another local directory or file: sha256 over every file (relative name + content),
      unless the files exceed ``max_hash_bytes``, then sha256 over (name, size, mtime) and
      ``revision_kind='stat'`` says it is not a content hash;
    * a server (openai backend): the model name and base URL; the server's weights are not
      visible from here (``revision_kind='remote'``).
    """
    out: dict[str, Any] = {"backend": cfg.type, "model": cfg.model, "model_resolved": None,
                           "model_revision": None, "revision_kind": None,
                           "datamill_version": _datamill_version(),
                           "generation_options": [{"key": k, "value": json.dumps(v)} for k, v
                                                  in sorted(generation_options(cfg).items())]}
    if cfg.type == "openai":
        base = cfg.options.get("base_url", "http://localhost:8000/v1")
        out.update(model_resolved=f"{base.rstrip('/')}#{cfg.model}", revision_kind="remote")
        return out
    try:
        path = resolve_model(cfg.model)
    except Exception as e:  # noqa: BLE001 - reported, not fatal for provenance
        out["revision_kind"] = f"unresolved: {type(e).__name__}"
        return out
    out["model_resolved"] = path
    p = os.path.realpath(path)
    m = _COMMIT.search(path) or _COMMIT.search(p)
    if m:
        out.update(model_revision=m.group(1), revision_kind="hub_commit")
        return out
    if not os.path.exists(p):
        out["revision_kind"] = "hub_name_unresolved"
        return out
    files = []
    if os.path.isdir(p):
        for root, _, names in os.walk(p):
            for nm in names:
                files.append(os.path.join(root, nm))
    else:
        files = [p]
    files.sort()
    total = sum(os.path.getsize(f) for f in files)
    h = hashlib.sha256()
    if total <= max_hash_bytes:
        for f in files:
            h.update(os.path.relpath(f, p).encode() + b"\0")
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        kind = "sha256"
    else:
        for f in files:
            st = os.stat(f)
            h.update(f"{os.path.relpath(f, p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        kind = "stat"
    out.update(model_revision=h.hexdigest(), revision_kind=kind)
    return out
