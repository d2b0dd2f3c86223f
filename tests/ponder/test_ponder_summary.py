"""A run's summary counts every generated token; a label run shows search and labels apart."""

from __future__ import annotations

import pytest
from rich.console import Console

from ponder.cli.render import summary_table
from ponder.run import summarize
from search.protocols import Usage


def row(pid: str, correct: bool, search: Usage, labels: Usage | None = None, status: str = "correct") -> dict:
    out = {"id": pid, "status": status, "correct": correct, "usage": search.to_dict()}
    if labels is not None:
        out.update(labels=3, label_usage=labels.to_dict())
    return out


def test_a_label_run_counts_search_and_label_tokens_together_and_apart():
    # issue 24: 60 problems, 77k tokens of which 68k label rollouts, 177 s -> 51 tok/s was shown
    rows = [row("a", True, Usage(prompt_tokens=100, generated_tokens=400, calls=2),
                Usage(prompt_tokens=900, cached_prompt_tokens=600, generated_tokens=3000, calls=5)),
            row("b", False, Usage(prompt_tokens=100, generated_tokens=600, calls=3),
                Usage(prompt_tokens=100, generated_tokens=1000, calls=1), status="incorrect")]
    s = summarize(rows, 10.0)
    assert s["generated_tokens"] == 5000 and s["tok_per_s"] == pytest.approx(500.0)
    assert s["search_tokens"] == 1000 and s["label_rollout_tokens"] == 4000
    assert s["calls"] == 11 and s["search_calls"] == 5 and s["label_rollout_calls"] == 6
    assert s["prompt_tokens"] == 1200 and s["cached_share"] == pytest.approx(0.5)
    assert s["labels"] == 6 and s["accuracy"] == 0.5
    console = Console(record=True, width=100)
    console.print(summary_table(s, "label"))
    text = console.export_text()
    for shown in ("generated tokens │  5000", "search tokens │  1000", "label rollout tokens │  4000",
                  "tok per s │ 500.0", "search calls │     5"):
        assert " ".join(shown.split()) in " ".join(text.split()), text


def test_a_solve_run_has_no_label_fields_and_the_same_totals():
    rows = [row("a", True, Usage(prompt_tokens=50, generated_tokens=300, calls=2))]
    s = summarize(rows, 3.0)
    assert s["generated_tokens"] == 300 and s["tok_per_s"] == pytest.approx(100.0) and s["calls"] == 2
    assert not {"search_tokens", "label_rollout_tokens", "labels"} & set(s)
