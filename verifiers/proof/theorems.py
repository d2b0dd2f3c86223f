"""The theorem sets written for ponder's provers, each lemma with a reference proof.

``COQ``: natural-number arithmetic, booleans, lists and simple induction (the preamble of
:mod:`verifiers.proof.coq` loads Arith, Bool, List and Lia). ``REWRITE``: polynomial
identities for :mod:`verifiers.proof.rewrite`. ``grade`` is 1 (one or two obvious tactics),
2 (a case split, an induction, a library lemma) or 3 (induction with rewriting, or several
subgoals). The tests replay every reference proof through the environment's final check.
"""

from __future__ import annotations

import dataclasses

from search.protocols import Theorem


@dataclasses.dataclass(frozen=True)
class CoqSource:
    """Where a theorem comes from in a user's file, all :class:`~verifiers.proof.coq.CoqEnv`
    needs to open and check it there.

    Attributes:
        context: The trusted sentences before the declaration, loaded as they are.
        header: The declaration sentence verbatim (``Lemma foo (n : nat) : n + 0 = n.``).
        opener: The file's ``Proof ...`` sentence when it has one (``Proof using x.``), else ``Proof.``.
        closers: ``End X.`` for each section and module open at the declaration, innermost first.
        path: The name the final check prints it by, relative to the file (``M.foo``).
        allowed: Names (relative to the file, like ``path``) the file declares as assumptions:
            its axioms, parameters, hypotheses and lemmas left admitted before this one.
        file: The file it was read from ("" when read from text).
        span: (start, end) of the proof block in the file: just past the header to just past
            the sentence that ends the proof.
        indent: The blanks before the declaration on its line (the written proof's indentation).
        tactics: Tactic names the file defines before the lemma (``Ltac``, ``Tactic Notation``):
            a model's tactic may start with them (:func:`verifiers.proof.guard.normalize_tactic`).
    """

    context: tuple[str, ...]
    header: str
    opener: str = "Proof."
    closers: tuple[str, ...] = ()
    path: str = ""
    allowed: tuple[str, ...] = ()
    file: str = ""
    span: tuple[int, int] = (0, 0)
    indent: str = ""
    tactics: tuple[str, ...] = ()


SOURCE_KEY = "coq_source"
"""``Theorem.metadata`` key of a theorem's :class:`CoqSource` (absent: a built-in theorem)."""


@dataclasses.dataclass(frozen=True)
class TheoremSpec:
    """A theorem to prove. ``proof``: a reference proof (empty for a user's lemma);
    ``grade``: 1-3 for the built-in sets, 0 when unknown; ``source``: where a user's lemma
    comes from (:mod:`verifiers.proof.vfile`), None for the built-in sets."""

    name: str
    statement: str
    proof: tuple[str, ...]
    grade: int
    topic: str
    source: CoqSource | None = None

    def theorem(self) -> Theorem:
        meta: dict = {"grade": self.grade, "topic": self.topic}
        if self.source is not None:
            meta[SOURCE_KEY] = self.source
        return Theorem(self.name, self.statement, meta)


def _t(name: str, statement: str, proof: str, grade: int, topic: str) -> TheoremSpec:
    return TheoremSpec(name, statement, tuple(s.strip() for s in proof.split(" ;; ")), grade, topic)


