"""`ponder bench view`: how fast a big run's view opens in the system Chromium.

Writes a synthetic run directory through the real code (``search.tree.Tree`` ->
``SearchResult.to_trace`` -> ``ponder.rundir.RunDir.record``, label files of
``StepLabel``s), builds its view with ``ponder view``'s writer, then loads the page in
headless Chromium several times (a fresh browser each time) and reports:

- *ready*: ``performance.now()`` when the run page is drawn (from navigation start, so the
  HTML parse of the whole file, every tree block included, is in it);
- *tree open*: parsing one problem's tree block, its layout and its SVG, timed in the page;
- *get*: ``driver.get`` until the load event, timed from Python (WebDriver overhead included);
- the HTML size.

No model, no network. The machine may be shared with other jobs: the load average is
printed beside the numbers.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ponder.rundir import RunDir
from search.labels.records import StepLabel
from search.protocols import Problem, StepProposal, Usage
from search.trace import SearchResult
from search.tree import Tree

WORDS = ("add", "the", "next", "term", "so", "we", "get", "carry", "one", "total", "is", "then", "check", "sum",
         "first", "second", "digits", "plus", "equals", "result")


def _step(rng: random.Random, depth: int) -> str:
    n = rng.randint(8, 40)
    body = " ".join(rng.choice(WORDS) for _ in range(n))
    return f"Step {depth}: {body} = {rng.randint(1, 999)}.\n\n"


def synthetic_tree(rng: random.Random, num_nodes: int, max_children: int = 4) -> tuple[Tree, list[int]]:
    """An MCTS-shaped tree of ``num_nodes`` nodes (visits, values, scores) and its chosen path."""
    tree = Tree(root_prefix=tuple(range(40)))
    frontier = [0]
    while len(tree) < num_nodes and frontier:
        parent = frontier[min(len(frontier) - 1, int(rng.expovariate(1 / 6)))]
        if len(tree[parent].children) >= max_children:
            frontier.remove(parent)
            continue
        text = _step(rng, tree[parent].depth + 1)
        tokens = tuple(rng.randrange(50000) for _ in range(len(text) // 4))
        terminal = tree[parent].depth >= 5 or rng.random() < 0.12
        node = tree.add_child(parent, StepProposal(text, tokens, tuple(-rng.random() for _ in tokens),
                                                   "eos" if terminal else "stop"), terminal=terminal)
        node.scores = {"prm": round(rng.random(), 3)}
        if terminal:
            node.answer = str(rng.randint(1, 999))
        else:
            frontier.insert(0, node.id)
    for node in reversed(tree.nodes):  # visits and values bottom-up
        node.visits = 1 + sum(tree[c].visits for c in node.children)
        node.value_sum = node.scores.get("prm", 0.5) + sum(tree[c].value_sum for c in node.children)
    path = [0]
    while tree[path[-1]].children:
        path.append(max(tree[path[-1]].children, key=lambda c: tree[c].visits))
    return tree, path


def write_synthetic_run(path: Path, num_problems: int = 200, num_nodes: int = 1000, *, labels: bool = True,
                        seed: int = 0) -> Path:
    """A finished MCTS run dir of ``num_problems`` problems with ``num_nodes``-node trees (label mode
    when ``labels``: a Math-Shepherd-like label on every fourth node)."""
    rng = random.Random(seed)
    config = {"name": "synthetic-view", "mode": "label" if labels else "solve", "tasks": None,
              "search": {"algorithm": "mcts", "num_simulations": num_nodes}}
    with RunDir(path) as run_dir:
        run_dir.write_config(config)
        for i in range(num_problems):
            problem = Problem(f"synthetic-{i}", f"What is {i} + {i + 1}? (synthetic problem {i})")
            tree, chosen = synthetic_tree(rng, num_nodes)
            usage = Usage(prompt_tokens=num_nodes * 60, generated_tokens=sum(len(n.token_ids) for n in tree),
                          cached_prompt_tokens=num_nodes * 50, calls=num_nodes, wall_seconds=rng.uniform(5, 60))
            result = SearchResult(tree[chosen[-1]].answer, chosen, tree, usage, "mcts", {"budget_exhausted": False})
            correct = rng.random() < 0.5
            step_labels = [StepLabel(problem_id=problem.id, question=problem.question, generator="math_shepherd",
                                     mode="per_step", node_id=n.id, prefix=tree.path_texts(n.id)[:-1], step=n.text,
                                     step_tokens=len(n.token_ids), depth=n.depth, value=round(rng.random(), 2),
                                     label=rng.random() < 0.6, rollouts=8, model="synthetic").model_dump(mode="json")
                           for n in tree.nodes[1::4]] if labels else None
            row = {"id": problem.id, "answer": result.answer, "status": "correct" if correct else "incorrect",
                   "correct": correct, "algorithm": "mcts", "num_nodes": len(tree), "usage": usage.to_dict(),
                   "budget_exhausted": False}
            if step_labels is not None:
                row["labels"] = len(step_labels)
            run_dir.record(row, result.to_trace(problem).model_dump(mode="json"), step_labels)
    return path


READY_JS = "return window.ponderReadyAt === undefined ? null : window.ponderReadyAt;"
TREE_JS = """
const run = window.ponder.data.runs[0], p = run.problems[arguments[0]];
const t0 = performance.now();
window.ponder.treePage(run, p.id, null);
document.body.getBoundingClientRect();
const t1 = performance.now(), folded = document.querySelectorAll('#vp g.node').length;
document.getElementById('expand').click();
document.body.getBoundingClientRect();
return [t1 - t0, folded, performance.now() - t1, document.querySelectorAll('#vp g.node').length];
"""


def measure(html: Path, repeats: int) -> dict[str, Any]:
    """Loads ``html`` ``repeats`` times in a fresh headless Chromium each: ready ms, tree-open ms."""
    from ponder.view.browser import chromium, console_errors

    ready, loaded, opened, shown, expanded, errors = [], [], [], [], [], []
    for k in range(repeats):
        with chromium() as driver:
            start = time.perf_counter()
            driver.get(html.resolve().as_uri())
            value = None
            while value is None and time.perf_counter() - start < 60:
                value = driver.execute_script(READY_JS)
            ready.append(value)
            loaded.append(1000 * (time.perf_counter() - start))
            ms, nodes, expand_ms, all_nodes = driver.execute_script(TREE_JS, k)
            opened.append(ms)
            shown.append(nodes)
            expanded.append((expand_ms, all_nodes))
            errors += console_errors(driver)
    return {"ready_ms": ready, "get_ms": loaded, "tree_open_ms": opened, "nodes_drawn": shown, "expand_all": expanded,
            "console_errors": errors}


def bench_view(out: Path, problems: int, nodes: int, repeats: int) -> Iterator[str]:
    """``ponder bench view``'s report, line by line as it is measured: writes the synthetic run
    to ``out`` (replacing it), its view, then loads the view ``repeats`` times."""
    import shutil

    from ponder.view import write_view

    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    write_synthetic_run(out, problems, nodes)
    t1 = time.perf_counter()
    html = write_view(out)
    t2 = time.perf_counter()
    yield f"synthetic run: {problems} problems x {nodes} nodes, label mode, in {out} ({t1 - t0:.1f} s)"
    yield f"view: {html} ({html.stat().st_size / 2**20:.1f} MiB, written in {t2 - t1:.1f} s)"
    load = os.getloadavg()
    yield f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (shared with other jobs)"
    m = measure(html, repeats)
    fmt = ", ".join
    yield (f"run page ready (ms from navigation start): {fmt(f'{v:.0f}' for v in m['ready_ms'])}; "
           f"median {statistics.median(m['ready_ms']):.0f}   (target < 2000)")
    yield f"driver.get() to the load event, seen from Python (ms): {fmt(f'{v:.0f}' for v in m['get_ms'])}"
    yield (f"tree page open (ms: parse + layout + SVG): {fmt(f'{v:.0f}' for v in m['tree_open_ms'])}; "
           f"median {statistics.median(m['tree_open_ms']):.0f}; nodes drawn (off-path subtrees folded) {m['nodes_drawn']}")
    yield f"expand all (ms, nodes drawn): {fmt(f'{v:.0f} ({n})' for v, n in m['expand_all'])}"
    yield f"console errors: {len(m['console_errors'])} {m['console_errors'][:3]}"
