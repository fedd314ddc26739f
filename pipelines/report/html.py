"""HTML building blocks of report sections: inline matplotlib figures and tables."""


from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def figure_html(fig: Any, alt: str = "figure", laid_out: bool = False) -> str:
    """Render a matplotlib figure as an inline <img> and close it.

    One layout pass (``tight_layout``, unless the caller placed the axes itself:
    ``laid_out``) and one draw: with ``bbox_inches="tight"`` on top, matplotlib drew every
    figure once more just to measure it, and the report's figures were most of the build
    driver's CPU on a small build."""
    buf = io.BytesIO()
    if not laid_out:
        fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def table_html(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_cell(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def format_cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)
