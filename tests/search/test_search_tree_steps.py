"""The tree arena and the step format."""

import networkx
import pytest
from pydantic import ValidationError

from search.protocols import StepProposal
from search.steps import StepFormat
from search.tree import Tree


def prop(text: str, ids: tuple[int, ...], lps: tuple[float, ...], finish: str = "stop") -> StepProposal:
    return StepProposal(text, ids, lps, finish)  # type: ignore[arg-type]


def test_tree_arena_paths_and_export():
    tree = Tree([1, 2])
    a = tree.add_child(0, prop("a\n\n", (10, 11), (-0.2, -0.4)), terminal=False)
    b = tree.add_child(a.id, prop("b ANSWER:4", (12,), (-0.3,), "eos"), terminal=True)
    c = tree.add_child(0, prop("c\n\n", (13,), ()), terminal=False)
    assert [n.id for n in tree] == [0, 1, 2, 3]
    assert tree[0].children == [1, 3] and tree[1].children == [2]
    assert (a.depth, b.depth, b.parent) == (1, 2, 1)
    assert a.logprob_sum == pytest.approx(-0.6) and a.logprob_mean == pytest.approx(-0.3)
    assert c.logprob_mean == 0.0 and c.prior == 1.0
    assert tree.path(2) == [0, 1, 2]
    assert tree.path_token_ids(2) == [1, 2, 10, 11, 12]
    assert tree.path_token_ids(0) == [1, 2]
    assert tree.path_texts(2) == ["a\n\n", "b ANSWER:4"]
    assert tree.path_text(2) == "a\n\nb ANSWER:4"
    assert tree.path_mean_logprob(2) == pytest.approx(-0.3)
    assert tree.leaves() == [2, 3] and tree.terminals() == [2]
    assert tree.subtree(0) == [0, 1, 2, 3]
    graph = tree.to_networkx()
    assert isinstance(graph, networkx.DiGraph)
    assert sorted(graph.edges) == [(0, 1), (0, 3), (1, 2)]
    assert graph.nodes[2]["terminal"] and graph.nodes[1]["token_ids"] == (10, 11)


def test_step_format_modes():
    default = StepFormat()
    assert (default.delimiter, default.fixed_tokens) == ("\n\n", None)
    s = default.sampling(3, temperature=0.6, seed=5)
    assert (s.n, s.stop, s.max_tokens, s.temperature, s.seed, s.include_stop_str_in_output) == (3, ("\n\n",), 256, 0.6, 5, True)
    fixed = StepFormat(fixed_tokens=512)
    assert fixed.delimiter is None
    assert fixed.sampling(1, temperature=1.0).stop == () and fixed.sampling(1, temperature=1.0).max_tokens == 512
    with pytest.raises(ValidationError):
        StepFormat(delimiter="\n", fixed_tokens=8)
    with pytest.raises(ValidationError):
        StepFormat(delimiter=None)
    with pytest.raises(ValidationError):
        StepFormat(bogus=1)
    with pytest.raises(ValidationError):
        default.max_depth = 3  # frozen


@pytest.mark.parametrize(
    ("finish", "depth", "terminal"),
    [("eos", 1, True), ("stop", 1, False), ("length", 1, False), ("stop", 4, True), ("length", 4, True)],
)
def test_terminality_is_eos_or_max_depth(finish, depth, terminal):
    steps = StepFormat(max_depth=4)
    assert steps.is_terminal(prop("x", (1,), (-0.1,), finish), depth) is terminal
