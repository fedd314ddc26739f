"""Self-contained ``report.html``: funnel per stage and reason, lengths before/after, runtime.

Figures are matplotlib PNGs embedded as base64, so the file can be mailed or attached to a
ticket as is. Stages add their own sections through ``Stage.report_section``.
"""


from __future__ import annotations

import html
import json
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from apache_beam.io.filesystems import FileSystems  # noqa: E402

from pipelines.report.html import figure_html, format_cell, table_html
from pipelines.report.redact import redact_html, snippet_redactor

# Tables never widen the page: a wide table scrolls inside its own box (display:block +
# overflow-x); tables of texts and ids (class pair: side by side, class wrap: with <col> widths)
# take the page width and break long words and ids inside their columns.
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ddd;padding:.25rem .6rem;
text-align:right} th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.ok{color:#16794a;font-weight:600} .bad{color:#b00020;font-weight:600} .muted{color:#777}
img{max-width:100%} code{background:#f4f4f4;padding:0 .2rem}
.snip{white-space:pre-wrap;text-align:left;margin:.2rem 0;font-size:.9em}
nav.toc{background:#fafafa;border:1px solid #eee;padding:.4rem 1rem;margin:1rem 0}
nav.toc a{margin-right:1rem}
table{display:block;width:max-content;max-width:100%;overflow-x:auto}
table.pair,table.wrap{display:table;width:100%;table-layout:fixed}
table.pair td,table.pair th,table.wrap td,table.wrap th{overflow-wrap:anywhere}
table.pair td{vertical-align:top;width:50%} table.wrap td{vertical-align:top;text-align:left}
table.pair th,table.wrap th{text-align:left}
table.pair caption{text-align:left;font-size:.9em;padding:.2rem 0}
mark.d1{background:#fdd} mark.d2{background:#cfc}
.skip{color:#888;font-style:italic}
"""


def ordered_stages(stats: dict) -> list[tuple[str, dict]]:
    """``(label, stage stats)`` in pipeline order.

    stats.json is written with sorted keys, so the ``stages`` mapping read back from it is
    alphabetical; the pipeline order is kept in ``stage_order`` (and each stage's ``index``).
    """
    stages = stats.get("stages") or {}
    order = stats.get("stage_order")
    if not order:
        order = sorted(stages, key=lambda k: (stages[k].get("index", 1 << 30), ))
    return [(k, stages[k]) for k in order if k in stages]


def _funnel(stats: dict) -> str:
    ordered = ordered_stages(stats)
    labels = ["input"] + [k for k, _ in ordered] + ["kept"]
    values = [stats["counts"]["input"]] + [s.get("out", 0) for _, s in ordered]
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
    order = ["read", *(k for k, _ in ordered_stages(stats)), "write", "accounting"]
    items = [(k, runtime[k]) for k in order if k in runtime]
    note = (f"<p>Wall time {stats['wall_seconds']:.1f} s for {stats['counts']['input']:,} input "
            f"records ({format_cell(stats.get('docs_per_second'))} docs/s) on {stats['runner']}.</p>")
    if not items:
        return note + "<p class=muted>The runner reported no per-transform timings.</p>"
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(items) + 1))
    ax.barh([k for k, _ in items], [v / 1000 for _, v in items], color="#dd8452")
    ax.invert_yaxis()
    ax.set_xlabel("execution time summed over workers (s)")
    source = {"transform": "Beam per-transform timings",
              "user": "datamill stage timers (record stages only)"}.get(
                  stats.get("runtime_source", "transform"), "runner metrics")
    ax.set_title(f"Runtime per stage ({source})")
    return note + figure_html(fig, "runtime per stage")


def _reasons(stats: dict) -> str:
    rows = []
    for label, st in [("read", stats["read"]), *ordered_stages(stats)]:
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


def _breakdown(stats: dict) -> str:
    """Kept and removed per source and per language (after filtering), with token totals."""
    bd = stats.get("breakdown") or {}
    parts = []
    for kind, title in (("by_source", "source"), ("by_language", "language")):
        rows = bd.get(kind) or {}
        if kind == "by_language" and set(rows) <= {"-"}:
            continue  # no language column in this build
        has_tokens = any(v.get("kept_tokens") for v in rows.values())
        header = [title, "kept", "removed", "kept %", "kept characters"]
        header += ["kept tokens"] if has_tokens else []
        header += ["removed by stage"]
        body = []
        # every value seen, those with nothing kept too; language '-' (records removed before
        # language ID, no language yet) last, as in the card (pipelines/report/card.py)
        for name, v in sorted(rows.items(), key=lambda kv: (
                kind == "by_language" and kv[0] == "-", -kv[1]["kept"], -kv[1]["removed"],
                kv[0])):
            total = v["kept"] + v["removed"]
            if kind == "by_language" and name == "-":
                name = "- (no language)" if v["kept"] else "- (removed before language ID)"
            row = [name, v["kept"], v["removed"],
                   f"{100 * v['kept'] / total:.1f}%" if total else "", v["kept_chars"]]
            row += [v["kept_tokens"]] if has_tokens else []
            row.append(", ".join(f"{k}: {n:,}" for k, n in
                                 sorted(v["removed_by_stage"].items(), key=lambda kv: -kv[1])))
            body.append(row)
        if body:
            parts.append(f"<h3>Per {title}</h3>" + table_html(header, body))
    if not parts:
        return ""
    note = ("<p class=muted>Records removed before a language was known (before language_id) "
            "have no language: they are the last row, '-'.</p>")
    return "".join(parts) + note


def _language_warnings(stats: dict) -> list[str]:
    """A language that lost most of its documents to one stage (pipelines/build/breakdown.py),
    shown above the contents: usually English thresholds applied to another language."""
    warns = (stats.get("breakdown") or {}).get("language_warnings") or []
    if not warns:
        return []
    items = "".join(f"<li>{html.escape(w['message'])}</li>" for w in warns)
    return [f'<div class="bad"><b>Warning</b>: a language lost most of its documents to one '
            f"stage<ul>{items}</ul></div>"]


def _anchor(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")


def render(stats: dict, out: str, stages: list[Any] | None = None,
           files_dir: str | None = None, redactor: Any = None) -> str:
    """The page. ``redactor``: a filters.pii.PiiRedactor run over every text the page shows
    (``output.redact_snippets``, pipelines/report/redact.py), or None."""
    c = stats["counts"]
    ok = stats["conservation_ok"]
    check = (f'<span class="{"ok" if ok else "bad"}">{"balanced" if ok else "DOES NOT BALANCE"}'
             f"</span>: input {c['input']:,} = kept {c['kept']:,} + removed {c['removed']:,} + "
             f"dead-letter {c['dead_letter']:,}")
    # a `resumed` column only when some stage's records came from a checkpoint
    resumed = any(st.get("resumed") for _, st in ordered_stages(stats))
    stage_rows = [[label, st["stage"], st.get("in"), st.get("out"),
                   sum(st.get("removed", {}).values()), sum(st.get("dead_letter", {}).values()),
                   *(["yes" if st.get("resumed") else ""] if resumed else [])]
                  for label, st in ordered_stages(stats)]
    sections: list[tuple[str, str]] = [
        ("Funnel", table_html(["stage", "type", "in", "out", "removed", "dead-letter",
                               *(["resumed"] if resumed else [])], stage_rows) + _funnel(stats)),
        ("Removed and dead-lettered, per stage and reason",
         _reasons(stats) + _dead_examples(files_dir or out)),
    ]
    skipped = stats.get("skipped_files") or []
    if skipped:  # found under a source path but not read (wrong suffix, FIFO, broken link...)
        shown = [[s["source"], s["path"], s["reason"]] for s in skipped[:50]]
        more = f"<p class=muted>... and {len(skipped) - 50:,} more (stats.json skipped_files)</p>"
        sections.append((f"Skipped input files ({len(skipped):,})",
                         table_html(["source", "path", "reason"], shown)
                         + (more if len(skipped) > 50 else "")))
    breakdown = _breakdown(stats)
    if breakdown:
        sections.append(("Per source and language", breakdown))
    sections += [("Lengths", _lengths(stats)), ("Runtime", _runtime(stats))]
    by_label = {stage.label: stage for stage in stages or []}
    for label, st in ordered_stages(stats):
        stage = by_label.get(label)
        if stage is None:
            continue
        try:  # st: the stage's stats.json entry, its values made plain when they were
            # gathered (stat_value in build/stats.py, in every stats.json ever written), so
            # a re-render (`datamill report`) and the build pass the same shape
            section = stage.report_section(st)
        except Exception as err:  # noqa: BLE001 - a broken plot must not lose the report
            section = f"<p class=bad>report section failed: {html.escape(repr(err))}</p>"
        if section:
            sections.append((f"Stage {stage.label} ({stage.name})", section))
    toc = " ".join(f'<a href="#{_anchor(t)}">{html.escape(t)}</a>' for t, _ in sections)
    parts = [
        f"<h1>datamill build: {html.escape(stats['name'])}</h1>",
        f"<p class=muted>run {html.escape(stats['run_id'])} &middot; output "
        f"<code>{html.escape(out)}</code></p>",
        f"<p>{check}</p>",
        *_language_warnings(stats),
        f'<nav class=toc><b>Contents</b>: {toc}</nav>',
    ]
    if redactor is not None:
        parts.append("<p class=muted>E-mail addresses, IP addresses and phone numbers in the "
                     "text below are replaced by placeholders (output.redact_snippets); "
                     "removed/ and dead_letter/ keep the original text.</p>")
    for title, body in sections:
        parts.append(f'<h2 id="{_anchor(title)}">{html.escape(title)}</h2>{body}')
    body = redact_html("\n".join(parts), redactor)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>datamill report</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>")


def write_report(plan: Any, stats: dict, folder: str | None = None) -> str:
    # folder: where the build's files are before promotion (its staging directory)
    path = f"{folder or plan.out}/report.html"
    page = render(stats, plan.out, plan.stages, files_dir=folder,
                  redactor=snippet_redactor(plan.cfg))
    with FileSystems.create(path) as fh:
        fh.write(page.encode("utf-8"))
    return path