COQ: tuple[TheoremSpec, ...] = (
    # grade 1: one or two tactics
    _t("pt_true", "True", "exact I", 1, "logic"),
    _t("pt_two_plus_two", "2 + 2 = 4", "reflexivity", 1, "nat"),
    _t("pt_zero_plus", "forall n : nat, 0 + n = n", "intros n ;; reflexivity", 1, "nat"),
    _t("pt_succ_plus", "forall n m : nat, S n + m = S (n + m)", "intros n m ;; reflexivity", 1, "nat"),
    _t("pt_mult_one_l", "forall n : nat, 1 * n = n", "intros n ;; simpl ;; apply Nat.add_0_r", 1, "nat"),
    _t("pt_andb_true_l", "forall b : bool, andb true b = b", "intros b ;; reflexivity", 1, "bool"),
    _t("pt_orb_false_l", "forall b : bool, orb false b = b", "intros b ;; reflexivity", 1, "bool"),
    _t("pt_negb_true", "negb true = false", "reflexivity", 1, "bool"),
    _t("pt_nil_app", "forall l : list nat, [] ++ l = l", "intros l ;; reflexivity", 1, "list"),
    _t("pt_cons_length", "forall (x : nat) (l : list nat), length (x :: l) = S (length l)",
       "intros x l ;; reflexivity", 1, "list"),
    _t("pt_and_intro", "forall P Q : Prop, P -> Q -> P /\\ Q", "intros P Q p q ;; split ;; exact p ;; exact q", 1, "logic"),
    _t("pt_or_left", "forall P Q : Prop, P -> P \\/ Q", "intros P Q p ;; left ;; exact p", 1, "logic"),
    _t("pt_impl_refl", "forall P : Prop, P -> P", "intros P p ;; exact p", 1, "logic"),
    _t("pt_eq_sym", "forall n m : nat, n = m -> m = n", "intros n m H ;; symmetry ;; exact H", 1, "nat"),
    _t("pt_lt_succ", "forall n : nat, n < S n", "intros n ;; lia", 1, "nat"),
    # grade 2: case analysis, library lemmas, one induction
    _t("pt_plus_zero_r", "forall n : nat, n + 0 = n", "intros n ;; induction n ;; reflexivity ;; simpl ;; rewrite IHn ;; reflexivity", 2, "induction"),
    _t("pt_negb_involutive", "forall b : bool, negb (negb b) = b", "intros b ;; destruct b ;; reflexivity ;; reflexivity", 2, "bool"),
    _t("pt_andb_comm", "forall a b : bool, andb a b = andb b a",
       "intros a b ;; destruct a ;; destruct b ;; reflexivity ;; reflexivity ;; destruct b ;; reflexivity ;; reflexivity", 2, "bool"),
    _t("pt_orb_true_r", "forall b : bool, orb b true = true", "intros b ;; destruct b ;; reflexivity ;; reflexivity", 2, "bool"),
    _t("pt_andb_false_r", "forall b : bool, andb b false = false", "intros b ;; destruct b ;; reflexivity ;; reflexivity", 2, "bool"),
    _t("pt_plus_comm", "forall n m : nat, n + m = m + n", "intros n m ;; apply Nat.add_comm", 2, "nat"),
    _t("pt_plus_assoc", "forall n m p : nat, n + (m + p) = n + m + p", "intros n m p ;; apply Nat.add_assoc", 2, "nat"),
    _t("pt_mult_comm", "forall n m : nat, n * m = m * n", "intros n m ;; apply Nat.mul_comm", 2, "nat"),
    _t("pt_le_plus", "forall n m : nat, n <= n + m", "intros n m ;; lia", 2, "nat"),
    _t("pt_double_lin", "forall n : nat, n + n = 2 * n", "intros n ;; lia", 2, "nat"),
    _t("pt_succ_inj", "forall n m : nat, S n = S m -> n = m", "intros n m H ;; injection H ;; intros E ;; exact E", 2, "nat"),
    _t("pt_app_nil_r", "forall l : list nat, l ++ [] = l", "intros l ;; apply app_nil_r", 2, "list"),
    _t("pt_app_length", "forall l1 l2 : list nat, length (l1 ++ l2) = length l1 + length l2",
       "intros l1 l2 ;; apply app_length", 2, "list"),
    _t("pt_rev_nil", "rev (@nil nat) = []", "reflexivity", 2, "list"),
    _t("pt_and_comm", "forall P Q : Prop, P /\\ Q -> Q /\\ P",
       "intros P Q H ;; destruct H as [p q] ;; split ;; exact q ;; exact p", 2, "logic"),
    _t("pt_or_comm", "forall P Q : Prop, P \\/ Q -> Q \\/ P",
       "intros P Q H ;; destruct H as [p | q] ;; right ;; exact p ;; left ;; exact q", 2, "logic"),
    _t("pt_eqb_refl", "forall n : nat, Nat.eqb n n = true", "intros n ;; apply Nat.eqb_refl", 2, "nat"),
    # grade 3: induction with rewriting, several steps
    _t("pt_plus_succ_r", "forall n m : nat, n + S m = S (n + m)",
       "intros n m ;; induction n ;; reflexivity ;; simpl ;; rewrite IHn ;; reflexivity", 3, "induction"),
    _t("pt_mult_zero_r", "forall n : nat, n * 0 = 0",
       "intros n ;; induction n ;; reflexivity ;; simpl ;; exact IHn", 3, "induction"),
    _t("pt_app_assoc", "forall l1 l2 l3 : list nat, (l1 ++ l2) ++ l3 = l1 ++ (l2 ++ l3)",
       "intros l1 l2 l3 ;; induction l1 ;; reflexivity ;; simpl ;; rewrite IHl1 ;; reflexivity", 3, "list"),
    _t("pt_map_length", "forall (f : nat -> nat) (l : list nat), length (map f l) = length l",
       "intros f l ;; induction l ;; reflexivity ;; simpl ;; rewrite IHl ;; reflexivity", 3, "list"),
    _t("pt_rev_length", "forall l : list nat, length (rev l) = length l",
       "intros l ;; induction l ;; reflexivity ;; simpl ;; rewrite app_length ;; simpl ;; rewrite IHl ;; lia", 3, "list"),
    _t("pt_double_even", "forall n : nat, Nat.even (n + n) = true",
       "intros n ;; induction n ;; reflexivity ;; rewrite Nat.add_succ_r ;; simpl ;; exact IHn", 3, "induction"),
    _t("pt_plus_comm_ind", "forall n m : nat, n + m = m + n",
       "intros n m ;; induction n ;; simpl ;; rewrite Nat.add_0_r ;; reflexivity ;; simpl ;; rewrite IHn ;; rewrite Nat.add_succ_r ;; reflexivity", 3, "induction"),
    _t("pt_sum_twice", "forall n m : nat, (n + m) + (n + m) = 2 * n + 2 * m", "intros n m ;; lia", 3, "nat"),
    _t("pt_map_app", "forall (f : nat -> nat) (l1 l2 : list nat), map f (l1 ++ l2) = map f l1 ++ map f l2",
       "intros f l1 l2 ;; induction l1 ;; reflexivity ;; simpl ;; rewrite IHl1 ;; reflexivity", 3, "list"),
    _t("pt_negb_andb", "forall a b : bool, negb (andb a b) = orb (negb a) (negb b)",
       "intros a b ;; destruct a ;; destruct b ;; reflexivity ;; reflexivity ;; destruct b ;; reflexivity ;; reflexivity", 3, "bool"),
    _t("pt_le_trans3", "forall a b c : nat, a <= b -> b <= c -> a <= c + 1", "intros a b c H1 H2 ;; lia", 3, "nat"),
    _t("pt_length_repeat", "forall n x : nat, length (repeat x n) = n",
       "intros n x ;; induction n ;; reflexivity ;; simpl ;; rewrite IHn ;; reflexivity", 3, "list"),
)

