"""Configs that cannot work are refused when they are loaded: one ConfigError naming the field
and the fix (ponder.requirements), and the fix it names makes the config load."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ponder.config import parse_run_config, validated
from ponder.loop.config import LoopConfig
from search.algorithms import parse_algorithm_config
from search.protocols import ConfigError

SELF_EVAL = {"reward": {"kind": "self_eval"}}


def merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in, nested mappings key by key; a None value deletes."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


# (config, field named, a fix the message names, the config with that fix applied)
RUN_CASES = [
    pytest.param({"search": {"algorithm": "mcts"}}, "search.value", "reward: {kind: self_eval}",
                 SELF_EVAL, id="mcts-default-value-needs-a-reward-model"),
    pytest.param({"search": {"algorithm": "mcts"}}, "search.value", "set search.value: prior",
                 {"search": {"value": "prior"}}, id="mcts-or-the-prior"),
    pytest.param({"search": {"algorithm": "best_of_n"}}, "search.algorithm", "search.algorithm: self_consistency",
                 {"search": {"algorithm": "self_consistency"}}, id="best-of-n-needs-a-reward-model"),
    pytest.param({"search": {"algorithm": "best_of_n"}}, "search.algorithm", "reward: {kind: self_eval}",
                 SELF_EVAL, id="best-of-n-with-self-eval"),
    pytest.param({"search": {"algorithm": "step_beam", "score": "reward_model"}}, "search.score",
                 "search.score: prior", {"search": {"score": "prior"}}, id="step-beam-score"),
    pytest.param({"search": {"algorithm": "dvts", "score": "reward_model"}}, "search.score",
                 "or auto", {"search": {"score": "auto"}}, id="dvts-score"),
    pytest.param({"search": {"algorithm": "best_first", "priority": "reward_model"}}, "search.priority",
                 "search.priority: logprob", {"search": {"priority": "logprob"}}, id="best-first-priority"),
    pytest.param({"search": {"algorithm": "rest_mcts"}}, "search.value", "reward: {kind: self_eval}",
                 SELF_EVAL, id="rest-mcts-default-value"),
    pytest.param({"search": {"algorithm": "mcts", "value": "rollout"}, **SELF_EVAL}, "search.value",
                 "mode: label", {"mode": "label"}, id="mcts-rollouts-need-label-mode"),
    pytest.param({"search": {"algorithm": "mcts", "value": "rollout"}}, "search.value",
                 "search.value: prior", {"search": {"value": "prior"}}, id="mcts-rollouts-or-the-prior"),
    pytest.param({"search": {"algorithm": "mcts", "value": "prior", "verify_terminals": True}},
                 "search.verify_terminals", "search.verify_terminals: false",
                 {"search": {"verify_terminals": False}}, id="mcts-terminal-checks-need-label-mode"),
    pytest.param({"search": {"algorithm": "rest_mcts", "value": "rollout"}, **SELF_EVAL}, "search.value",
                 "mode: label", {"mode": "label"}, id="rest-mcts-rollouts"),
    pytest.param({"labels": [{"generator": "math_shepherd"}]}, "labels", "set mode: label",
                 {"mode": "label"}, id="labels-need-label-mode"),
    pytest.param({"mode": "label", "search": {"algorithm": "step_beam"}, "labels": [{"generator": "alphamath"}]},
                 "labels.0.generator", "mcts or rest_mcts",
                 {"search": {"algorithm": "mcts", "value": "prior"}}, id="alphamath-needs-mcts-q"),
    pytest.param({"mode": "label", "search": {"algorithm": "self_consistency"},
                  "labels": [{"generator": "rover"}, {"generator": "alphamath"}]},
                 "labels.1.generator", "another generator", {"labels": [{"generator": "rover"}]},
                 id="alphamath-or-another-generator"),
    pytest.param({"reward": {"kind": "pooling_prm"}}, "reward.kind", "reward.endpoints",
                 {"reward": {"endpoints": ["http://127.0.0.1:8001"]}}, id="pooling-prm-needs-a-pooling-server"),
    pytest.param({"reward": {"kind": "pooling_prm"}}, "reward.kind", "reward.checkpoint",
                 {"reward": {"checkpoint": "/models/prm"}}, id="pooling-prm-or-a-checkpoint"),
    pytest.param({"reward": {"kind": "self_eval", "checkpoint": "/models/prm"}}, "reward.checkpoint",
                 "remove reward.checkpoint", {"reward": {"checkpoint": None}}, id="self-eval-takes-no-checkpoint"),
    pytest.param({"reward": {"kind": "self_eval", "endpoints": ["http://x:1"]}}, "reward.endpoints",
                 "reward.kind: generative_prm", {"reward": {"kind": "generative_prm"}},
                 id="self-eval-takes-no-endpoints"),
    pytest.param({"reward": {"kind": "self_eval", "model": "judge"}}, "reward.model", "remove reward.model",
                 {"reward": {"model": None}}, id="self-eval-takes-no-model-name"),
]


@pytest.mark.parametrize(("data", "field", "fix", "fixed"), RUN_CASES)
def test_a_run_config_that_cannot_work_is_refused_with_the_field_and_the_fix(data, field, fix, fixed):
    with pytest.raises(ConfigError) as info:
        parse_run_config(data)
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith(f"invalid {field}=") and fix in message, message
    parse_run_config(merged(data, fixed))  # the named fix is enough


@pytest.mark.parametrize(("search", "reward_model", "oracle"), [
    ({"algorithm": "cot"}, False, False),
    ({"algorithm": "self_consistency"}, False, False),
    ({"algorithm": "best_of_n"}, True, False),
    ({"algorithm": "step_beam"}, False, False),  # score auto: the reward model when there is one
    ({"algorithm": "step_beam", "score": "reward_model"}, True, False),
    ({"algorithm": "dvts", "score": "prior"}, False, False),
    ({"algorithm": "best_first"}, False, False),
    ({"algorithm": "best_first", "priority": "reward_model"}, True, False),
    ({"algorithm": "mcts"}, True, False),
    ({"algorithm": "mcts", "value": "rollout"}, False, True),
    ({"algorithm": "mcts", "value": "reward_model", "verify_terminals": True}, True, True),
    ({"algorithm": "rest_mcts", "value": "prior"}, False, False),
    ({"algorithm": "mc_nest"}, False, False),  # the policy evaluates itself in its own conversation
    ({"algorithm": "mctsr"}, False, False),
    ({"algorithm": "treepo"}, False, False),
])
def test_each_algorithm_declares_what_its_settings_need(search, reward_model, oracle):
    config = parse_algorithm_config(search)
    assert config.needs_reward_model is reward_model
    assert config.needs_oracle is oracle
    parse_run_config({"search": search, "mode": "label" if oracle else "solve",
                      **(SELF_EVAL if reward_model else {})})


def test_label_mode_checks_the_default_generators_too():
    cfg = parse_run_config({"mode": "label", "search": {"algorithm": "cot"}})
    assert [g.generator for g in cfg.label_generators] == ["rest_value", "rest_prm"]


LOOP = {
    "train_tasks": {"source": "reasoning_gym", "name": "chain_sum", "size": 4, "seed": 1},
    "eval_tasks": {"source": "reasoning_gym", "name": "chain_sum", "size": 3, "seed": 2},
    "label": {"search": {"algorithm": "cot"}},
    "eval": {"budget": {"max_generated_tokens": 500}, "methods": {"cot": {"algorithm": "cot"}}},
}
LOOP_CASES = [
    pytest.param({"label": {"search": {"algorithm": "mcts"}}}, "label.search.value", "label.uses_reward: true",
                 {"label": {"uses_reward": True}}, id="label-search-scored-without-the-prm"),
    pytest.param({"label": {"search": {"algorithm": "mcts"}}}, "label.search.value", "label.search.value: prior",
                 {"label": {"search": {"value": "prior"}}}, id="label-search-or-the-prior"),
    pytest.param({"label": {"labels": [{"generator": "alphamath"}], "prm_generator": "alphamath"}},
                 "label.labels.0.generator", "label.search.algorithm", {"label": {"search": {
                     "algorithm": "rest_mcts", "value": "prior"}}}, id="loop-alphamath"),
    pytest.param({"eval": {"methods": {"tree": {"algorithm": "mcts"}}}}, "eval.methods.tree.value",
                 "add tree to eval.prm_methods", {"eval": {"prm_methods": ["tree"]}}, id="eval-method-not-scored"),
    pytest.param({"eval": {"methods": {"tree": {"algorithm": "mcts", "value": "rollout"}}, "prm_methods": ["tree"]}},
                 "eval.methods.tree.value", "eval.methods.tree.value: prior",
                 {"eval": {"methods": {"tree": {"value": "prior"}}}}, id="eval-never-sees-gold-answers"),
    pytest.param({"train_prm": {"num_epoch": 1}}, "train_prm.num_epoch", "train_prm",
                 {"train_prm": {"num_epoch": None, "num_epochs": 1}}, id="train-prm-field-typo"),
    pytest.param({"train_policy": {"learning_rat": 1e-5}}, "train_policy.learning_rat", "train_policy",
                 {"train_policy": {"learning_rat": None, "learning_rate": 1e-5}}, id="sft-field-typo"),
    pytest.param({"train_policy": {"dataset": "x"}}, "train_policy.dataset", "remove it",
                 {"train_policy": {"dataset": None}}, id="the-loop-sets-the-dataset"),
]


@pytest.mark.parametrize(("update", "field", "fix", "fixed"), LOOP_CASES)
def test_a_loop_config_checks_every_stage_at_load(update, field, fix, fixed):
    data = merged(LOOP, update)
    with pytest.raises(ConfigError) as info:
        validated(LoopConfig, data)
    assert info.value.field == field
    assert fix in str(info.value), str(info.value)
    validated(LoopConfig, merged(data, fixed))


TASKS = {"source": "reasoning_gym", "name": "chain_sum", "size": 2, "seed": 1}


@pytest.fixture
def no_server(monkeypatch):
    """Fails the test if anything tries to start (or find) a model server."""
    import models.managed
    import models.server
    import ponder.engine
    import ponder.run

    def refuse(*args, **kwargs):
        raise AssertionError("a server was started for a config that cannot work")

    for module, name in ((models.server, "start_server"), (models.managed, "start_server"),
                         (models.managed, "ensure_server"), (ponder.engine, "ensure_server"),
                         (ponder.engine, "open_engine"), (ponder.run, "open_engine")):
        monkeypatch.setattr(module, name, refuse)


@pytest.mark.parametrize(("command", "config", "field", "fix"), [
    (["run"], {"tasks": TASKS, "search": {"algorithm": "mcts"}}, "search.value", "reward: {kind: self_eval}"),
    (["label"], {"tasks": TASKS, "search": {"algorithm": "step_beam"}, "labels": [{"generator": "alphamath"}]},
     "labels.0.generator", "mcts or rest_mcts"),
    (["solve", "What is 2 + 2?", "--config"], {"search": {"algorithm": "best_of_n"}}, "search.algorithm",
     "self_consistency"),
    (["loop"], merged(LOOP, {"eval": {"methods": {"tree": {"algorithm": "mcts"}}}}), "eval.methods.tree.value",
     "eval.prm_methods"),
    (["run"], {"tasks": TASKS, "search": {"algorithm": "best_of_n"},
               "reward": {"kind": "generative_prm", "checkpoint": "/nonexistent/prm"}},
     "reward.checkpoint", "Hugging Face checkpoint folder"),  # its server would start after the policy's
    (["solve", "What is 2 + 2?", "--config"], {"model": {"checkpoint": "/nonexistent/policy"}},
     "model.checkpoint", "does not exist"),
    (["loop"], merged(LOOP, {"base_prm": "/nonexistent/judge"}), "base_prm", "not a checkpoint directory"),
])
def test_the_cli_refuses_with_exit_2_before_any_server_starts(tmp_path, no_server, command, config, field, fix):
    import yaml
    from typer.testing import CliRunner

    from ponder.cli.main import app

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"run_dir" if command[0] != "loop" else "loop_dir": str(tmp_path / "out"),
                                    **config}))
    result = CliRunner().invoke(app, [*command, str(path)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"invalid {field}=" in text and fix in text, text
    assert not (tmp_path / "out").exists()  # nothing was started or written
