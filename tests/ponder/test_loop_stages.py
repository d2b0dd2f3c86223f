"""`ponder loop` bookkeeping with scripted stages: each stage runs once, a kill after any stage
resumes at the first unfinished one, nothing that finished runs again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import ponder.loop.runner as runner
from ponder.loop.config import LoopConfig, load_loop_config
from ponder.loop.stages import DONE, Stage, StageResult, run_rounds, stage_dir
from search.protocols import ConfigError, Problem
from verifiers.math import MathVerifier
from verifiers.tasks import TaskSet

TASKS = {"source": "reasoning_gym", "name": "chain_sum", "size": 2, "seed": 1}


class Killed(Exception):
    """Stands in for SIGKILL in the middle of a stage."""


def scripted(log: list[str], kill_at: str | None = None):
    def stages_of(r: int) -> list[Stage]:
        names = ["eval"] if r == 0 else ["label", "train_prm", "train_policy", "eval"]

        def make(name: str) -> Stage:
            async def run(directory: Path) -> StageResult:
                (directory / "partial").write_text("x")
                if kill_at == f"{r}/{name}":
                    raise Killed
                log.append(f"{r}/{name}")
                return StageResult({"dir": str(directory)}, generated_tokens=10, calls=2)

            return Stage(name, run)

        return [make(n) for n in names]

    return stages_of


ALL = ["0/eval", "1/label", "1/train_prm", "1/train_policy", "1/eval",
       "2/label", "2/train_prm", "2/train_policy", "2/eval"]


@pytest.mark.parametrize("kill_at", ALL)
def test_a_kill_in_any_stage_resumes_there_and_repeats_nothing(tmp_path, kill_at):
    log: list[str] = []
    reports: list[int] = []
    with pytest.raises(Killed):
        asyncio.run(run_rounds(tmp_path, 2, scripted(log, kill_at), reports.append))
    assert log == ALL[: ALL.index(kill_at)]
    r, name = kill_at.split("/")
    assert not (stage_dir(tmp_path, int(r), name) / DONE).exists()  # the killed stage is unfinished
    before = list(log)
    markers = asyncio.run(run_rounds(tmp_path, 2, scripted(log), reports.append))
    assert log == before + ALL[ALL.index(kill_at):]  # each stage completed exactly once overall
    assert [m["skipped"] for m in markers] == [s in before for s in ALL]
    assert reports[-3:] == [0, 1, 2]
    marker = json.loads((stage_dir(tmp_path, 1, "label") / DONE).read_text())
    assert (marker["stage"], marker["round"], marker["generated_tokens"], marker["calls"]) == ("label", 1, 10, 2)


def test_more_rounds_later_continue_the_same_loop(tmp_path):
    log: list[str] = []
    asyncio.run(run_rounds(tmp_path, 1, scripted(log), None))
    asyncio.run(run_rounds(tmp_path, 2, scripted(log), None))
    assert log == ALL


def loop_cfg(tmp_path, **extra) -> LoopConfig:
    return LoopConfig.model_validate({
        "loop_dir": str(tmp_path), "train_tasks": {**TASKS, "seed": 1}, "eval_tasks": {**TASKS, "seed": 2},
        "label": {"search": {"algorithm": "self_consistency", "num_samples": 2}},
        "eval": {"budget": {"max_generated_tokens": 500}, "methods": {"cot": {"algorithm": "cot"}}}, **extra})


def test_held_out_problems_must_not_be_training_problems(tmp_path):
    same = TaskSet([Problem("a", "What is 1 + 1?")], {"a": "2"}, MathVerifier())
    other = TaskSet([Problem("b", "What is  1 + 1?")], {"b": "2"}, MathVerifier())
    with pytest.raises(ConfigError, match="eval_tasks"):
        runner.Loop(loop_cfg(tmp_path), same, other)
    both = TaskSet([Problem("b", "What is  1 + 1?"), Problem("c", "What is 2 + 5?")], {"b": "2", "c": "7"},
                   MathVerifier())
    loop = runner.Loop(loop_cfg(tmp_path, drop_shared_eval=True), same, both)
    assert [p.id for p in loop.held_out.problems] == ["c"] and loop.dropped == ["b"]
    assert json.loads((tmp_path / "dropped_eval.json").read_text()) == ["b"]


def test_loop_config_errors_name_the_field(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("train_tasks: {source: reasoning_gym, name: chain_sum}\n"
                    "eval_tasks: {source: reasoning_gym, name: chain_sum, seed: 9}\n"
                    "label: {search: {algorithm: cot}, prm_generator: nope}\n"
                    "eval: {budget: {}, methods: {}}\n")
    with pytest.raises(ConfigError, match="prm_generator"):
        load_loop_config(path)


def test_round_checkpoints_and_stage_order(tmp_path):
    train = TaskSet([Problem("a", "q1")], {"a": "1"}, MathVerifier())
    held = TaskSet([Problem("b", "q2")], {"b": "2"}, MathVerifier())
    loop = runner.Loop(loop_cfg(tmp_path, base_policy=str(tmp_path / "base")), train, held)
    assert loop.policy(0) == tmp_path / "base" and loop.prm(0) == tmp_path / "base"
    assert loop.policy(2) == tmp_path / "round-2" / "train_policy" / "run" / "model"
    assert loop.prm(1) == tmp_path / "round-1" / "train_prm" / "run" / "model"
    assert [s.name for s in loop.stages(0)] == ["judge", "eval"]
    assert [s.name for s in loop.stages(1)] == ["label", "train_prm", "judge", "train_policy", "eval"]
    unjudged = runner.Loop(loop_cfg(tmp_path, base_policy=str(tmp_path / "base"), judge=None), train, held)
    assert [s.name for s in unjudged.stages(0)] == ["eval"]
    assert [s.name for s in unjudged.stages(1)] == ["label", "train_prm", "train_policy", "eval"]
    assert loop._reward(0).checkpoint is None  # the base judge is the policy: one server
    assert loop._reward(1).checkpoint == str(loop.prm(1))


def test_a_resumed_loop_must_keep_its_config(tmp_path):
    with runner.loop_dir_lock(loop_cfg(tmp_path)):
        pass
    with runner.loop_dir_lock(loop_cfg(tmp_path, rounds=5)):  # more rounds: the same loop
        pass
    with pytest.raises(runner.LoopDirError, match=r"different config \(temperature\)"):
        with runner.loop_dir_lock(loop_cfg(tmp_path, temperature=0.3)):
            pass


def test_a_loop_begun_before_a_field_existed_resumes(tmp_path):
    """loop.yaml written before ponder gained a field is read under today's LoopConfig: the
    missing field is its default, not a change."""
    import yaml

    cfg = loop_cfg(tmp_path)
    with runner.loop_dir_lock(cfg) as directory:
        pass
    saved = yaml.safe_load((directory / "loop.yaml").read_text())
    del saved["drop_shared_eval"], saved["eval"]["budget"]["max_calls"]  # as if added since
    (directory / "loop.yaml").write_text(yaml.safe_dump(saved))
    with runner.loop_dir_lock(cfg):
        pass


@pytest.mark.parametrize("recipe", ["grpo", "treepo", "rover", "dpo", "sft"])
def test_train_policy_runs_the_configured_recipe(tmp_path, monkeypatch, recipe):
    import ponder.rl
    import training.train.policy as policy

    seen: dict = {}

    def trained(name):
        def fn(config, *args, **kwargs):
            seen.update(name=name, config=config, args=args)
            return type("R", (), {"model_dir": config.out / "model", "metrics": {}})()
        return fn

    monkeypatch.setattr(ponder.rl, "train_policy_rl", trained("rl"))
    monkeypatch.setattr(policy, "train_dpo", trained("dpo"))
    monkeypatch.setattr(policy, "train_sft", trained("sft"))
    train = TaskSet([Problem("a", "q1")], {"a": "1"}, MathVerifier())
    held = TaskSet([Problem("b", "q2")], {"b": "2"}, MathVerifier())
    extra = {"train_policy": {"rounds": 1, "n": 2}} if recipe in ("grpo", "treepo", "rover") else {}
    loop = runner.Loop(loop_cfg(tmp_path, base_policy=str(tmp_path / "base"), policy_recipe=recipe, **extra), train, held)
    label = stage_dir(tmp_path, 1, "label")
    label.mkdir(parents=True)
    (label / DONE).write_text(json.dumps({"outputs": {"dpo_dataset": str(label / "datasets" / "pairs")}}))
    asyncio.run(loop.train_policy(1, stage_dir(tmp_path, 1, "train_policy")))
    config = seen["config"]
    assert seen["name"] == {"grpo": "rl", "treepo": "rl", "rover": "rl"}.get(recipe, recipe)
    assert config.base == tmp_path / "base" and config.system_prompt == loop.cfg.system_prompt
    if seen["name"] == "rl":
        assert config.recipe == recipe and config.n == 2 and seen["args"][0] is train  # the loop's training problems
    else:
        assert config.dataset.name == ("pairs" if recipe == "dpo" else "sft")


def test_an_rl_recipe_with_a_bad_field_fails_at_load(tmp_path):
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="train_policy.rho=0"):
        loop_cfg(tmp_path, policy_recipe="rover", train_policy={"rho": 0})


def test_the_judge_stage_scores_the_rounds_prm_on_held_out_planted_solutions(tmp_path, monkeypatch):
    """A fake engine whose judge scores every step 0.9 except steps whose arithmetic is wrong
    (read by hand from 'a + b = c' text): the stage serves round r's PRM, scores the fixed
    planted set of the held-out split and writes judge.json and the marker's headline numbers."""
    import contextlib
    from fractions import Fraction

    import ponder.engine
    from ponder.loop.judge import JudgeBenchConfig, planted_set
    from search.protocols import StepScores, Usage
    from verifiers.planted import is_heldout

    def right(step: str) -> bool:
        claim = step.split(".")[0] if ". The answer" in step else step
        left, _, value = claim.strip().rpartition(" = ")
        a, op, b = left.split(" ", 2)
        ops = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}
        return ops[op](Fraction(a), Fraction(b)) == Fraction(value)

    class ArithmeticJudge:
        async def score(self, problem, paths, first=None):
            return StepScores(tuple(tuple(0.9 if right(t) else 0.1 for t in p) for p in paths), Usage())

    seen = {}

    @contextlib.asynccontextmanager
    async def fake_engine(model, reward=None, **kwargs):
        seen.update(model=model, reward=reward)
        yield type("E", (), {"reward_model": ArithmeticJudge()})()

    monkeypatch.setattr(ponder.engine, "open_engine", fake_engine)
    train = TaskSet([Problem("a", "q1")], {"a": "1"}, MathVerifier())
    held = TaskSet([Problem("b", "q2")], {"b": "2"}, MathVerifier())
    judge = {"tasks": ["chain_sum"], "num_problems": 6}
    loop = runner.Loop(loop_cfg(tmp_path, base_policy=str(tmp_path / "base"), judge=judge), train, held)
    directory = stage_dir(tmp_path, 1, "judge")
    directory.mkdir(parents=True)
    result = asyncio.run(loop.judge(1, directory))
    assert seen["model"].checkpoint == str(loop.prm(1)) and seen["reward"].kind == "generative_prm"
    saved = json.loads((directory / "judge.json").read_text())
    solutions = planted_set(["chain_sum"], 6, 0)
    assert saved["solutions"] == len(solutions) == 12 and all(is_heldout("chain_sum", s.question) for s in solutions)
    # chain_sum's corruptions in turn: wrong arithmetic, sign error, dropped term make the step's
    # arithmetic false (found); a copied wrong number computes right from a wrong operand (missed)
    missed = sum(1 for s in solutions if s.corruption == "copied_wrong_number")
    assert saved["overall"]["first_error_accuracy"] == pytest.approx(1 - missed / 12)
    assert saved["overall"]["first_error_accuracy_correct"] == 1.0
    assert result.outputs["first_error_accuracy"] == saved["overall"]["first_error_accuracy"]
    assert result.outputs["step_auroc"] == saved["overall"]["step_auroc"] > 0.5
    assert saved["settings"] == JudgeBenchConfig(**judge).model_dump(mode="json")


