"""Run configs: invalid input names the field and the value."""

import pytest

from ponder.config import load_run_config, parse_run_config
from search.protocols import ConfigError


@pytest.mark.parametrize(
    "data, field, value",
    [
        ({"search": {"algorithm": "mcts", "num_simulations": -1}}, "search.mcts.num_simulations", -1),
        ({"budget": {"max_calls": 0}}, "budget.max_calls", 0),
        ({"bogus": 1}, "bogus", 1),
        ({"mode": "cheat"}, "mode", "cheat"),
        ({"steps": {"max_depth": "deep"}}, "steps.max_depth", "deep"),
        ({"tasks": {"source": "reasoning_gym", "name": "chain_sum", "size": 0}}, "tasks.reasoning_gym.size", 0),
    ],
)
def test_invalid_config_names_field_and_value(data, field, value):
    with pytest.raises(ConfigError) as info:
        parse_run_config(data)
    assert info.value.field == field
    assert info.value.value == value
    assert field in str(info.value) and repr(value) in str(info.value)


def test_every_preset_validates():
    from pathlib import Path

    from ponder.loop.config import load_loop_config
    from ponder.prove import load_prove_config

    configs = sorted(Path(__file__).parents[2].joinpath("configs").glob("*.yaml"))
    loops = [p for p in configs if p.name.startswith("loop")]
    proves = [p for p in configs if p.name.startswith("prove")]
    presets = [p for p in configs if p not in loops and p not in proves]
    assert len(presets) >= 9 and len(loops) >= 3
    algorithms = {load_run_config(p).search.algorithm for p in presets}
    assert {"cot", "self_consistency", "best_of_n", "step_beam", "dvts", "best_first", "mcts", "rest_mcts"} <= algorithms
    for p in loops:
        assert load_loop_config(p).eval.methods
    assert proves, "configs/prove.yaml is the prove preset"
    for p in proves:
        assert load_prove_config(p).env


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_run_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_run_config(bad)
    bad.write_text("- a list")
    with pytest.raises(ConfigError, match="mapping"):
        load_run_config(bad)


def test_tree_view_shows_stats_and_step_text_verbatim():
    from rich.console import Console

    from ponder.cli.render import tree_view
    from search.protocols import StepProposal, Usage
    from search.trace import SearchResult
    from search.tree import Tree

    tree = Tree([1, 2])
    a = tree.add_child(0, StepProposal("step [one]", (1,), (-0.1,), "stop"), terminal=False)
    b = tree.add_child(a.id, StepProposal("The answer is 3.", (2,), (-0.2,), "eos"), terminal=True)
    b.answer = "3"
    console = Console(record=True, width=120)
    console.print(tree_view(SearchResult(answer="3", path=[0, a.id, b.id], tree=tree, usage=Usage(), algorithm="x")))
    text = console.export_text()
    assert "[#1 n=0 p=0.90] 'step [one]'" in text
    assert "ans=3" in text
