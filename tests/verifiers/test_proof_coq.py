"""Coq through coqtop workers and coqc checks (spec 04 §2, issue 13): runs real Coq; skipped,
with the reason printed (pytest -rs), where coqtop is not installed."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from search.protocols import TacticStatus, Theorem
from verifiers.proof.coq import CLOSED, CoqConfig, CoqEnv, coq_available, read_assumptions
from verifiers.proof.guard import TacticRefused, normalize_tactic
from verifiers.proof.theorems import COQ
from verifiers.proof.vfile import proof_block

REASON = coq_available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"Coq tests skipped: {REASON}")


@pytest.fixture(scope="module")
def env():
    e = CoqEnv(CoqConfig(num_workers=2, tactic_timeout_s=2.0))
    yield e
    e.close()


def test_the_set_has_graded_coq_lemmas():
    assert len(COQ) >= 40 and {s.grade for s in COQ} == {1, 2, 3}
    assert {s.topic for s in COQ} >= {"nat", "bool", "list", "induction"}
    assert len({s.name for s in COQ}) == len(COQ)


def test_every_reference_proof_replays_and_is_closed(env, tmp_path):
    # Each reference proof through the worker pool, then all of them in one coqc file with
    # Print Assumptions after each (one compile keeps the suite fast).
    for spec in COQ:
        assert env.run(spec.theorem(), spec.proof).status is TacticStatus.PROVED, spec.name
    body = "\n".join(f"Theorem {s.name} : {s.statement}.\n{proof_block([normalize_tactic(t) for t in s.proof])}\n"
                     f"Print Assumptions {s.name}." for s in COQ)
    (tmp_path / "All.v").write_text("\n".join((*env.config.preamble, body)))
    done = subprocess.run(["coqc", "-q", "All.v"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(CLOSED) == len(COQ)


def test_states_goals_and_errors(env):
    th = Theorem("pt_x", "forall n : nat, n + 0 = n")
    start = env.start(th)
    assert start.status is TacticStatus.OPEN and start.state.goals == ("============================\nforall n : nat, n + 0 = n",)
    split = env.apply(env.apply(start.state, "intros n.").state, "induction n")
    assert len(split.state.goals) == 2 and split.state.tactics == ("intros n", "induction n")
    bad = env.apply(split.state, "rewrite foo")
    assert bad.status is TacticStatus.ERROR and "foo" in bad.error
    again = env.apply(env.start(th).state, "intro m")  # same goal by another name: a different state
    assert again.state != env.apply(start.state, "intros n").state
    same = env.apply(start.state, "intro n")
    assert same.state == env.apply(start.state, "intros n").state and hash(same.state) == hash(env.apply(start.state, "intros n").state)
    done = env.apply(env.apply(split.state, "reflexivity").state, "simpl; rewrite IHn; reflexivity")
    assert done.status is TacticStatus.PROVED
    assert env.check(th, done.state.tactics).accepted


def test_plan_check_with_placeholders(env):
    th = Theorem("pt_plan", "forall n : nat, n + 0 = n")
    ok = env.check_plan(th, [("h1", "forall m : nat, m + 0 = m")])
    assert ok.status is TacticStatus.OPEN and "h1 : forall m : nat, m + 0 = m" in ok.state.goals[0]
    assert env.check_plan(th, [("h1", "forall m : nat, m + true = m")]).status is TacticStatus.ERROR
    assert env.check_plan(th, [("h1", "True) by admit. (True")]).status is TacticStatus.ERROR


TRICKS = [
    "admit", "admit.", "give_up", "Admitted", "idtac. Admitted", "Abort", "exact_no_check I",
    "Axiom cheat : False", "idtac. Axiom cheat : False", "Parameter p : nat", "Require Import Classical",
    "idtac.\nRequire Import Classical", "Hypothesis h : False", "Variable v : False", "Conjecture c : False",
    "Context (h : False)", "Declare ML Module \"x\"", "Local Axiom cheat : False", "Unset Guard Checking",
    "Set Printing All", "Opaque Nat.add", "Qed. Theorem pt_true : True", "exact I. Qed",
    "idtac; Axiom x : False", "exact I) . Axiom x : False . (idtac", "(* comment *) exact I",
    "exact \"s\"", "- exact I", "native_compute", "Ltac t := idtac", "Timeout 1 idtac", "exact\u00a0I",
    # issue 24: commands that Timeout would make harmless are refused all the same, and a tactic
    # must start with a tactic Coq knows (the allow list), so a fence's language tag is no tactic
    "Quit", "Cd", "Pwd", "Show", "Show Proof", "idtac; Show", "Print Assumptions pt_trick", "coq", "```coq",
    "Coq", "Search nat",
]


@pytest.mark.parametrize("trick", TRICKS)
def test_smuggling_tricks_are_refused_everywhere(env, trick):
    # issue 13: whatever the model writes, no assumption gets in: the guard refuses the text
    # at apply() and at the final check, and nothing reaches Coq outside `Timeout N (tac).`.
    th = Theorem("pt_trick", "False")
    with pytest.raises(TacticRefused):
        normalize_tactic(trick)
    assert env.apply(env.start(th).state, trick).status is TacticStatus.ERROR
    assert not env.check(th, [trick]).accepted
    assert not env.check(Theorem("pt_true2", "True"), ["idtac", trick, "exact I"]).accepted


def test_print_assumptions_refuses_an_axiom_the_guard_let_through():
    # The second line of defence: an axiom in the (trusted) context compiles, but the proof
    # is not closed under the global context, so it is refused.
    env = CoqEnv(CoqConfig(num_workers=1, preamble=("Axiom cheat : False.",)))
    check = env.check(Theorem("pt_cheat", "1 = 2"), ["destruct cheat"])
    assert not check.accepted and "cheat" in check.detail and "not closed" in check.detail
    assert env.check(Theorem("pt_honest", "1 = 1"), ["reflexivity"]).accepted
    env.close()


def test_incomplete_proof_is_refused(env):
    th = Theorem("pt_inc", "forall n : nat, n + 0 = n")
    assert not env.check(th, ["intros n", "induction n"]).accepted


def test_hung_tactic_times_out_and_the_worker_is_replaced():
    loop = "let rec f := idtac; f in f"
    inner = CoqEnv(CoqConfig(num_workers=1, tactic_timeout_s=1.0))
    th = Theorem("pt_hang", "True")
    res = inner.apply(inner.start(th).state, loop)
    assert res.status is TacticStatus.ERROR and "Timeout" in res.error and inner.restarts == 0
    inner.close()
    hard = CoqEnv(CoqConfig(num_workers=1, tactic_timeout_s=1.0, inner_timeout=False, kill_grace_s=0.5))
    state = hard.start(th).state
    pid = hard._idle[0].proc.pid
    t0 = time.perf_counter()
    res = hard.apply(state, loop)
    assert res.status is TacticStatus.ERROR and "worker replaced" in res.error
    assert time.perf_counter() - t0 < 5 and hard.restarts == 1
    assert hard.apply(state, "exact I").status is TacticStatus.PROVED  # a fresh worker answers
    assert hard._idle[0].proc.pid != pid
    hard.close()


FORGE = "match goal with e : _, d : _, c : _, b : _, a : _ |- _ => idtac e d c b a end"


def test_printed_text_never_counts_as_a_proof(env):
    # issue 24: a tactic that prints "No more goals" (idtac of hypotheses so named) leaves the
    # goal open: the state comes from the protocol's goal lists, not from what was printed.
    th = Theorem("pt_forge", "forall (x y No more goals : nat), No = more")
    res = env.apply(env.start(th).state, f"intros x y No more goals; {FORGE}")
    assert res.status is TacticStatus.OPEN and res.state.goals[0].endswith("No = more")
    assert not env.check(th, [f"intros x y No more goals; {FORGE}"]).accepted


def test_a_printed_verdict_does_not_pass_the_final_check():
    # issue 24: the proof prints "Closed under the global context" while it leans on an axiom;
    # the verdict is read from a separate process that runs no model text, so it is refused.
    env = CoqEnv(CoqConfig(num_workers=1, preamble=("Axiom cheat : False.",)))
    th = Theorem("pt_forge2", "forall (Closed under the global context : nat), 1 = 2")
    tactics = [f"intros Closed under the global context; {FORGE}", "destruct cheat"]
    assert env.run(th, tactics).status is TacticStatus.PROVED  # Coq itself is fine with the axiom
    check = env.check(th, tactics)
    assert not check.accepted and "cheat" in check.detail
    env.close()


def test_a_worker_that_died_while_idle_is_replaced():
    # issue 24: the next step after an idle worker died is an answer, not BrokenPipeError:
    # a worker seen dead is restarted before use; one that dies unseen (here: its liveness
    # check lies) fails the write, is replaced, and the step is retried on a fresh worker.
    env = CoqEnv(CoqConfig(num_workers=1, tactic_timeout_s=2.0))
    th = Theorem("pt_dead", "forall n : nat, n + 0 = n")
    state = env.apply(env.start(th).state, "intros n").state
    worker = env._idle[0]
    old = worker.proc.pid
    os.killpg(old, signal.SIGKILL)
    worker.proc.wait()
    res = env.apply(state, "induction n")
    assert res.status is TacticStatus.OPEN and len(res.state.goals) == 2 and worker.proc.pid != old
    old = worker.proc.pid
    os.killpg(old, signal.SIGKILL)
    time.sleep(0.2)
    worker.ide.alive = lambda: True  # the death goes unnoticed until the pipe breaks
    res = env.apply(res.state, "reflexivity")
    assert res.status is TacticStatus.OPEN and len(res.state.goals) == 1
    assert env.restarts == 1 and worker.proc.pid != old
    env.close()


def test_the_final_check_has_a_time_limit_and_kills_coqc():
    # issue 24: a proof that loops in coqc (no Timeout there) is stopped at check_timeout_s and
    # its process group killed.
    env = CoqEnv(CoqConfig(num_workers=1, check_timeout_s=2.0))
    t0 = time.perf_counter()
    check = env.check(Theorem("pt_loop", "True"), ["let rec f := idtac; f in f"])
    assert not check.accepted and "check_timeout_s" in check.detail and time.perf_counter() - t0 < 10
    time.sleep(0.2)
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).count("ponder-coq-")]
    env.close()


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("output, names", [
    ("Closed under the global context\n", []),
    ("Axioms:\nPonderProof.ax : forall n : nat, n = n + 0\nPonderProof.M.adm : 1 = 1\n",
     ["PonderProof.ax", "PonderProof.M.adm"]),
    ("Axioms:\nlong_name\n  : forall a b : nat,\n    a + b =\n    b + a\nax2 : T\n", ["long_name", "ax2"]),
    ("Section Variables:\nv : nat\nAxioms:\nClassical_Prop.classic : forall P : Prop, P \\/ ~ P\n",
     ["v", "Classical_Prop.classic"]),
])
def test_print_assumptions_output_is_read_strictly(output, names):
    assert read_assumptions(output) == names


@pytest.mark.parametrize("output", ["", "Closed under the global context\nClosed under the global context",
                                    "some text\nClosed under the global context", "Axioms:\n"])
def test_anything_else_is_not_a_verdict(output):
    with pytest.raises(ValueError):
        read_assumptions(output)
