"""A build whose every bundle runs in SDK worker processes of an EXTERNAL worker pool.

This is the Fn API path Flink, Spark and Dataflow workers use: the runner (Beam's FnApiRunner,
the engine of Beam's embedded job server) sends bundles over gRPC to ``-w`` SDK worker
processes that a separate pool process (``python -m apache_beam.runners.worker.worker_pool_main``)
started in another working directory. The same config then runs on the local runner with
``-w`` worker subprocesses, and the two outputs are compared file by file (sha256 of every
file under ``data/``, ``removed/`` and ``dead_letter/``).

Reported per run: wall, docs/s, the driver's peak RSS (its process tree) and, for the pool run,
the peak RSS of each SDK worker process (``/proc/<pid>/status`` VmRSS sampled every 0.25 s).

    python bench/bench_external_pool.py --corpus /work/corpora/300k.jsonl --stages minhash -w 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale_build import ROOT, STAGE_SETS, RssSampler, build_config, tree_rss  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                continue
    return out


class WorkerPeaks(threading.Thread):
    """Peak RSS of every process the pool started (its SDK workers), by pid."""

    def __init__(self, pool_pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pool_pid, self.interval = pool_pid, interval
        self.peaks: dict[int, int] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for pid in _children(self.pool_pid):
                self.peaks[pid] = max(self.peaks.get(pid, 0), tree_rss(pid))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def digest(out: Path) -> dict[str, str]:
    files = {}
    for sub in ("data", "removed", "dead_letter"):
        for f in sorted((out / sub).rglob("*")):
            if f.is_file():
                files[f.relative_to(out).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return files


def run_build(cfg: dict, work: Path, tag: str, extra: list[str]) -> tuple[dict, Path]:
    import yaml

    out = Path(cfg["output"]["dir"])
    cfg_path = work / f"cfg-{tag}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", "from pipelines.cli.main import main; main()",
                             "build", str(cfg_path), "--force", *extra], env=env, cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = RssSampler(proc.pid)
    sampler.start()
    log = proc.stdout.read()
    proc.wait()
    sampler.stop()
    wall = time.perf_counter() - t0
    res = {"run": tag, "rc": proc.returncode, "wall_s": round(wall, 1),
           "driver_peak_rss_gb": round(sampler.peak / 2**30, 2)}
    if proc.returncode == 0:
        stats = json.loads((out / "stats.json").read_text())
        res.update(input=stats["counts"]["input"], kept=stats["counts"]["kept"],
                   docs_s=round(stats["counts"]["input"] / wall, 1))
    else:
        res["log_tail"] = log[-3000:]
    return res, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--stages", default="minhash", choices=sorted(STAGE_SETS))
    ap.add_argument("-w", "--workers", type=int, default=2)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--work", default=None)
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="datamill-pool-"))
    work.mkdir(parents=True, exist_ok=True)
    pool_dir = work / "pool-cwd"
    pool_dir.mkdir(exist_ok=True)
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    pool_log = open(work / "pool.log", "wb")  # noqa: SIM115
    pool = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                             f"--service_port={port}"], cwd=pool_dir, env=env, stdout=pool_log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("localhost", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        cfg = build_config(a.corpus, a.stages, str(work / "out-pool"), a.shards, a.workers)
        cfg["runner"]["direct_running_mode"] = "in_memory"
        peaks = WorkerPeaks(pool.pid)
        peaks.start()
        res, out_pool = run_build(cfg, work, "pool", [
            "--environment_type=EXTERNAL", f"--environment_config=localhost:{port}"])
        peaks.stop()
        res["workers_started"] = (work / "pool.log").read_text().count("Starting worker")
        res["worker_peak_rss_gb"] = [round(v / 2**30, 2) for _, v in sorted(peaks.peaks.items())]
        print(json.dumps(res), flush=True)
    finally:
        os.killpg(pool.pid, signal.SIGTERM)
        pool.wait(timeout=30)
    cfg = build_config(a.corpus, a.stages, str(work / "out-local"), a.shards, a.workers)
    ref, out_local = run_build(cfg, work, "local", [])
    print(json.dumps(ref), flush=True)
    d_pool, d_local = digest(out_pool), digest(out_local)
    same = d_pool == d_local and bool(d_pool)
    print(json.dumps({"files": len(d_pool), "byte_identical": same,
                      "differing": sorted(k for k in set(d_pool) | set(d_local)
                                          if d_pool.get(k) != d_local.get(k))[:10]}), flush=True)
    if same:  # differing outputs stay for a look
        shutil.rmtree(out_pool, ignore_errors=True)
        shutil.rmtree(out_local, ignore_errors=True)


if __name__ == "__main__":
    main()
