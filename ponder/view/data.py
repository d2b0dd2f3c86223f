"""Run directories -> the viewer's data model (plain JSON-able dicts; no browser needed).

A *view* is one or more runs. ``RUN_DIR`` is either a run directory (``config.yaml`` +
``results.jsonl``, see :mod:`ponder.rundir`) or a folder holding several (a benchmark's or a
loop's run dirs, found up to four levels down); each becomes a run page, and several make an
overview with accuracy against generated tokens per algorithm.

Traces are read as plain JSON, not validated against today's schema, so that node kinds and
fields added later (answer-nodes, segments, prover states, value histories) still show: a
tree is stored column-wise, one list per node field, whatever fields its nodes have
(``token_ids`` become a token count, ``children`` are rebuilt from ``parent``, ``scores``
become one column per score source). Labels (``labels/ID.jsonl``) are attached to their
node ids. Golds are shown only for problems whose search has ended (after the search, as
``ponder solve --gold`` does), and only when the run's task set can be loaded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from ponder.rundir import RunDir
from search.protocols import PonderError

MAX_RUN_DEPTH = 4
"""How deep below RUN_DIR run directories are looked for."""
NODE_SKIP = {"token_ids", "children", "scores"}
"""Node fields not stored as columns as they are (tokens and children are derived)."""
LABEL_FIELDS = ("generator", "mode", "value", "label", "rollouts", "correct", "depth", "step_tokens",
                "convention", "extra")


class ViewError(PonderError):
    """A directory cannot be viewed; the message names the path."""


def find_runs(path: str | Path) -> list[Path]:
    """``path`` itself when it is a run directory, else the run directories below it, sorted."""
    root = Path(path)
    if not root.is_dir():
        raise ViewError(f"{root}: no such directory")
    if (root / "config.yaml").is_file():
        return [root]
    found: list[Path] = []
    frontier = [root]
    for _ in range(MAX_RUN_DEPTH):
        nxt: list[Path] = []
        for folder in frontier:
            for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if (child / "config.yaml").is_file() and (child / "results.jsonl").is_file():
                    found.append(child)
                else:
                    nxt.append(child)
        frontier = nxt
    if not found:
        raise ViewError(f"{root}: not a run directory (no config.yaml) and holds none "
                        f"(no config.yaml + results.jsonl up to {MAX_RUN_DEPTH} levels down)")
    return found


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 5) if math.isfinite(value) else None
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _flat(node: dict[str, Any]) -> dict[str, Any]:
    """A node with its dict-valued fields spread one level (``info.role``, ``info.q_history``) and
    other token-id lists (``*_ids``) as their lengths (``prompt_ids (count)``)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in NODE_SKIP:
            out[key] = value
        elif isinstance(value, dict):
            out.update({f"{key}.{sub}": v for sub, v in value.items()})
        elif key.endswith("_ids") and isinstance(value, list):
            out[f"{key} (count)"] = len(value)
        else:
            out[key] = value
    return out


def _attempt_text(attempt: dict[str, Any]) -> str:
    parts = [f"agent {attempt.get('agent', '?')}", f"step {attempt.get('step', '?')}", str(attempt.get("status", "?"))]
    if attempt.get("subgoal"):
        parts.append(f"subgoal {attempt['subgoal']}")
    return " · ".join(parts)


def _prover_columns(nodes: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, list[Any]]:
    """A prover trace's per-node facts kept in ``extra`` (``search.prover.agents``), as columns:
    ``state``, the proof state a node reached (``extra.states``, moved out of ``extra``), and
    ``attempt``, which agent's attempt a node roots and how it ended (``extra.attempts``'s
    ``node_offset``). An attempt root's own text is the tactic prefix it was fast-forwarded
    through, empty for an attempt from the theorem itself; its state is the goal it started on."""
    out: dict[str, list[Any]] = {}
    ids = [node.get("id") for node in nodes]
    states = extra.get("states")
    if isinstance(states, dict) and states:
        extra.pop("states")
        texts = {k: v for k, v in states.items() if isinstance(v, str)}
        out["state"] = [texts.get(str(i)) for i in ids]
    attempts = {a["node_offset"]: _attempt_text(a) for a in extra.get("attempts") or []
                if isinstance(a, dict) and isinstance(a.get("node_offset"), int)}
    if attempts:
        out["attempt"] = [attempts.get(i) for i in ids]
    return out


