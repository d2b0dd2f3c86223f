"""Datasets in: rows of an exported dataset, the split by problem, and the examples a trainer
builds from them."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.embedded import hf_offline
from search.protocols import ConfigError
from training.train.config import Stage, TrainConfig

if TYPE_CHECKING:
    import datasets


def load_rows(path: Path, required: Sequence[str], stage: Stage) -> list[dict[str, Any]]:
    """The rows of an exported dataset folder, checked for the columns a stage reads.

    Raises:
        ConfigError: The folder is not a saved dataset, lacks a column, or has no rows.
    """
    import datasets

    try:
        with hf_offline():
            data = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError("dataset", str(path), f"is not a saved dataset ({err})") from None
    if isinstance(data, datasets.DatasetDict):
        if "train" not in data:
            raise ConfigError("dataset", str(path), f"has splits {list(data)} and no 'train'")
        data = data["train"]
    missing = [c for c in required if c not in data.column_names]
    if missing:
        raise ConfigError("dataset", str(path), f"lacks column(s) {missing} of the {stage} format "
                          f"(columns: {data.column_names})")
    if len(data) == 0:
        raise ConfigError("dataset", str(path), "has no rows")
    return data.to_list()


def split_rows(rows: list[dict[str, Any]], eval_fraction: float, seed: int
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train, eval)`` rows, split by ``problem_id`` (row index where there is none) so that
    no problem is in both. Held out: ``round(eval_fraction * problems)``, at least one when
    the fraction is > 0, and never every problem."""
    keys = [str(r.get("problem_id", i)) for i, r in enumerate(rows)]
    unique = sorted(set(keys))
    random.Random(seed).shuffle(unique)
    n_eval = 0
    if eval_fraction > 0 and len(unique) >= 2:
        n_eval = min(len(unique) - 1, max(1, round(eval_fraction * len(unique))))
    held = set(unique[:n_eval])
    train = [r for r, k in zip(rows, keys, strict=True) if k not in held]
    evaluation = [r for r, k in zip(rows, keys, strict=True) if k in held]
    return train, evaluation


@dataclasses.dataclass
class Examples:
    """A dataset's examples, split by problem: ``train``, ``held`` (eval), the dataset's row
    count and how many rows were too long."""

    train: list[dict[str, Any]]
    held: list[dict[str, Any]]
    rows: int
    too_long: int

    @property
    def counts(self) -> dict[str, int]:
        return {"rows": self.rows, "train_examples": len(self.train), "eval_examples": len(self.held),
                "too_long": self.too_long}

    def datasets(self) -> dict[str, datasets.Dataset | None]:
        """A Trainer's ``train_dataset`` and ``eval_dataset`` (None without held-out examples)."""
        return trainer_datasets(self.train, self.held)


def split_examples(
    config: TrainConfig, columns: Sequence[str], stage: Stage,
    make: Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], int]],
) -> Examples:
    """The dataset's rows (``columns`` required), split by problem and turned into examples
    by ``make`` (which returns the examples and how many rows were too long).

    Raises:
        ConfigError: No training example fits ``max_length``.
    """
    rows = load_rows(config.dataset, columns, stage)
    train_rows, eval_rows = split_rows(rows, config.eval_fraction, config.seed)
    train, long_train = make(train_rows)
    held, long_eval = make(eval_rows)
    if not train:
        raise ConfigError("dataset", str(config.dataset), f"gives no example within max_length={config.max_length}")
    return Examples(train, held, len(rows), long_train + long_eval)


def question_and_prefix(rows: Sequence[dict[str, Any]], question_sep: str) -> list[tuple[str, str]]:
    """Per row, its ``(question, solution prefix)`` from a plain-text ``prompt``
    (``question + question_sep + prefix``, ``training.export.formats.render_prompt``).

    A ``question`` column, where a dataset has one, is exact. Otherwise the question of a
    problem is its shortest prompt ending in ``question_sep`` (less the separator): exact
    when the problem has a row that starts at the first step, as every row does in sft and
    value datasets and in prm datasets of generators that label whole paths. The rest are
    split at the first ``question_sep``.
    """
    shortest: dict[Any, str] = {}
    for row in rows:
        pid, prompt = row.get("problem_id"), row["prompt"]
        if pid is not None and prompt.endswith(question_sep) and (
                pid not in shortest or len(prompt) < len(shortest[pid])):
            shortest[pid] = prompt
    out = []
    for row in rows:
        prompt, question = row["prompt"], row.get("question")
        head = question + question_sep if isinstance(question, str) and question else shortest.get(row.get("problem_id"))
        if head is not None and prompt.startswith(head):
            out.append((head[: len(head) - len(question_sep)], prompt[len(head):]))
            continue
        q, found, rest = prompt.partition(question_sep) if question_sep else (prompt, "", "")
        out.append((q, rest) if found else (prompt, ""))
    return out


def split_steps(text: str, delimiter: str) -> list[str]:
    """Steps of a solution text as generated (each ends at ``delimiter``), stripped, no empties."""
    return [s.strip() for s in text.split(delimiter) if s.strip()]


def examples_dataset(examples: list[dict[str, Any]]) -> datasets.Dataset:
    """A ``datasets.Dataset`` of built examples (token ids and targets)."""
    import datasets

    return datasets.Dataset.from_list(examples)


def trainer_datasets(train: list[dict[str, Any]], held: list[dict[str, Any]]) -> dict[str, datasets.Dataset | None]:
    """A Trainer's ``train_dataset`` and ``eval_dataset`` keywords (no eval set without held-out examples)."""
    return {"train_dataset": examples_dataset(train), "eval_dataset": examples_dataset(held) if held else None}
