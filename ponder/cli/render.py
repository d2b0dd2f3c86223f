"""Terminal views: a compact tree, usage, the run summary table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.tree import Tree as RichTree

from search.trace import SearchResult
from search.tree import Tree


def _label(tree: Tree, node_id: int, chosen: set[int], width: int) -> str:
    node = tree[node_id]
    text = " ".join(node.text.split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    bits = [f"#{node.id}", f"n={node.visits}"]
    if node.visits:
        bits.append(f"v={node.value:.2f}")
    bits.append(f"p={node.prior:.2f}")
    for key, score in node.scores.items():
        bits.append(f"{key}={score:.2f}")
    if node.answer is not None:
        bits.append(f"ans={node.answer}")
    if node.error:
        bits.append("ERROR")
    label = escape(f"[{' '.join(bits)}] {text!r}")
    return f"[bold green]{label}[/]" if node_id in chosen else label


def tree_view(result: SearchResult, *, max_children: int = 4, max_depth: int = 6, width: int = 60) -> RichTree:
    """The search tree, the chosen path in green; wide levels are elided."""
    tree, chosen = result.tree, set(result.path)
    root = RichTree(f"[bold]root[/] ({len(tree)} nodes)")

    def add(parent_view: RichTree, node_id: int, depth: int) -> None:
        kids = tree[node_id].children
        if depth >= max_depth and kids:
            parent_view.add(f"… {len(tree.subtree(node_id)) - 1} more below")
            return
        ranked = sorted(kids, key=lambda c: (c not in chosen, -tree[c].visits, c))
        for c in ranked[:max_children]:
            add(parent_view.add(_label(tree, c, chosen, width)), c, depth + 1)
        if len(kids) > max_children:
            parent_view.add(f"… {len(kids) - max_children} more siblings")

    add(root, 0, 0)
    return root


def usage_table(usage: Mapping[str, Any], title: str = "usage") -> Table:
    table = Table(title=title, show_header=False)
    for key, value in usage.items():
        table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
    return table


def summary_table(summary: Mapping[str, Any], title: str) -> Table:
    """Accuracy (over finished problems), errors, server outages and restarts, tokens, cached-token
    share, calls, wall, tok/s (of every generated token), and in label runs the labels and the
    search's and the label rollouts' tokens and calls apart: one metric per row."""
    formats = {
        "problems": "{:d}", "accuracy": "{:.3f}", "errors": "{:d}", "server_outages": "{:d}",
        "server_restarts": "{:d}", "labels": "{:d}", "generated_tokens": "{:d}", "search_tokens": "{:d}",
        "label_rollout_tokens": "{:d}", "prompt_tokens": "{:d}", "cached_share": "{:.2f}",
        "reward_tokens": "{:d}", "calls": "{:d}", "search_calls": "{:d}", "label_rollout_calls": "{:d}",
        "wall_seconds": "{:.1f}", "tok_per_s": "{:.1f}",
    }
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, fmt in formats.items():
        if name in summary:
            table.add_row(name.replace("_", " "), fmt.format(summary[name]))
    return table
