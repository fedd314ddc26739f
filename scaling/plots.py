"""Plots for the recommender (matplotlib, Agg backend; no display needed)."""

from __future__ import annotations

import base64
import io
from typing import Any


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def frontier_figure(data: dict[str, Any], sweep: list[dict[str, Any]]):
    """Loss vs compute for each pool set (each at its best size and weighting), the budget,
    and the compute ranges where each pool set is best."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=110)
    sets: list[str] = []
    for row in sweep:
        for k in row["sets"]:
            if k not in sets:
                sets.append(k)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(sets):
        xs = [r["flops"] for r in sweep if name in r["sets"]]
        ys = [r["sets"][name]["loss"] for r in sweep if name in r["sets"]]
        ax.plot(xs, ys, marker="o", ms=3, lw=1.5, color=colors[i % len(colors)], label=name)
    # Shade where each set is best.
    for a, b in zip(sweep, sweep[1:]):
        if a["best_set"] is None:
            continue
        j = sets.index(a["best_set"])
        ax.axvspan(a["flops"], b["flops"], color=colors[j % len(colors)], alpha=0.08, lw=0)
    for a, b in zip(sweep, sweep[1:]):
        if a["best_set"] != b["best_set"] and b["best_set"] is not None:
            ax.axvline(b["flops"], color="0.4", ls=":", lw=1)
    rec = data["recommendation"]
    ax.axvline(rec["compute_flops"], color="k", ls="--", lw=1, label="plan")
    ax.plot([rec["compute_flops"]], [rec["predicted_loss"]["point"]], marker="*", ms=12,
            color="k", zorder=5)
    dl = rec.get("data_limit") or {}
    if dl.get("saturation_compute"):
        ax.axvline(dl["saturation_compute"], color="tab:red", ls="-.", lw=1.2,
                   label="data-limited beyond (more compute buys ~nothing)")
    if rec.get("compute_budget") and rec["compute_budget"] != rec["compute_flops"]:
        ax.axvline(rec["compute_budget"], color="0.5", ls="--", lw=1, label="budget given")
    warns = rec.get("warnings") or []
    if warns:
        import textwrap

        text = "\n".join(textwrap.shorten(f"! {w}", 110) for w in warns[:4])
        if len(warns) > 4:
            text += f"\n(+{len(warns) - 4} more warnings in the YAML)"
        fig.text(0.01, 0.01, text, fontsize=6.5, color="tab:red", va="bottom", ha="left")
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs, C = 6ND)")
    ax.set_ylabel("predicted loss")
    ax.set_title("Best pool set by compute (shaded: where each set wins)")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, which="both", alpha=0.2)
    n_warn = min(len(warns), 4) + (len(warns) > 4)
    fig.tight_layout(rect=(0, 0.03 * n_warn, 1, 1))
    return fig


def save_frontier_plot(data: dict[str, Any], sweep: list[dict[str, Any]], path: str) -> None:
    plt = _plt()
    fig = frontier_figure(data, sweep)
    fig.savefig(path)
    plt.close(fig)


def figure_png_base64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")
