"""The always-available equational environment (issue 13 §1): sympy-checked rewrites."""

from __future__ import annotations

import pytest

from search.protocols import TacticStatus, Theorem
from verifiers.proof.rewrite import RewriteEnv
from verifiers.proof.theorems import REWRITE


@pytest.fixture(scope="module")
def env():
    e = RewriteEnv()
    yield e
    e.close()


def test_the_set_is_graded_and_every_reference_proof_checks(env):
    assert len(REWRITE) >= 30 and {s.grade for s in REWRITE} == {1, 2, 3}
    for spec in REWRITE:
        check = env.check(spec.theorem(), spec.proof)
        assert check.accepted, (spec.name, check.detail)
        assert not env.check(spec.theorem(), spec.proof[:-1]).accepted, spec.name


def test_tactics(env):
    th = Theorem("rw_t", "(a + b)*(a - b) + b^2 = a^2")
    s = env.start(th).state
    assert s.goals == ("============================\nb^2 + (a - b)*(a + b) = a^2",)
    bad = env.apply(s, "rewrite (a + b)*(a - b) = a^2 + b^2")
    assert bad.status is TacticStatus.ERROR and "not an identity" in bad.error
    whole = env.apply(s, "rewrite (a + b)*(a - b) + b^2 = a^2")
    assert whole.status is TacticStatus.ERROR and "proper part" in whole.error
    step = env.apply(s, "rewrite (a + b)*(a - b) = a^2 - b^2.")
    assert step.status is TacticStatus.OPEN
    assert env.apply(step.state, "reflexivity").status is TacticStatus.PROVED
    ring = env.apply(s, "ring_nf")
    assert env.apply(ring.state, "ring_nf").error == "ring_nf: already used on this goal"
    assert env.apply(s, "ring_nf").state == ring.state  # states are hashable and compared by goals


def test_assert_and_hypothesis_rewrite(env):
    th = Theorem("rw_h", "x^2 + 2*x + 1 + y = (x + 1)^2 + y")
    s = env.apply(env.start(th).state, "assert (h : (x + 1)^2 = x^2 + 2*x + 1)").state
    assert len(s.goals) == 2 and "h : (x + 1)^2 = x^2 + 2*x + 1" in s.goals[1]
    s = env.apply(env.apply(s, "ring_nf").state, "reflexivity").state
    assert len(s.goals) == 1
    assert env.apply(env.apply(s, "rewrite h").state, "reflexivity").status is TacticStatus.PROVED
    assert env.check_plan(th, [("h", "(x + 1)^2 = x^2 + 2*x + 1")]).status is TacticStatus.OPEN


@pytest.mark.parametrize("text", ["admit", "rewrite __import__('os').system('x') = 1", "rewrite a^99 = a^99",
                                  "rewrite a.b = 1", "rewrite exp(a) = 1", "rewrite a = a = a"])
def test_refused_text(env, text):
    th = Theorem("rw_r", "a + 1 = 1 + a")
    res = env.apply(env.start(th).state, text)
    assert res.status is TacticStatus.ERROR
    assert not env.check(th, [text, "reflexivity"]).accepted