REWRITE: tuple[TheoremSpec, ...] = (
    # grade 1: the sides are already equal, or one rewrite / symmetry away
    _t("rw_refl", "a + b = b + a", "reflexivity", 1, "refl"),
    _t("rw_refl_mul", "a*b*c = c*b*a", "reflexivity", 1, "refl"),
    _t("rw_zero", "a + 0 = a", "reflexivity", 1, "refl"),
    _t("rw_sym", "a^2 + 2*a*b + b^2 = (a + b)^2", "symmetry ;; ring_nf ;; reflexivity", 1, "expand"),
    _t("rw_expand_sq", "(a + b)^2 = a^2 + 2*a*b + b^2", "ring_nf ;; reflexivity", 1, "expand"),
    _t("rw_expand_diff", "(a - b)*(a + b) = a^2 - b^2", "ring_nf ;; reflexivity", 1, "expand"),
    _t("rw_expand_cube", "(x + 1)^3 = x^3 + 3*x^2 + 3*x + 1", "ring_nf ;; reflexivity", 1, "expand"),
    _t("rw_distrib", "a*(b + c) = a*b + a*c", "ring_nf ;; reflexivity", 1, "expand"),
    _t("rw_sub_part", "(a + b)^2 + c = a^2 + 2*a*b + b^2 + c", "ring_nf ;; reflexivity", 1, "expand"),
    _t("rw_sym_expand", "x^2 - 1 = (x - 1)*(x + 1)", "symmetry ;; ring_nf ;; reflexivity", 1, "expand"),
    # grade 2: a rewrite of a part, or symmetry before expanding
    _t("rw_part", "(a + b)*(a - b) + b^2 = a^2", "rewrite (a + b)*(a - b) = a^2 - b^2 ;; reflexivity", 2, "rewrite"),
    _t("rw_part2", "(x + 1)^2 - 2*x = x^2 + 1", "rewrite (x + 1)^2 = x^2 + 2*x + 1 ;; reflexivity", 2, "rewrite"),
    _t("rw_factor_rhs", "a^2 + 2*a + 1 = (a + 1)^2", "symmetry ;; ring_nf ;; reflexivity", 2, "expand"),
    _t("rw_cube_rhs", "x^3 - y^3 = (x - y)*(x^2 + x*y + y^2)", "symmetry ;; ring_nf ;; reflexivity", 2, "expand"),
    _t("rw_mixed", "(a + b)^2 - (a - b)^2 = 4*a*b", "ring_nf ;; reflexivity", 2, "expand"),
    _t("rw_prod_sum", "(x + 2)*(x + 3) = x^2 + 5*x + 6", "ring_nf ;; reflexivity", 2, "expand"),
    _t("rw_sq_sum3", "(a + b + c)^2 = a^2 + b^2 + c^2 + 2*a*b + 2*a*c + 2*b*c", "ring_nf ;; reflexivity", 2, "expand"),
    _t("rw_fourth", "(x^2 + 1)*(x^2 - 1) = x^4 - 1", "ring_nf ;; reflexivity", 2, "expand"),
    _t("rw_part3", "(a + 1)^2 + (a - 1)^2 = 2*a^2 + 2",
       "rewrite (a + 1)^2 = a^2 + 2*a + 1 ;; ring_nf ;; reflexivity", 2, "rewrite"),
    _t("rw_shift", "(y - 1)^2 + 2*y = y^2 + 1", "ring_nf ;; reflexivity", 2, "expand"),
    # grade 3: both sides factored: a subgoal, then rewriting with it
    _t("rw_both_factored", "(a + b)^2 - 4*a*b = (a - b)^2",
       "assert (h : (a - b)^2 = a^2 - 2*a*b + b^2) ;; ring_nf ;; reflexivity ;; rewrite h ;; ring_nf ;; reflexivity", 3, "plan"),
    _t("rw_both_factored2", "(x + 1)*(x - 1) + 1 = x*x",
       "ring_nf ;; reflexivity", 3, "plan"),
    _t("rw_diff_squares2", "(a - b)*(a + b) + b^2 = a*a",
       "ring_nf ;; reflexivity", 3, "plan"),
    _t("rw_two_factored", "(x + 2)^2 - 4*(x + 1) = x^2",
       "ring_nf ;; reflexivity", 3, "plan"),
    _t("rw_plan_cube", "(a + b)^3 - 3*a*b*(a + b) = a^3 + b^3",
       "ring_nf ;; reflexivity", 3, "plan"),
    _t("rw_factored_rhs3", "a^2 - 2*a*b + b^2 + 2*a*b = (a - b)^2 + 2*a*b",
       "assert (h : (a - b)^2 = a^2 - 2*a*b + b^2) ;; ring_nf ;; reflexivity ;; rewrite h ;; reflexivity", 3, "plan"),
    _t("rw_factored_rhs4", "x^2 + 2*x + 1 + y = (x + 1)^2 + y",
       "assert (h : (x + 1)^2 = x^2 + 2*x + 1) ;; ring_nf ;; reflexivity ;; rewrite h ;; reflexivity", 3, "plan"),
    _t("rw_factored_both", "(a + 1)^2 - 1 = a*(a + 2)",
       "assert (h : a*(a + 2) = a^2 + 2*a) ;; ring_nf ;; reflexivity ;; rewrite h ;; ring_nf ;; reflexivity", 3, "plan"),
    _t("rw_nested", "((x + 1)^2 - 1)^2 = x^2*(x + 2)^2",
       "assert (h : x^2*(x + 2)^2 = x^4 + 4*x^3 + 4*x^2) ;; ring_nf ;; reflexivity ;; ring_nf ;; rewrite h ;; reflexivity",
       3, "plan"),
    _t("rw_sum_cubes", "a^3 + b^3 = (a + b)*(a^2 - a*b + b^2)", "symmetry ;; ring_nf ;; reflexivity", 3, "expand"),
)

SETS = {"coq": COQ, "rewrite": REWRITE}


def theorem_set(env_name: str) -> tuple[TheoremSpec, ...]:
    if env_name not in SETS:
        raise ValueError(f"invalid env={env_name!r}: expected one of {', '.join(SETS)}")
    return SETS[env_name]