def tree_columns(trace: dict[str, Any], labels: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One trace (raw JSON) as the tree page reads it.

    Returns:
        ``n`` nodes; ``cols``: field -> one value per node (every field the nodes have, less
        ``token_ids`` / ``children`` / ``scores``; dict fields spread one level, see ``_flat``); ``tokens``: tokens per step; ``scores``:
        source -> one score or None per node (prover traces add ``state`` and ``attempt``, see
        ``_prover_columns``); ``labels``: node id -> its labels; ``loose_labels``:
        labels of states that are not tree nodes; plus the trace's question, answer, path,
        usage, algorithm, config and extra.
    """
    nodes = [_flat(node) for node in sorted(trace.get("nodes") or [], key=lambda n: n.get("id", 0))]
    n = len(nodes)
    keys: dict[str, None] = {}
    score_keys: dict[str, None] = {}
    for node in nodes:
        keys.update(dict.fromkeys(k for k in node if k not in NODE_SKIP))
        score_keys.update(dict.fromkeys(node.get("scores") or {}))
    cols = {k: [_rounded(node.get(k)) for node in nodes] for k in keys}
    extra = dict(trace["extra"]) if isinstance(trace.get("extra"), dict) else {}
    cols.update(_prover_columns(nodes, extra))
    scores = {k: [_rounded((node.get("scores") or {}).get(k)) for node in nodes] for k in score_keys}
    tokens = [len(node.get("token_ids") or ()) for node in nodes]
    by_node: dict[str, list[dict[str, Any]]] = {}
    loose: list[dict[str, Any]] = []
    for label in labels or []:
        slim = _rounded({k: label.get(k) for k in LABEL_FIELDS if label.get(k) not in (None, {}, [])})
        node_id = label.get("node_id")
        if isinstance(node_id, int) and 0 <= node_id < n:
            by_node.setdefault(str(node_id), []).append(slim)
        else:
            loose.append({**slim, "prefix_steps": len(label.get("prefix") or []), "step": label.get("step", "")})
    return {
        "question": trace.get("question", ""), "algorithm": trace.get("algorithm"),
        "schema_version": trace.get("schema_version"), "answer": trace.get("answer"),
        "path": list(trace.get("path") or []), "usage": _rounded(trace.get("usage") or {}),
        "config": trace.get("config") or {}, "extra": _rounded(extra),
        "n": n, "cols": cols, "tokens": tokens, "scores": scores, "labels": by_node, "loose_labels": loose,
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            if isinstance(row, dict):
                out.append(row)
    return out


def gold_answers(config: dict[str, Any], notes: list[str]) -> dict[str, str]:
    """Gold answer text by problem id from the run's task set; {} (with a note) when it cannot
    be loaded."""
    if not config.get("tasks"):
        return {}
    from verifiers.tasks import load_tasks

    try:
        tasks = load_tasks(config["tasks"])
    except PonderError as err:
        notes.append(f"golds not shown: the task set could not be loaded ({err})")
        return {}
    # TaskSet keeps its golds private (no public gold accessor, so no search code can reach one);
    # this report is read after the searches ended, so it looks them up itself.
    return {p.id: _gold_text(tasks._gold(p.id)) for p in tasks.problems}


def _gold_text(gold: Any) -> str:
    """A gold as text: a reasoning-gym entry's ``answer``, else the gold itself."""
    entry = getattr(gold, "entry", None)
    return str(entry.get("answer")) if isinstance(entry, dict) else str(gold)


def wall_seconds(row: dict[str, Any]) -> float:
    """A result row's wall time: ``usage.wall_seconds`` (``ponder run`` rows), else a top-level
    ``wall_seconds`` (``ponder prove`` rows before they carried it in ``usage``), else 0."""
    for value in ((row.get("usage") or {}).get("wall_seconds"), row.get("wall_seconds")):
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return 0.0


def _answer(row: dict[str, Any]) -> Any:
    """A row's answer; a prover row without one shows its proof as a script (``ring_nf. reflexivity.``)."""
    proof = row.get("proof")
    if row.get("answer") is None and isinstance(proof, list) and proof:
        return " ".join(t if t.endswith(".") else t + "." for t in map(str, proof))
    return row.get("answer")


def _problem_row(row: dict[str, Any], tree: dict[str, Any] | None, gold: str | None) -> dict[str, Any]:
    usage = row.get("usage") or {}
    status = row.get("status", "unchecked")
    verdict = "errored" if status == "error" else ("correct" if row.get("correct") else "incorrect")
    out = {
        "id": row["id"], "answer": _answer(row), "status": status, "verdict": verdict,
        "tokens": int(usage.get("generated_tokens", 0)), "calls": int(usage.get("calls", 0)),
        "wall": _rounded(wall_seconds(row)),
        "nodes": row.get("num_nodes", tree["n"] if tree else None),
        "budget_exhausted": bool(row.get("budget_exhausted", False)), "error": row.get("error"),
        "labels": row.get("labels"), "has_tree": tree is not None,
    }
    if tree is not None:
        depth = tree["cols"].get("depth") or [0]
        out["max_depth"] = max(d for d in depth if isinstance(d, int)) if depth else 0
        out["path_depth"] = max(len(tree["path"]) - 1, 0)
    if gold is not None and status != "error":  # only after the search ended
        out["gold"] = gold
    return out


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy over finished problems with the errored count beside it, and summed compute."""
    finished = [r for r in rows if r.get("status") != "error"]
    usage: dict[str, float] = {}
    for r in rows:
        for k, v in (r.get("usage") or {}).items():
            if isinstance(v, int | float):
                usage[k] = usage.get(k, 0) + v
    walls = [wall_seconds(r) for r in rows]
    prompt = usage.get("prompt_tokens", 0)
    out: dict[str, Any] = {
        "problems": len(finished), "errors": len(rows) - len(finished),
        "accuracy": sum(bool(r.get("correct")) for r in finished) / len(finished) if finished else None,
        "generated_tokens": int(usage.get("generated_tokens", 0)), "prompt_tokens": int(prompt),
        "cached_share": usage.get("cached_prompt_tokens", 0) / prompt if prompt else None,
        "reward_tokens": int(usage.get("reward_tokens", 0)), "calls": int(usage.get("calls", 0)),
        "wall_seconds_sum": round(sum(walls), 2), "wall_seconds_max": round(max(walls, default=0.0), 2),
        "budget_exhausted": sum(bool(r.get("budget_exhausted")) for r in finished),
        "tokens_per_problem": usage.get("generated_tokens", 0) / len(finished) if finished else None,
    }
    if any("labels" in r for r in rows):
        out["labels"] = sum(int(r.get("labels") or 0) for r in rows)
        out["label_rollout_tokens"] = sum(int((r.get("label_usage") or {}).get("generated_tokens", 0)) for r in rows)
    return _rounded(out)


def read_run_view(path: Path, index: int, *, with_gold: bool = True) -> tuple[dict[str, Any], dict[str, dict]]:
    """One run directory -> (its run page's data, its trees by key ``r<index>-<k>``)."""
    notes: list[str] = []
    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ViewError(f"{path / 'config.yaml'}: not readable: {err}") from None
    if not isinstance(config, dict):
        raise ViewError(f"{path / 'config.yaml'}: the top level must be a mapping")
    run_dir = RunDir(path)
    rows = list(run_dir.rows().values())
    golds = gold_answers(config, notes) if with_gold else {}
    trees: dict[str, dict] = {}
    problems = []
    for k, row in enumerate(rows):
        tree = None
        if row.get("status") != "error":
            trace = _read_json(run_dir.trace_path(row["id"]))
            if trace is None:
                notes.append(f"{row['id']}: no readable trace")
            else:
                tree = tree_columns(trace, _read_jsonl(run_dir.labels_path(row["id"])))
                tree["key"] = f"r{index}-{k}"
                trees[tree["key"]] = tree
        problem = _problem_row(row, tree, golds.get(row["id"]))
        problem["tree"] = tree["key"] if tree else None
        problems.append(problem)
    search = config.get("search") if isinstance(config.get("search"), dict) else {}
    algorithm = search.get("algorithm")
    mode = config.get("mode") or ("prove" if str(algorithm or "").endswith("_prover") else "solve")
    run = {
        "index": index, "path": str(path), "name": config.get("name") or path.name,
        "algorithm": algorithm, "mode": mode, "config": config,
        "totals": totals(rows), "problems": problems, "events": _read_jsonl(path / "events.jsonl"),
        "notes": notes, "gold_shown": any("gold" in p for p in problems),
    }
    return run, trees


def read_view(path: str | Path, *, with_gold: bool = True) -> tuple[dict[str, Any], dict[str, dict]]:
    """Every run under ``path`` -> (the view's index data, every tree by key)."""
    root = Path(path)
    runs, trees = [], {}
    for i, run_path in enumerate(find_runs(root)):
        run, run_trees = read_run_view(run_path, i, with_gold=with_gold)
        run["label"] = str(run_path.relative_to(root)) if run_path != root else run["name"]
        runs.append(run)
        trees.update(run_trees)
    return {"title": root.resolve().name, "path": str(root.resolve()), "runs": runs}, trees