def test_a_mixed_prm_dataset_and_the_judge_are_validated(tmp_path):
    cfg = loop_cfg(tmp_path, label={"search": {"algorithm": "self_consistency", "num_samples": 2},
                                    "labels": [{"generator": "symbolic"}, {"generator": "math_shepherd"}],
                                    "prm_generator": ["symbolic", "math_shepherd"],
                                    "planted": {"tasks": ["chain_sum"], "num_problems": 5}})
    assert cfg.label.prm_generators == ["symbolic", "math_shepherd"] and cfg.label.mixed
    assert not loop_cfg(tmp_path).label.mixed
    with pytest.raises(ValueError, match="'omega_prm' is not among"):
        loop_cfg(tmp_path, label={"search": {"algorithm": "self_consistency", "num_samples": 2},
                                  "prm_generator": ["math_shepherd", "omega_prm"]})
    with pytest.raises(ValueError, match="planted tasks"):
        loop_cfg(tmp_path, judge={"tasks": ["leg_counting"]})


def test_the_label_stage_mixes_generators_and_planted_rows_for_the_prm(tmp_path, monkeypatch):
    """Label stage with prm_generator [symbolic, math_shepherd] and planted rows: each generator's
    dataset is exported, the mix (held-out chain_sum questions left out) is the PRM's dataset, and
    train_prm trains on what the label stage's marker names."""
    import contextlib

    import datasets

    import ponder.run
    import training.export
    import training.train.prm
    from ponder.config import ModelConfig
    from verifiers.planted import is_heldout

    questions = [f"What is {i} + 1?" for i in range(40)]
    train_q = next(q for q in questions if not is_heldout("chain_sum", q))
    held_q = next(q for q in questions if is_heldout("chain_sum", q))

    async def fake_run(cfg, **kwargs):
        return type("O", (), {"rows": [{"usage": {"generated_tokens": 7, "calls": 1}, "labels": 2}]})()

    def fake_export(run_dir, formats, out_dir, generator=None, soft=False, **kwargs):
        target = Path(out_dir) / (f"prm_{generator}" if formats == ["prm"] else formats[0])
        rows = [{"prompt": q + "\n\n", "completions": [f"{generator} step"], "labels": [True], "problem_id": q}
                for q in (train_q, held_q)]
        datasets.Dataset.from_list(rows).save_to_disk(str(target))
        return {formats[0]: target}

    @contextlib.contextmanager
    def no_servers(self, r, with_prm):
        yield ModelConfig(), None

    seen = {}

    def fake_train(config):
        seen["dataset"] = config.dataset
        return type("R", (), {"model_dir": config.out / "model", "metrics": {}})()

    monkeypatch.setattr(ponder.run, "run_config", fake_run)
    monkeypatch.setattr(training.export, "export_run", fake_export)
    monkeypatch.setattr(runner.Loop, "serving", no_servers)
    monkeypatch.setattr(training.train.prm, "train_prm", fake_train)
    train = TaskSet([Problem("a", "q1")], {"a": "1"}, MathVerifier())
    held = TaskSet([Problem("b", "q2")], {"b": "2"}, MathVerifier())
    label = {"search": {"algorithm": "self_consistency", "num_samples": 2},
             "labels": [{"generator": "symbolic"}, {"generator": "math_shepherd"}],
             "prm_generator": ["symbolic", "math_shepherd"], "planted": {"tasks": ["chain_sum"], "num_problems": 2}}
    loop = runner.Loop(loop_cfg(tmp_path, base_policy=str(tmp_path / "base"), label=label), train, held)
    directory = stage_dir(tmp_path, 1, "label")
    directory.mkdir(parents=True)
    result = asyncio.run(loop.label(1, directory))
    mix = result.outputs["prm_mix"]
    assert result.outputs["prm_dataset"] == str(directory / "datasets" / "prm_mix")
    assert mix["by_source"] == {"prm_symbolic": 1, "prm_math_shepherd": 1, "planted": 4} and mix["heldout_dropped"] == 2
    rows = datasets.load_from_disk(result.outputs["prm_dataset"]).to_list()
    assert [r["completions"] for r in rows[:2]] == [["symbolic step"], ["math_shepherd step"]]
    (directory / DONE).write_text(json.dumps({"outputs": result.outputs}))
    asyncio.run(loop.train_prm(1, stage_dir(tmp_path, 1, "train_prm")))
    assert seen["dataset"] == directory / "datasets" / "prm_mix"
