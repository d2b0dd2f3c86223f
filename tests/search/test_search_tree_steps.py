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


# -- whole solutions cut into steps afterwards (issue 8 §2) ------------------------------------

def _solution(pieces, finish="eos"):
    """A sampled solution whose tokens are ``pieces`` (text offsets as vLLM reports them)."""
    offsets, pos = [], 0
    for p in pieces:
        offsets.append(pos)
        pos += len(p)
    n = len(pieces)
    return StepProposal("".join(pieces), tuple(range(100, 100 + n)), tuple(-0.1 * (i + 1) for i in range(n)),
                        finish, text_offsets=tuple(offsets))


def test_split_cuts_after_the_token_that_completes_the_delimiter():
    sol = _solution(["Add", " 2", ".\n\n", "Then", " 3", "\n", "\n", "The answer is 5."])
    steps = StepFormat().split(sol, max_steps=10)
    assert [s.text for s in steps] == ["Add 2.\n\n", "Then 3\n\n", "The answer is 5."]
    assert [s.token_ids for s in steps] == [(100, 101, 102), (103, 104, 105, 106), (107,)]
    assert [s.finish_reason for s in steps] == ["stop", "stop", "eos"]
    assert steps[0].stop_reason == "\n\n" and steps[1].logprobs == pytest.approx((-0.4, -0.5, -0.6, -0.7))
    assert sum((s.token_ids for s in steps), ()) == sol.token_ids


def test_split_keeps_a_straddling_token_whole_and_stops_at_max_steps():
    sol = _solution(["a", "\n\nb", "\n\n", "c", "\n\n", "d"], finish="length")
    steps = StepFormat().split(sol, max_steps=2)
    assert [s.text for s in steps] == ["a\n\nb", "\n\n"]  # the token "\n\nb" ends step 1; the rest dropped
    assert [s.finish_reason for s in steps] == ["stop", "stop"]


def test_split_without_offsets_or_in_fixed_token_mode():
    sol = _solution(["x\n\n", "y"])
    no_offsets = type(sol)(sol.text, sol.token_ids, sol.logprobs, "eos")
    assert StepFormat().split(no_offsets, 5) == [no_offsets]
    segs = StepFormat(fixed_tokens=2).split(_solution(["a", "b", "c", "d", "e"]), 5)
    assert [s.text for s in segs] == ["ab", "cd", "e"] and [s.finish_reason for s in segs] == ["length", "length", "eos"]


def test_solution_tokens_is_capped_by_what_max_depth_steps_could_hold():
    assert StepFormat(max_depth=4, max_step_tokens=50).solution_tokens == 200
    assert StepFormat().solution_tokens == 1024
