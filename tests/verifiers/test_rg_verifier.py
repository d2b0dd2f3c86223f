"""reasoning-gym tasks: loading, scoring with rg's own scorers, no gold on problems."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import reasoning_gym

from search.protocols import ConfigError, VerdictStatus
from verifiers.extract import stated_number
from verifiers.reasoning_gym import (
    NUMERIC_DATASETS,
    ReasoningGymGold,
    ReasoningGymVerifier,
    ReasoningGymVerifierConfig,
)
from verifiers.tasks import ReasoningGymTaskConfig, TaskSet, load_tasks

OK, WRONG, UNPARSED = VerdictStatus.CORRECT, VerdictStatus.INCORRECT, VerdictStatus.UNPARSEABLE
SIZE, SEED = 4, 11


def reference_entries(name: str, **config: object) -> list[dict]:
    """The same entries, generated independently of the task set."""
    dataset = reasoning_gym.create_dataset(name, size=SIZE, seed=SEED, **config)
    return [dataset[i] for i in range(SIZE)]


@pytest.fixture(scope="module", params=["chain_sum", "basic_arithmetic"])
def rg_tasks(request: pytest.FixtureRequest) -> tuple[TaskSet, list[dict]]:
    name = request.param
    tasks = load_tasks(ReasoningGymTaskConfig(name=name, size=SIZE, seed=SEED))
    return tasks, reference_entries(name)


def test_problems_are_the_rg_questions(rg_tasks: tuple[TaskSet, list[dict]]) -> None:
    tasks, entries = rg_tasks
    assert len(tasks) == SIZE
    assert [p.question for p in tasks.problems] == [e["question"] for e in entries]
    assert len({p.id for p in tasks.problems}) == SIZE


def test_no_gold_on_problems(rg_tasks: tuple[TaskSet, list[dict]]) -> None:
    tasks, entries = rg_tasks
    for index, (problem, entry) in enumerate(zip(tasks.problems, entries, strict=True)):
        assert set(problem.metadata) == {"source", "dataset", "index"}
        assert problem.metadata["index"] == index
        values = [*dataclasses.asdict(problem).values(), *problem.metadata.values()]
        assert entry["answer"] not in [str(v) for v in values]


def test_gold_is_correct_and_wrong_is_incorrect(rg_tasks: tuple[TaskSet, list[dict]]) -> None:
    tasks, entries = rg_tasks
    for problem, entry in zip(tasks.problems, entries, strict=True):
        gold = entry["answer"]
        wrong = str(int(gold) + 1)
        assert tasks.verify(problem.id, f"<think>...</think>\n<answer>{gold}</answer>").status is OK
        assert tasks.verify(problem.id, f"<answer>{wrong}</answer>").status is WRONG
        assert tasks.verify(problem.id, f"so the answer is {gold}.").status is OK


async def test_oracle_and_averify(rg_tasks: tuple[TaskSet, list[dict]]) -> None:
    tasks, entries = rg_tasks
    problem = tasks.problems[0]
    oracle = tasks.oracle(problem.id)
    assert (await oracle(f"<answer>{entries[0]['answer']}</answer>")).status is OK
    wrong = str(int(entries[0]["answer"]) + 1)
    assert (await tasks.averify(problem.id, f"<answer>{wrong}</answer>")).status is WRONG
    # a numeric task's answer that states no number is no answer
    assert (await tasks.averify(problem.id, "<answer>nonsense</answer>")).status is UNPARSED


def test_no_answer_is_unparseable() -> None:
    entry = reference_entries("chain_sum")[0]
    verifier = ReasoningGymVerifier()
    assert verifier.verify(entry, "").status is UNPARSED
    assert verifier.verify(entry, "\n\n  \n").status is UNPARSED
    no_answer = "<answer></answer>\nthinking about it\nstill thinking"
    assert verifier.verify(entry, no_answer).status is UNPARSED


def test_raw_entry_as_gold_and_threshold() -> None:
    entry = reference_entries("chain_sum")[0]
    assert ReasoningGymVerifier().verify(entry, f"<answer>{entry['answer']}</answer>").correct
    # a partial-credit answer: rg's basic scorer gives len(gold)/len(answer) < 1 (read as
    # free text; as a number, "N apples" states N)
    partial = reference_entries("basic_arithmetic")[0]
    padded = f"<answer>{partial['answer']} apples</answer>"
    free = ReasoningGymVerifierConfig(answer="free")
    assert ReasoningGymVerifier(free).verify(partial, padded).status is WRONG
    lenient = ReasoningGymVerifier(free.model_copy(update={"threshold": 0.1}))
    assert lenient.verify(partial, padded).status is OK
    assert ReasoningGymVerifier().verify(partial, padded).status is OK


@pytest.mark.parametrize("name", ["chain_sum", "basic_arithmetic"])
def test_a_sentence_stating_the_number_is_scored_by_its_number(name: str) -> None:
    # issue 24: "The answer to the given arithmetic problem is 4." was scored incorrect for
    # chain_sum (gold 4): the whole sentence went to the scorer
    tasks = load_tasks(ReasoningGymTaskConfig(name=name, size=SIZE, seed=SEED))
    for problem, entry in zip(tasks.problems, reference_entries(name), strict=True):
        gold = entry["answer"]
        for text in (f"The answer to the given arithmetic problem is {gold}.",
                     f"The answer is indeed {gold}.",
                     f"The answer is indeed {gold}, as 99 - 90 indeed equals {gold}."):
            verdict = tasks.verify(problem.id, text)
            assert verdict.status is OK and verdict.extracted == gold, (text, verdict)
            assert tasks.verifier.extract(text) == gold
        wrong = f"The answer is {int(gold) + 1}."
        assert tasks.verify(problem.id, wrong).status is WRONG
        assert tasks.verify(problem.id, "The answer is unclear.").status is UNPARSED


def test_answer_type_follows_the_dataset_unless_set() -> None:
    assert ReasoningGymVerifier(dataset="chain_sum").answer_type() == "number"
    assert ReasoningGymVerifier(dataset="word_sorting").answer_type() == "free"
    assert ReasoningGymVerifier().answer_type() == "free"
    forced = ReasoningGymVerifier(ReasoningGymVerifierConfig(answer="number"), dataset="acre")
    assert forced.answer_type() == "number"
    assert forced.extract("The answer is indeed 3.") == "3"
    free = ReasoningGymVerifier(ReasoningGymVerifierConfig(answer="free"), dataset="chain_sum")
    assert free.extract("The answer is indeed 3.") == "3"  # filler words go in both modes
    assert free.extract("The sum is 3.") == "The sum is 3."  # free: a one-line reply as is


@pytest.mark.parametrize("name", sorted(NUMERIC_DATASETS))
def test_numeric_datasets_have_numeric_golds(name: str) -> None:
    # NUMERIC_DATASETS must match reasoning-gym: every gold a number extract_number returns
    # unchanged (a new reasoning-gym release that changes a dataset's answers fails here)
    for seed in (0, 1):
        dataset = reasoning_gym.create_dataset(name, size=60, seed=seed)
        for i in range(60):
            gold = str(dataset[i]["answer"])
            assert stated_number(gold) == gold.replace(",", ""), (name, seed, i, gold)


def test_some_free_form_datasets_are_not_numeric() -> None:
    dataset = reasoning_gym.create_dataset("fraction_simplification", size=60, seed=0)
    golds = [str(dataset[i]["answer"]) for i in range(60)]
    assert any(stated_number(g) != g for g in golds)  # "$105/181$": rg wants the dollars
    assert "fraction_simplification" not in NUMERIC_DATASETS


def test_scorers_that_eval_answers_run_sandboxed(tmp_path: Path) -> None:
    # spiral_matrix's score_answer calls eval() on the model's answer
    entry = reference_entries("spiral_matrix")[0]
    control = tmp_path / "control"
    scorer = reasoning_gym.get_score_answer_fn("spiral_matrix")
    scorer(f"[open('{control}', 'w').write('1')]", entry)
    assert control.exists()  # the threat is real when a scorer runs unsandboxed

    verifier = ReasoningGymVerifier()
    for payload in (f"[open('{tmp_path / 'a'}', 'w').write('1')]",
                    f"[__import__('os').system('touch {tmp_path / 'b'}')]",
                    f"[exec('import os; os.system(\"touch {tmp_path / 'c'}\")')]"):
        verdict = verifier.verify(entry, f"<answer>{payload}</answer>")
        assert verdict.status is not OK
    assert sorted(p.name for p in tmp_path.iterdir()) == ["control"]
    assert verifier.verify(entry, f"<answer>{entry['answer']}</answer>").status is OK


def test_config_is_forwarded_and_scored_with_the_same_arguments() -> None:
    tasks = load_tasks({"source": "reasoning_gym", "name": "chain_sum", "size": 2, "seed": 3,
                        "config": {"min_terms": 3, "max_terms": 3}})
    problem = tasks.problems[0]
    assert problem.question.count("+") + problem.question.count("-") >= 2
    gold = tasks._golds[problem.id]
    assert isinstance(gold, ReasoningGymGold)
    assert json.loads(gold.config_json) == {"min_terms": 3, "max_terms": 3, "size": 2, "seed": 3}
    assert tasks.verify(problem.id, f"<answer>{gold.entry['answer']}</answer>").correct


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"name": "chainsum"}, "name"),
        ({"name": "definitely_not_a_dataset"}, "name"),
        ({"name": "chain_sum", "config": {"bogus_option": 1}}, "config"),
        ({"name": "chain_sum", "config": {"min_terms": 5, "max_terms": 2}}, "config"),
        ({"name": "chain_sum", "config": {"size": 5}}, "config.size"),
        ({"name": "chain_sum", "size": 0}, "reasoning_gym.size"),
    ],
)
def test_bad_reasoning_gym_configs(config: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_tasks({"source": "reasoning_gym", **config})
    assert info.value.field == field
    assert repr(config.get("name", ""))[1:-1] in str(info.value) or field != "name"


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ConfigError, match="chain_sum"):
        load_tasks({"source": "reasoning_gym", "name": "chainsum"})
