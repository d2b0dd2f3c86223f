"""`ponder prove FILE.v` (issue 24 §4): a user's Coq file's Admitted lemmas proved in the file's
own context, recorded like `ponder run`, and the file written back with the proofs in place.
Real coqtop / coqc with a scripted tactic policy; skipped, with the reason, without Coq."""

from __future__ import annotations

import re
import subprocess
import types
from collections.abc import Sequence

import pytest
from ponder_fakes import CharTokenizer as Tok

from ponder.prove import load_prove_config, opened_env, prove_all, select_theorems
from search.protocols import Generation, PonderError, Sampling, StepProposal, Usage
from verifiers.proof.coq import coq_available

REASON = coq_available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"Coq tests skipped: {REASON}")

SOURCE = """(* a user's file: its context may hold definitions, axioms, proved lemmas *)
Require Import Arith.

Definition double (n : nat) : nat := n + n.
Axiom magic : forall n : nat, double n = 2 * n.

Lemma add_zero_r (n : nat) : n + 0 = n.
Proof.
  induction n as [| n IH]; simpl; [reflexivity | rewrite IH; reflexivity].
Qed.

Lemma double_two : double 2 = 4.
Proof.
Admitted.

Lemma double_add_zero (n : nat) : double n + 0 = double n.
Proof.
  (* left for the prover *)
Admitted.

Lemma double_is_twice (n : nat) : double n = 2 * n.
Proof.
Admitted.

Lemma not_provable : forall n : nat, n = n + 1.
Proof.
Admitted.
"""

TACTICS = {  # statement -> what the scripted model proposes, best first
    "double 2 = 4": ["reflexivity"],
    "forall (n : nat), double n + 0 = double n": ["intros n", "apply add_zero_r"],  # an earlier lemma of the file
    "forall (n : nat), double n = 2 * n": ["intros n", "apply magic"],  # the file's own axiom
    # the model's text may not end, admit or smuggle a proof, nor print a verdict
    "forall n : nat, n = n + 1": ["admit", "Admitted", "Qed", 'idtac "No more goals"', "Abort", "intros n"],
}


class FilePolicy:
    """Proposes the scripted tactics of the theorem named in the prompt."""

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        statement = re.search(r"Theorem: (.*)\n", Tok().decode(prefix)).group(1)
        tactics = TACTICS[statement][: sampling.n]
        props = tuple(StepProposal(t + ".", tuple(range(len(t))), (-0.1,) * len(t), "stop") for t in tactics)
        return Generation(props, Usage(generated_tokens=sum(len(t) for t in tactics), calls=1))


def _config(tmp_path, lemmas=None):
    path = tmp_path / "mine.v"
    path.write_text(SOURCE)
    options = {"run_dir": str(tmp_path / "run"), "theorems": lemmas, "max_calls": 4}
    cfg = load_prove_config(path, options)
    return cfg.model_copy(update={"search": cfg.search.model_copy(
        update={"prover": cfg.search.prover.model_copy(update={"expansion_width": 6, "max_expansions": 3})})})


async def test_a_files_admitted_lemmas_are_proved_in_its_context_and_written_back(tmp_path):
    cfg = _config(tmp_path)
    specs = select_theorems(cfg)
    assert [s.name for s in specs] == ["double_two", "double_add_zero", "double_is_twice", "not_provable"]
    engine = types.SimpleNamespace(policy=FilePolicy(), tokenizer=Tok())
    with opened_env(cfg) as env:
        run = await prove_all(cfg, engine, env, specs)
    status = {r["id"]: r["status"] for r in run.rows}
    assert status == {"double_two": "proved", "double_add_zero": "proved", "double_is_twice": "proved",
                      "not_provable": "unproved"}
    assert all(r["usage"]["wall_seconds"] > 0 for r in run.rows)
    written = run.proved_file.read_text()
    assert run.proved_file == tmp_path / "run" / "proved.v" and (tmp_path / "mine.v").read_text() == SOURCE
    assert "(apply add_zero_r)." in written and "(reflexivity)." in written and "(apply magic)." in written
    assert written.count("Admitted.") == 1 and written.count("Qed.") == 4  # only not_provable is left admitted
    assert written.startswith(SOURCE[:SOURCE.index("Lemma double_two")])  # the rest is kept byte for byte
    done = subprocess.run(["coqc", "-q", "proved.v"], cwd=tmp_path / "run", capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    again = await prove_all(cfg, engine, _NoEnv(), specs)  # resume: nothing left but the unproved one
    assert again.skipped == 4 and again.proved_file.read_text() == written


async def test_listed_lemmas_only_and_unknown_names_refused(tmp_path):
    cfg = _config(tmp_path, ["double_two"])
    assert [s.name for s in select_theorems(cfg)] == ["double_two"]
    with pytest.raises(PonderError, match="nope"):
        _config(tmp_path, ["nope"])


class _NoEnv:
    """An environment that must not be used (every theorem is already finished)."""

    name = "coq"

    def __getattr__(self, item):
        raise AssertionError(f"env.{item} used on a finished run")
def test_a_v_file_becomes_a_theorem_file_config(tmp_path):
    from ponder.prove import TheoremFile, load_prove_config

    path = tmp_path / "mine.v"
    path.write_text("Lemma a : True.\nProof.\nAdmitted.\n")
    cfg = load_prove_config(path, {"theorems": ["a"]})
    assert cfg.theorems == TheoremFile(file=str(path), lemmas=["a"]) and cfg.resolved_env == "coq"
    assert str(cfg.resolved_run_dir) == "runs/prove-mine"
    with pytest.raises(PonderError, match="env='rewrite'.*coq"):
        load_prove_config(path, {"env": "rewrite"})
    with pytest.raises(PonderError, match="file.*not found"):
        load_prove_config(tmp_path / "missing.v")


