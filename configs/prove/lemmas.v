(* A user's Coq file for `ponder prove configs/prove/lemmas.v`: the lemmas that end in
   Admitted. are proved in this file's context (its Requires, definitions and the lemmas
   before them); runs/prove-lemmas/proved.v is this file with the proofs in place. *)
Require Import Arith.

Definition double (n : nat) : nat := n + n.

Lemma double_zero : double 0 = 0.
Proof.
Admitted.

Lemma double_two : double 2 = 4.
Proof.
Admitted.

Lemma add_zero_r (n : nat) : n + 0 = n.
Proof.
  induction n as [| n IH].
  - reflexivity.
  - simpl. rewrite IH. reflexivity.
Qed.

Lemma double_add_zero (n : nat) : double n + 0 = double n.
Proof.
Admitted.
