"""Self-contained ``report.html``: funnel per stage and reason, lengths before/after, runtime.

Figures are matplotlib PNGs embedded as base64, so the file can be mailed or attached to a
ticket as is. Stages add their own sections through ``Stage.report_section``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from apache_beam.io.filesystems import FileSystems  # noqa: E402

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ddd;padding:.25rem .6rem;
text-align:right} th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.ok{color:#16794a;font-weight:600} .bad{color:#b00020;font-weight:600} .muted{color:#777}
img{max-width:100%} code{background:#f4f4f4;padding:0 .2rem}
"""


def figure_html(fig: Any, alt: str = "figure") -> str:
    """Render a matplotlib figure as an inline <img> and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def table_html(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def _funnel(stats: dict) -> str:
    labels = ["input"] + list(stats["stages"]) + ["kept"]
    values = [stats["counts"]["input"]] + [s.get("out", 0) for s in stats["stages"].values()]
    values.append(stats["counts"]["kept"])
    read_dead = sum(stats["read"]["dead_letter"].values())
    labels.insert(1, "parsed")
    values.insert(1, stats["counts"]["input"] - read_dead)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1))
    ax.barh(range(len(labels)), values, color="#4c72b0")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:,}", va="center", fontsize=8)
    ax.set_xlabel("records remaining")
    ax.set_title("Record funnel")
    return figure_html(fig, "record funnel")


def _lengths(stats: dict) -> str:
    before, after = stats.get("input_lengths"), stats.get("kept_lengths")
    if not before:
        return "<p class=muted>No input length histogram (run resumed from a checkpoint).</p>"
    fig, ax = plt.subplots(figsize=(8, 3.2))
    edges = before["edges"]
    widths = [edges[i + 1] - edges[i] for i in range(len(edges) - 1)]
    ax.bar(edges[:-1], before["counts"], width=widths, align="edge", alpha=0.5, label="input")
    if after:
        ax.bar(edges[:-1], after["counts"], width=widths, align="edge", alpha=0.6, label="kept")
    ax.set_xscale("symlog")
    ax.set_xlabel("document length (characters, log scale)")
    ax.set_ylabel("documents")
    ax.legend()
    ax.set_title("Length distribution before and after curation")
    return figure_html(fig, "length histogram")


def _runtime(stats: dict) -> str:
    runtime = stats.get("runtime_ms") or {}
    order = ["read", *stats["stages"], "write", "accounting"]
    items = [(k, runtime[k]) for k in order if k in runtime]
    note = (f"<p>Wall time {stats['wall_seconds']:.1f} s for {stats['counts']['input']:,} input "
            f"records ({_fmt(stats.get('docs_per_second'))} docs/s) on {stats['runner']}.</p>")
    if not items:
        return note + "<p class=muted>The runner reported no per-transform timings.</p>"
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(items) + 1))
    ax.barh([k for k, _ in items], [v / 1000 for _, v in items], color="#dd8452")
    ax.invert_yaxis()
    ax.set_xlabel("execution time summed over workers (s)")
    ax.set_title("Runtime per stage (Beam per-transform timings)")
    return note + figure_html(fig, "runtime per stage")


def _reasons(stats: dict) -> str:
    rows = []
    for label, st in [("read", stats["read"]), *stats["stages"].items()]:
        for reason, n in sorted(st.get("removed", {}).items()):
            rows.append([label, "removed", reason, n])
        for reason, n in sorted(st.get("dead_letter", {}).items()):
            rows.append([label, "dead-letter", reason, n])
    if not rows:
        return "<p>Nothing was removed.</p>"
    return table_html(["stage", "outcome", "reason", "records"], rows)


def _dead_examples(out: str, limit: int = 8) -> str:
    rows = []
    try:
        for m in sorted(FileSystems.match([f"{out}/dead_letter/*.jsonl.gz"])[0].metadata_list,
                        key=lambda m: m.path):
            with FileSystems.open(m.path) as fh:  # .gz is decompressed by extension
                for line in fh.read().decode("utf-8").splitlines():
                    d = json.loads(line)
                    rows.append([d["stage"], d["reason"][:80], d.get("location") or d.get("id"),
                                 d["raw"][:100]])
                    if len(rows) >= limit:
                        break
            if len(rows) >= limit:
                break
    except Exception:  # noqa: BLE001 - examples are a convenience only
        return ""
    if not rows:
        return ""
    return "<h3>Dead-letter examples</h3>" + table_html(["stage", "reason", "where", "raw"], rows)


def render(stats: dict, out: str, stages: list[Any] | None = None,
           files_dir: str | None = None) -> str:
    c = stats["counts"]
    ok = stats["conservation_ok"]
    check = (f'<span class="{"ok" if ok else "bad"}">{"balanced" if ok else "DOES NOT BALANCE"}'
             f"</span>: input {c['input']:,} = kept {c['kept']:,} + removed {c['removed']:,} + "
             f"dead-letter {c['dead_letter']:,}")
    stage_rows = [[label, st["stage"], st.get("in"), st.get("out"),
                   sum(st.get("removed", {}).values()), sum(st.get("dead_letter", {}).values()),
                   "yes" if st.get("resumed") else ""]
                  for label, st in stats["stages"].items()]
    parts = [
        f"<h1>datamill build: {html.escape(stats['name'])}</h1>",
        f"<p class=muted>run {html.escape(stats['run_id'])} &middot; output "
        f"<code>{html.escape(out)}</code></p>",
        f"<p>{check}</p>",
        "<h2>Funnel</h2>",
        table_html(["stage", "type", "in", "out", "removed", "dead-letter", "resumed"], stage_rows),
        _funnel(stats),
        "<h2>Removed and dead-lettered, per stage and reason</h2>",
        _reasons(stats),
        _dead_examples(files_dir or out),
        "<h2>Lengths</h2>",
        _lengths(stats),
        "<h2>Runtime</h2>",
        _runtime(stats),
    ]
    for stage in stages or []:
        st = stats["stages"].get(stage.label, {})
        try:
            section = stage.report_section(st)
        except Exception as err:  # noqa: BLE001 - a broken plot must not lose the report
            section = f"<p class=bad>report section failed: {html.escape(repr(err))}</p>"
        if section:
            parts.append(f"<h2>Stage {html.escape(stage.label)} ({stage.name})</h2>{section}")
    body = "\n".join(parts)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>datamill report</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>")


def write_report(plan: Any, stats: dict, folder: str | None = None) -> str:
    # folder: where the build's files are before promotion (its staging directory)
    path = f"{folder or plan.out}/report.html"
    page = render(stats, plan.out, plan.stages, files_dir=folder)
    with FileSystems.create(path) as fh:
        fh.write(page.encode("utf-8"))
    return path
