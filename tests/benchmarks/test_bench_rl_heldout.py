"""benchmarks.rl's held-out set: disjoint from the training questions, each question once."""

from __future__ import annotations

from benchmarks.rl import held_out_tasks
from verifiers.tasks import load_tasks


def _chain_sum(size: int, seed: int) -> dict:
    return {"source": "reasoning_gym", "name": "chain_sum", "size": size, "seed": seed,
            "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}


def test_held_out_is_disjoint_and_distinct() -> None:
    train, held_cfg = _chain_sum(192, 11), _chain_sum(300, 1011)  # 200 possible questions: repeats on both sides
    held = held_out_tasks(held_cfg, train)
    questions = [" ".join(p.question.split()) for p in held.problems]
    train_questions = {" ".join(p.question.split()) for p in load_tasks(train).problems}
    raw = load_tasks(held_cfg)
    assert len(raw.problems) == 300 and 0 < len(held.problems) < 300
    assert len(set(questions)) == len(questions)
    assert not set(questions) & train_questions
    # every held-out question not in training is kept once
    assert set(questions) == {" ".join(p.question.split()) for p in raw.problems} - train_questions
