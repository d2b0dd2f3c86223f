"""A user's .v file as theorems (issue 24 item 4): reading the lemmas left Admitted with their
context, proving them in that context with real Coq, the final check's rule for the file's own
assumptions, and the file written back with the proofs in place."""

from __future__ import annotations

import subprocess

import pytest

from search.protocols import TacticStatus
from verifiers.proof.coq import CoqConfig, CoqEnv, coq_available
from verifiers.proof.vfile import VFileError, parse_vfile, read_vfile, split_sentences, write_proofs, write_proofs_file

SAMPLE = """(* A user's file. Lemma fake : False. Admitted. -- inside a comment, not a lemma *)
Require Import Arith Lia.
From Coq Require Import List.
Import ListNotations.

Definition double (n : nat) := n + n.
Axiom magic : forall n : nat, double n = 2 * n.

Lemma double_0 : double 0 = 0.
Proof. reflexivity. Qed.

Lemma double_S (n : nat) :
  double (S n) = S (S (double n)).
Proof.
  unfold double. (* a partial proof. *) simpl.
Admitted.

Module M.
Section S.
  Variable k : nat.
  Theorem uses_k : k + 0 = k.
  Proof using k.
    - idtac.
  Admitted.
End S.
Lemma four : double 2 = 4.
Proof. { idtac. admit. } Admitted.
Lemma by_magic : forall n, double n = 2 * n.
Admitted.
End M.

Lemma uses_admitted : forall n, double (S n) = S (S (double n)).
Proof. Admitted.
Example ex1 : [1] ++ [] = [1]. Proof. reflexivity. Qed.
From Coq Require Import String. Open Scope string_scope.
Lemma str : "a. b" = "a. b". Admitted.
"""


def test_sentences_skip_comments_strings_bullets_and_braces():
    texts = [s.text for s in split_sentences(SAMPLE)]
    assert "Lemma fake : False." not in " ".join(texts)
    assert "-" in texts and "{" in texts and "}" in texts and "idtac." in texts
    assert 'Lemma str : "a. b" = "a. b".' in texts
    assert texts[0] == "Require Import Arith Lia." and texts[-1] == "Admitted."
    dots = [s.text for s in split_sentences("Notation x := (cons 1 .. (cons 2 nil) ..).\nProof with auto.\nsplit... Qed.")]
    assert dots == ["Notation x := (cons 1 .. (cons 2 nil) ..).", "Proof with auto.", "split...", "Qed."]
    with pytest.raises(VFileError, match="unterminated comment"):
        split_sentences("Lemma x : True. (* open")
    with pytest.raises(VFileError, match="missing period"):
        split_sentences("Lemma x : True")


def test_admitted_lemmas_with_their_context():
    specs = parse_vfile(SAMPLE, file="Sample.v")
    assert [s.name for s in specs] == ["double_S", "M.uses_k", "M.four", "M.by_magic", "uses_admitted", "str"]
    ds = specs[0]
    assert ds.statement == "forall (n : nat), double (S n) = S (S (double n))"
    assert ds.source.header.startswith("Lemma double_S (n : nat) :") and ds.source.opener == "Proof."
    assert ds.source.context[-4:] == ("Lemma double_0 : double 0 = 0.", "Proof.", "reflexivity.", "Qed.")
    assert "Definition double (n : nat) := n + n." in ds.source.context
    assert ds.source.allowed == ("magic",)
    uk = specs[1]
    assert uk.source.opener == "Proof using k." and uk.source.closers == ("End S.", "End M.")
    assert specs[3].source.allowed == ("magic", "double_S", "M.k", "M.uses_k", "M.four")
    assert specs[4].source.closers == () and "M.by_magic" in specs[4].source.allowed
    assert uk.theorem().metadata["coq_source"] is uk.source


def test_listed_names_and_clear_errors():
    assert [s.name for s in parse_vfile(SAMPLE, ["ex1", "M.four", "double_0"])] == ["ex1", "M.four", "double_0"]
    with pytest.raises(VFileError, match="invalid theorems='nope'.*double_S"):
        parse_vfile(SAMPLE, ["nope"])
    with pytest.raises(VFileError, match="never ends"):
        parse_vfile("Lemma x : True.\nProof. exact I.\n")


def test_write_back_replaces_only_the_proved_blocks(tmp_path):
    specs = parse_vfile(SAMPLE)
    out = write_proofs(SAMPLE, {"M.four": ["reflexivity"], "double_S": ["unfold double", "lia"]}, specs)
    assert "Lemma four : double 2 = 4.\nProof.\n  (reflexivity).\nQed.\n" in out
    assert "  double (S n) = S (S (double n)).\nProof.\n  (unfold double).\n  (lia).\nQed.\n\nModule M." in out
    assert out.count("Admitted.") == SAMPLE.count("Admitted.") - 2  # the comment's one stays
    assert "Theorem uses_k : k + 0 = k.\n  Proof using k.\n    - idtac.\n  Admitted." in out
    src = tmp_path / "In.v"
    src.write_text(SAMPLE)
    with pytest.raises(VFileError, match="refusing to overwrite"):
        write_proofs_file(src, src, {}, specs)
    with pytest.raises(VFileError, match="no file lemma"):
        write_proofs(SAMPLE, {"double_0": ["reflexivity"]}, specs)


