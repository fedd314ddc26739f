"""Headless Chromium for report tests: load a page in a fixed-size frame, run a script in it and
read back what the script measured (element boxes, overflow, table contents).

Debian's ``chromium`` (installed by .ci/run); tests skip where no browser is installed, and fail
instead under ``CI=true``. Runs as
root in CI: ``--no-sandbox``; no GPU: ``--disable-gpu``; its own profile in a temp folder."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from pathlib import Path

import pytest

# Facts about a report page, computed in the page by Chromium's layout. ``d``: the report's
# document inside a frame of the width given to ``page_facts``.
LAYOUT_JS = r"""
const body = d.body.getBoundingClientRect();
const heading = el => { let e = el.closest('div.scroll') || el;
  while (e && !/^H[1-4]$/.test(e.tagName)) e = e.previousElementSibling || e.parentElement;
  return e ? e.textContent.trim() : ''; };
// content of a cell that runs past the cell's box (into the next column or out of the table)
const spills = c => { const r = d.createRange(); r.selectNodeContents(c);
  const b = r.getBoundingClientRect(), box = c.getBoundingClientRect();
  return b.width > 0 && (b.right > box.right + 1 || b.left < box.left - 1); };
// the box that scrolls a wide table: the table itself (display:block) or a wrapper
const scroller = t => { const s = t.closest('div.scroll') || t;
  return ['auto', 'scroll'].includes(getComputedStyle(s).overflowX) ? s : null; };
const tables = [...d.querySelectorAll('table')].map(t => {
  const s = scroller(t), box = (s || t).getBoundingClientRect();
  const width = s ? Math.max(s.scrollWidth, t.getBoundingClientRect().width)
                  : t.getBoundingClientRect().width;
  return {heading: heading(t), cls: t.className, width: Math.round(width),
    // fits: the whole table is visible inside the page's column without scrolling;
    // boxFits: the table, or the box it scrolls in, stays inside the column
    fits: box.left + width <= body.right + 1, boxFits: box.right <= body.right + 1,
    scrolls: !!s && s.scrollWidth > s.clientWidth + 1,
    header: [...t.querySelectorAll('tr:first-child th')].map(c => c.textContent.trim()),
    first: [...t.querySelectorAll('tr')].slice(1).map(r => r.cells[0] ? r.cells[0].textContent.trim() : ''),
    spilling: [...t.querySelectorAll('th,td')].filter(spills).map(c => c.textContent.trim().slice(0, 50))};
});
facts = {pageOverflow: d.documentElement.scrollWidth - d.documentElement.clientWidth,
  bodyWidth: Math.round(body.width), tables,
  images: d.images.length,
  broken: [...d.images].filter(i => !i.complete || i.naturalWidth === 0).length,
  toc: d.querySelectorAll('nav.toc a').length, h2: d.querySelectorAll('h2[id]').length};
"""


def chromium() -> str:
    """The browser; a skip where none is installed, except in CI (``CI=true``, where .ci/run
    installs it): there a missing browser fails the layout checks instead of hiding them,
    unless ``CI_CHROMIUM=0`` says the machine cannot install one (.ci/run sets it when there is
    no apt-get or no root)."""
    import os

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes") and \
                os.environ.get("CI_CHROMIUM", "1") != "0":
            pytest.fail("CI=true but chromium is not installed: .ci/run installs Debian's "
                        "chromium for the report layout checks")
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return browser


def _args(browser: str, tmp_path: Path) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-dev-shm-usage", "--allow-file-access-from-files",
            f"--user-data-dir={tmp_path / 'chromium-profile'}"]


def page_facts(page: Path, tmp_path: Path, script: str = LAYOUT_JS, width: int = 1200,
               height: int = 900) -> dict:
    """Load ``page`` in a ``width`` x ``height`` frame, run ``script`` (it reads the page as
    ``d`` and sets ``facts``) once the page has loaded, and return ``facts``."""
    browser = chromium()
    tmp_path.mkdir(parents=True, exist_ok=True)
    probe = tmp_path / "probe.html"
    probe.write_text(
        f'<iframe id=f src="{page.as_uri()}" width={width} height={height}></iframe><script>'
        "onload=()=>{const d=document.getElementById('f').contentDocument;let facts={};"
        f"try{{{script}}}catch(e){{facts={{error:String(e)}}}}"
        "document.title=JSON.stringify(facts)}</script>")
    done = subprocess.run([*_args(browser, tmp_path), "--virtual-time-budget=5000",
                           "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=60, check=False)
    dom = done.stdout
    assert "<title>" in dom, f"chromium returned no page: {done.stderr[-2000:]}"
    facts = json.loads(html.unescape(dom.split("<title>")[1].split("</title>")[0]))
    assert "error" not in facts, facts
    return facts


def screenshot(page: Path, tmp_path: Path, width: int = 1200, height: int = 1600) -> Path:
    """A PNG of the top of ``page`` as Chromium draws it."""
    shot = tmp_path / "report.png"
    subprocess.run([*_args(chromium(), tmp_path), f"--screenshot={shot}",
                    f"--window-size={width},{height}", "--hide-scrollbars", page.as_uri()],
                   capture_output=True, timeout=60, check=False)
    return shot
