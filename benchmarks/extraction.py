"""Answer extraction against a strict reading of real model texts (issue 24).

    python -m benchmarks.extraction RUN_DIR... [--baseline REV] [--sample N] [--out FILE]

Reads every finished sample of the given runs (``ponder run`` dirs, or loop dirs searched for
them): each end leaf of each trace (``search.aggregate.end_leaves``), as its whole path text. For reasoning-gym tasks whose
answers are numbers (``verifiers.reasoning_gym.NUMERIC_DATASETS``) it compares three readings
of each text:

- *current*: what the task's verifier extracts now (``TaskSet.verifier.extract``);
- *baseline*: what ``verifiers/`` at git revision ``--baseline`` extracted (its
  ``extract.py`` and ``reasoning_gym.py``, loaded from git into a private package);
- *reader*: :func:`strict_reading`, a conservative reader written apart from the extractors,
  which accepts only an unambiguous final answer and otherwise says the text states none.

A *disagreement* is an extraction whose number differs from the reader's (or that finds an
answer where the reader finds none, or none where it finds one); a *verdict disagreement* is
one where reasoning-gym's scorer, run by the verifier, scores the extraction and the reader's
answer differently against the gold. ``--sample N`` writes N random rows (half disagreements
where there are enough) to ``--out`` for reading by hand.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import inspect
import json
import random
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from verifiers.reasoning_gym import (
    NUMERIC_DATASETS,
    ReasoningGymGold,
    ReasoningGymVerifier,
    ReasoningGymVerifierConfig,
)

_NUM = r"[-\u2212]?\d+(?:\.\d+)?"
_FILLER = r"(?:(?:indeed|simply|just|exactly|actually|therefore|thus|also|clearly|equal to|equals)\b[\s,:]*)*"
_NOT_AN_OPERAND = r"(?!\d|\.\d)(?!\s*[-+*/\u00d7\u2212=^]\s*[\d(])"
_STATED = [
    re.compile(r"answer\b[^\n.]{0,60}?(?:\bis\b|=|:|\bof\b|\bwould be\b)\s*" + _FILLER
               + r"[$*(\s]*(" + _NUM + ")" + _NOT_AN_OPERAND, re.IGNORECASE),
    re.compile(r"(?<![\d.])(" + _NUM + r")\**,?\s+which is (?:the|our) (?:final )?answer", re.IGNORECASE),
    re.compile(r"\\boxed\{\s*(" + _NUM + r")\s*\}"),
    re.compile(r"<answer>\s*(" + _NUM + r")\s*</answer>"),
    re.compile(r"####\s*(" + _NUM + r")\s*$", re.MULTILINE),
]
_BARE_LINE = re.compile(r"\$?\**(" + _NUM + r")\**\$?\.?")
_EQUATION_END = re.compile(r"=\s*\$?\**\s*(" + _NUM + r")\s*\**\$?\s*\.?\s*$")
_RESULT_END = re.compile(r"\b(?:result|sum|total|difference|value)\b[^\n.]{0,40}?\bis\s*[$*\s]*("
                         + _NUM + r")\s*\.?\s*$", re.IGNORECASE)


def strict_reading(text: str) -> tuple[str | None, str]:
    """The number a careful reader takes as the text's final answer, and how it was found.

    The last explicit statement wins ("the answer ... is [indeed] N" with N not the start of
    an expression, "N, which is the answer", ``\\boxed{N}``, ``<answer>N</answer>``,
    ``#### N``); without one, the last
    line if it is a number, an equation ending in ``= N`` or "the sum/result ... is N".
    Anything else states no answer (None), even if numbers occur in it.

    Returns:
        (number or None, kind): kind is one of stated, bare, equation, result, none, empty.
    """
    found = [(m.start(), m.group(1)) for rx in _STATED for m in rx.finditer(text)]
    if found:
        return max(found)[1].replace("\u2212", "-"), "stated"
    lines = [line.strip() for line in text.strip().split("\n") if line.strip()]
    if not lines:
        return None, "empty"
    bare = _BARE_LINE.fullmatch(lines[-1])
    if bare:
        return bare.group(1).replace("\u2212", "-"), "bare"
    for rx, kind in ((_EQUATION_END, "equation"), (_RESULT_END, "result")):
        match = rx.search(lines[-1])
        if match:
            return match.group(1).replace("\u2212", "-"), kind
    return None, "none"


def same_number(a: str | None, b: str | None) -> bool:
    """Both None, or both numbers of equal value (``4.0`` = ``4``); a non-number equals nothing."""
    if a is None or b is None:
        return a is None and b is None
    try:
        return float(a.replace(",", "")) == float(b.replace(",", ""))
    except ValueError:
        return False


def baseline_extractor(rev: str) -> Callable[[str, str], str | None]:
    """``(text, dataset) -> answer`` as ``verifiers/`` at git revision ``rev`` extracted it."""
    root = Path(__file__).resolve().parent.parent
    package = f"_extraction_baseline_{re.sub(r'[^0-9A-Za-z]', '_', rev)}"
    folder = Path(tempfile.mkdtemp(prefix="ponder-extraction-")) / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name in ("extract.py", "reasoning_gym.py"):
        source = subprocess.run(["git", "-C", str(root), "show", f"{rev}:verifiers/{name}"],
                                check=True, capture_output=True, text=True).stdout
        (folder / name).write_text(source.replace("from verifiers.extract", f"from {package}.extract"))
    sys.path.insert(0, str(folder.parent))
    module = importlib.import_module(f"{package}.reasoning_gym")
    knows_dataset = "dataset" in inspect.signature(module.ReasoningGymVerifier).parameters
    verifiers: dict[str, Any] = {}

    def extract(text: str, dataset: str) -> str | None:
        if dataset not in verifiers:
            kwargs = {"dataset": dataset} if knows_dataset else {}
            verifiers[dataset] = module.ReasoningGymVerifier(**kwargs)
        return verifiers[dataset].extract(text)

    return extract


def run_dirs(paths: list[Path]) -> Iterator[Path]:
    """Every directory under ``paths`` (themselves included) holding config.yaml and traces/."""
    for path in paths:
        for config in sorted(path.rglob("config.yaml")):
            if (config.parent / "traces").is_dir():
                yield config.parent


def samples(run_dir: Path) -> Iterator[tuple[dict[str, Any], str, str]]:
    """(task config, problem id, text) for each end leaf of each trace in ``run_dir``."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    tasks = config.get("tasks") or {}
    if tasks.get("source") != "reasoning_gym":
        return
    for path in sorted((run_dir / "traces").glob("*.json")):
        trace = json.loads(path.read_text())
        nodes = trace["nodes"]
        for node in nodes:  # search.aggregate.end_leaves: a path's end, not errored
            if node["parent"] is None or not (node["terminal"] or node.get("end")) or node.get("error"):
                continue
            parts = []
            while node["parent"] is not None:
                parts.append(node["text"])
                node = nodes[node["parent"]]
            yield tasks, trace["problem_id"], "".join(reversed(parts))


class Golds:
    """Regenerates each run's reasoning-gym entries (as ``verifiers.tasks`` does) and scores."""

    def __init__(self) -> None:
        self._datasets: dict[str, Any] = {}
        self.scorer = ReasoningGymVerifier(ReasoningGymVerifierConfig(answer="free"))

    def gold(self, tasks: dict[str, Any], problem_id: str) -> ReasoningGymGold:
        import reasoning_gym

        kwargs = {**tasks.get("config", {}), "size": tasks["size"], "seed": tasks["seed"]}
        key = json.dumps([tasks["name"], kwargs], sort_keys=True)
        if key not in self._datasets:
            self._datasets[key] = reasoning_gym.create_dataset(tasks["name"], **kwargs)
        entry = self._datasets[key][int(problem_id.rsplit("-", 1)[1])]
        return ReasoningGymGold(tasks["name"], entry, json.dumps(kwargs, sort_keys=True))

    def correct(self, gold: ReasoningGymGold, answer: str | None) -> bool:
        """The scorer's verdict on ``answer`` exactly as given (no extraction)."""
        return answer is not None and self.scorer.verify(gold, f"<answer>{answer}</answer>").correct


def measure(paths: list[Path], baseline: str) -> list[dict[str, Any]]:
    """One row per numeric-task sample: text, gold, the three readings and their verdicts."""
    old = baseline_extractor(baseline)
    golds, verifiers, rows = Golds(), {}, []
    for run_dir in run_dirs(paths):
        for tasks, pid, text in samples(run_dir):
            name = tasks["name"]
            if name not in NUMERIC_DATASETS:
                continue
            verifier = verifiers.setdefault(name, ReasoningGymVerifier(dataset=name))
            gold = golds.gold(tasks, pid)
            current, before = verifier.extract(text), old(text, name)
            reader, kind = strict_reading(text)
            rows.append({
                "run": str(run_dir), "task": name, "id": pid, "gold": gold.entry["answer"],
                "text": text, "baseline": before, "current": current, "reader": reader,
                "kind": kind, "baseline_agrees": same_number(before, reader),
                "current_agrees": same_number(current, reader),
                "baseline_correct": golds.correct(gold, before),
                "current_correct": golds.correct(gold, current),
                "reader_correct": golds.correct(gold, reader),
            })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table per task: samples, disagreements and verdict disagreements."""
    by_task: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in rows:
        by_task[row["task"]].append(row)
    lines = ["| task | samples | reader: no answer | disagree baseline | disagree current | "
             "verdict differs baseline | verdict differs current | correct baseline / current / reader |",
             "|---|---|---|---|---|---|---|---|"]
    for task, group in sorted(by_task.items()):
        n = len(group)

        def share(count: int) -> str:
            return f"{count} ({100 * count / n:.1f} %)"

        lines.append("| " + " | ".join([
            task, str(n), share(sum(r["reader"] is None for r in group)),
            share(sum(not r["baseline_agrees"] for r in group)),
            share(sum(not r["current_agrees"] for r in group)),
            share(sum(r["baseline_correct"] != r["reader_correct"] for r in group)),
            share(sum(r["current_correct"] != r["reader_correct"] for r in group)),
            " / ".join(str(sum(r[k] for r in group)) for k in
                       ("baseline_correct", "current_correct", "reader_correct")),
        ]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.extraction", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="ponder run or loop directories")
    parser.add_argument("--baseline", default="dfd2e6a", help="git revision of the baseline verifiers/")
    parser.add_argument("--sample", type=int, default=0, help="rows to write for reading by hand")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--out", type=Path, default=Path("runs/extraction.jsonl"),
                        help="where the rows (all, or the sample) go")
    args = parser.parse_args(argv)
    rows = measure(args.runs, args.baseline)
    print(table(rows))
    chosen = rows
    if args.sample:
        rng = random.Random(args.seed)
        differ = [r for r in rows if not (r["baseline_agrees"] and r["current_agrees"])]
        agree = [r for r in rows if r["baseline_agrees"] and r["current_agrees"]]
        picked = rng.sample(differ, min(len(differ), args.sample // 2))
        chosen = picked + rng.sample(agree, min(len(agree), args.sample - len(picked)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as handle:
        for row in chosen:
            handle.write(json.dumps(row) + "\n")
    print(f"{len(chosen)} rows -> {args.out}")


if __name__ == "__main__":
    main()
