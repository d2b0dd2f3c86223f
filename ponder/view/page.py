"""The view's HTML: one file, the CSS and JavaScript of ``assets/`` inlined, data as JSON blocks.

The index data (runs, totals, problem rows) is one ``<script type="application/json">``
block parsed at load; each problem's tree is a block of its own (``id="tree-KEY"``), parsed
only when its tree page opens, so a run of 200 problems with 1,000-node trees opens as fast
as its table. Nothing is fetched at view time.
"""

from __future__ import annotations

import html
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from ponder.view.data import read_view

ASSETS = ("view.css", "app.js", "tree.js")


def _asset(name: str) -> str:
    return resources.files("ponder.view").joinpath("assets", name).read_text(encoding="utf-8")


def _json_block(block_id: str, data: Any) -> str:
    # "<" only ever occurs inside JSON strings, where \u003c means the same character; so no
    # "</script>" or "<!--" can end or confuse the block.
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")
    return f'<script type="application/json" id="{html.escape(block_id)}">{text}</script>\n'


def render_html(index: dict[str, Any], trees: dict[str, dict[str, Any]]) -> str:
    """The whole page for ``index`` (see :func:`ponder.view.data.read_view`) and its trees."""
    css = _asset("view.css")
    scripts = "".join(f"<script>\n{_asset(name)}\n</script>\n" for name in ASSETS[1:])
    blocks = "".join(_json_block(f"tree-{key}", tree) for key, tree in trees.items())
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<link rel=\"icon\" href=\"data:,\"><title>ponder view: {html.escape(index['title'])}</title>"
            f"<style>\n{css}\n</style></head>\n<body><div id=\"app\"></div>\n"
            f"{_json_block('ponder-data', index)}{blocks}{scripts}</body></html>\n")


def write_view(run_dir: str | Path, out: str | Path | None = None, problem_id: str | None = None,
               *, with_gold: bool = True) -> Path:
    """Writes the view of ``run_dir`` to ``out`` (default ``RUN_DIR/view.html``) and returns it.

    Args:
        run_dir: A run directory or a folder of run directories.
        out: The HTML file to write (its folder is created).
        problem_id: Open on this problem's tree (the first run holding it).
        with_gold: Show gold answers of finished problems (read from the run's task set).

    Raises:
        ViewError: ``run_dir`` holds no run, or ``problem_id`` is not in it.
    """
    from ponder.view.data import ViewError

    index, trees = read_view(run_dir, with_gold=with_gold)
    if problem_id is not None:
        where = next((r["index"] for r in index["runs"] if any(p["id"] == problem_id for p in r["problems"])), None)
        if where is None:
            raise ViewError(f"problem_id {problem_id!r}: not in {run_dir}")
        index["start"] = {"run": where, "p": problem_id}
    target = Path(out) if out is not None else Path(run_dir) / "view.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(render_html(index, trees), encoding="utf-8")
    os.replace(tmp, target)
    return target