coq = pytest.mark.skipif(coq_available() is not None, reason=f"Coq tests skipped: {coq_available()}")


@pytest.fixture(scope="module")
def env():
    e = CoqEnv(CoqConfig(num_workers=1, tactic_timeout_s=3.0))
    yield e
    e.close()


@coq
def test_file_lemmas_are_proved_in_their_context_and_written_back(env, tmp_path):
    path = tmp_path / "Sample.v"
    path.write_text(SAMPLE)
    specs = {s.name: s for s in read_vfile(path)}
    proofs = {"double_S": ["unfold double", "lia"], "M.uses_k": ["lia"], "M.four": ["reflexivity"],
              "M.by_magic": ["exact magic"], "uses_admitted": ["exact double_S"], "str": ["reflexivity"]}
    first = env.start(specs["double_S"].theorem())
    assert first.status is TacticStatus.OPEN and "n : nat" in first.state.goals[0]  # the header's binder
    assert env.start(specs["M.uses_k"].theorem()).state.goals[0].startswith("k : nat")
    checks = {}
    for name, tactics in proofs.items():
        th = specs[name].theorem()
        assert env.run(th, tactics).status is TacticStatus.PROVED, name
        checks[name] = env.check(th, tactics)
        assert checks[name].accepted, (name, checks[name].detail)
    assert checks["double_S"].detail == "Closed under the global context"
    assert "magic" in checks["M.by_magic"].detail and "double_S" in checks["uses_admitted"].detail
    out = write_proofs_file(path, tmp_path / "out" / "Sample.v", proofs, list(specs.values()))
    assert "Admitted." not in out.read_text().split("*)", 1)[1]
    done = subprocess.run(["coqc", "-q", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@coq
def test_library_axioms_need_the_config_and_a_wrong_proof_is_refused(tmp_path):
    text = ("Require Import Classical.\n"
            "Lemma em (P : Prop) : P \\/ ~ P.\nProof. Admitted.\n"
            "Lemma two : 1 + 1 = 2.\nAdmitted.\n")
    em, two = (s.theorem() for s in parse_vfile(text))
    strict = CoqEnv(CoqConfig(num_workers=1))
    check = strict.check(em, ["apply classic"])
    assert not check.accepted and "classic" in check.detail and "allowed_assumptions" in check.detail
    assert not strict.check(two, ["idtac"]).accepted  # an unfinished proof
    strict.close()
    lenient = CoqEnv(CoqConfig(num_workers=1, allowed_assumptions=("Classical_Prop.classic",)))
    assert lenient.check(em, ["apply classic"]).accepted
    lenient.close()


@coq
def test_a_broken_context_is_an_error_not_a_crash(env):
    (bad,) = parse_vfile("Require Import NoSuchLibrary.\nLemma x : True.\nAdmitted.\n")
    res = env.start(bad.theorem())
    assert res.status is TacticStatus.ERROR and "context or statement" in res.error and "NoSuchLibrary" in res.error
    assert not env.check(bad.theorem(), ["exact I"]).accepted
    # Coq's IDE protocol reports an error inside an already closed proof only as a message and
    # goes on; the worker still treats it as the context failing, as coqc would
    (wrong,) = parse_vfile("Lemma w : 2 = 2.\nProof. exact I. Qed.\nLemma x : True.\nAdmitted.\n")
    res = env.start(wrong.theorem())
    assert res.status is TacticStatus.ERROR and "context or statement" in res.error and "exact I" in res.error
    (ok,) = parse_vfile("Lemma x : True.\nAdmitted.\n")
    assert env.run(ok.theorem(), ["exact I"]).status is TacticStatus.PROVED  # the worker still serves


LTAC = """Require Import Lia.
Ltac crush := intros; lia.
Tactic Notation "finish" := crush.
Lemma by_crush : forall n : nat, n + 0 = n.
Admitted.
"""


def test_a_file_may_define_tactics_the_model_then_uses():
    (spec,) = parse_vfile(LTAC)
    assert spec.source.tactics == ("crush", "finish")


@coq
def test_file_tactics_pass_the_guard_only_for_that_files_lemmas(env):
    (spec,) = parse_vfile(LTAC)
    th = spec.theorem()
    assert env.run(th, ["crush"]).status is TacticStatus.PROVED
    assert env.run(th, ["finish"]).status is TacticStatus.PROVED
    assert env.check(th, ["crush"]).accepted
    (plain,) = parse_vfile("Require Import Lia.\nLemma p : forall n : nat, n + 0 = n.\nAdmitted.\n")
    res = env.run(plain.theorem(), ["crush"])
    assert res.status is TacticStatus.ERROR and "not a Coq tactic" in res.error
