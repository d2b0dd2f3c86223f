"""The tactic names a model's tactic may start with (:mod:`verifiers.proof.guard`).

Generated from Coq 8.16.1 itself, so every tactic of the standard library is here and no
vernacular command is: the first words of the productions of ``Print Grammar tactic`` and the
names of ``Print Ltac Signatures`` (lowercase ones), both after ``Require Import Arith Bool
List Lia Lra Psatz ZArith Setoid Morphisms Program.Tactics Classical FunctionalExtensionality
Ring Field Btauto Nsatz.``, plus the Ltac keywords that can begin an expression (``let fun
match lazymatch multimatch fail gfail exists fix cofix constr ltac uconstr open_constr type
eval context fresh numgoals guard``). A lemma from a user's file may also use the tactics its
file defines (``CoqSource.tactics``).
"""

TACTIC_NAMES = frozenset("""
abstract abstract_ring_morphism absurd absurd_hyp add_hypothesis add_morphism_tactic admit append1 apply
assert assert_fails assert_succeeds assumption auto auto_using autoapply autoinjection autoinjections
autorewrite autounfold autounfold_one bang bapply bool_cst boolify_even_odd btauto by_arg_tac case case_eq
casetype cbn cbv change change_no_check check_fv check_is_list class_apply classical_left classical_right
clear clear_dup clear_dups clear_except clearbody coerce_to_almost_field coerce_to_almost_ring
coerce_to_ring_ext cofix compare comparison compute compute_assertion congruence constr constr_eq
constr_eq_nounivs constr_eq_strict constructor context contradict contradiction cring cring_compute cring_gen
cring_simplify cring_simplify_aux cring_simplify_gen cut cutrewrite cycle debug decide decompose
default_add_morphism_tactic default_div_spec dependent deset destauto destr_bool destr_eq destruct
destruct_all destruct_all_rec_calls destruct_call destruct_call_as destruct_call_as_in destruct_call_in
destruct_calls destruct_conjs destruct_exists destruct_nondep destruct_one_ex destruct_one_pair destruct_pairs
destruct_proper destruct_rec_calls destruct_with_eqn dfs dintuition discriminate discriminates do do_nat
dtauto eapply eassert eassumption easy easy' eauto eauto_search_strategy eauto_search_strategy_name ecase
econstructor edestruct ediscriminate eelim eenough eexact eexists einduction einjection eintros eleft elim
elim_compare elimtype enough epose eq_rewrite_relation equalities_to_goal equality_to_goal
equiv_rewrite_relation eremember erewrite eright eset esimplify_eq esplit etransitivity eval evar exact
exact_no_check exactly_once exfalso exists extensionality extensionality_in_checker f_equal f_equiv fail
false_hyp field field_elements field_lemmas field_lookup field_simplify field_simplify_eq find_equiv
find_rewrite_relation finish_timing first firstorder firstorder_using fix fold fold_field_cond fresh fun
gen_add_push gen_mul_push gen_reflexivity gen_rewrite gen_ring_div gen_ring_pow gen_ring_sign gen_srewrite
gen_srewrite_sr gen_with_field generalize generalize_eqs generalize_eqs_vars get_Carrier get_CondLemma get_Eq
get_FEeval get_FFV get_FldCarrier get_FldEq get_FldPost get_FldPre get_Hyp_tac get_L1 get_L4 get_Meta
get_MonPol get_NormLemma get_Post get_Pre get_RingFV get_RingHypTac get_RingMeta get_SimplifyEqLemma
get_SimplifyLemma get_lpol get_term gfail gintuition give_up glob glob_constr_with_bindings guard has_evar
head_of_constr hget_evar hintbases hints_path hints_path_atom hloc hnf hresolve_core ident idtac in_clause
induction info_auto info_eauto info_trivial inject injection instantiate integer intro intros intuition
intuition_solver inv_gen_phi inv_gen_phiN inv_gen_phiNword inv_gen_phiZ inv_gen_phi_pos inv_morph_nothing
inversion inversion_clear inversion_sigma inversion_sigma_on inversion_sigma_on_as inversion_sigma_step
invlist ipattern isNcst isPcst isZcst isZpow_coef is_cofix is_const is_constructor is_evar is_fix is_ground
is_ind is_list_constr is_proj is_var isnatcst lapply lazy lazy_list_fold_right lazymatch lconstr left let
lglob lia list_fold_left list_fold_right list_iter list_iter_gen lookup_inversion_sigma_rect lra ltac
lterm_goal match mkFieldexpr mkHyp_tac mkPolexpr move multimatch natcst native_cast_no_check native_compute
natpostring natprering natural nia non_commutative_ring non_commutative_ring_simplify normalizes not_evar
notypeclasses now now_show nra nsatz nsatz_call nsatz_call_n nsatz_compute nsatz_default nsatz_generic
nsatz_internal_discrR numgoals occurrences on_application on_call on_last_hyp once only open_constr opthints
optimize_heap orient parametres_en_tete partial_application_tactic pattern pose program_simpl program_simplify
program_solve_wf progress progress_evars proofHyp_tac proper_normalization proper_reflexive proper_subrelation
protect_fv prove_field_eqn prove_rw prove_with_field psatz psatzl rapply rchange rchecker rchecker_abstract
rchecker_no_abstract rec red red_subst_eq_morphism reduce reduce_field_expr reduce_field_ope reduce_goal
reduce_hyp reference refine refine_hyp refl_st reflexive_proxy_tac reflexivity reify_goal relation_carrier
remember rename repeat replace replace_hyp reset restart_timer return_term rev reverse reverse_arrows revert
revert_last revert_until revgoals rewrite rewrite_all rewrite_db rewrite_relation_fun rewrite_strat
rewstrategy right ring ring_elements ring_gen ring_lemmas ring_lookup ring_of_field ring_simplify
ring_simplify_aux ring_simplify_gen set set_variables setoid_etransitivity setoid_reflexivity setoid_replace
setoid_rewrite setoid_symmetry setoid_transitivity setoidreplace setoidreplaceat setoidreplacein
setoidreplaceinat shelve shelve_unifiable show show_goal show_hyp show_hyps simpl simpl_PCond
simpl_PCond_BEURK simpl_list simpl_relation simple simplify_eq smart_global solve solve_constraints
solve_proper solve_relation solve_respectful specialize specialize_eqs split ssimpl_list start stepl stepr
stop strategy_level strategy_level_or_var string subrelation_tac subst subst_no_fail substitute swap sym_st
symmetry tail_simpl tauto test test_lpar_id_colon time time_constr timeout trans_st transitivity
transparent_abstract trivial try tryif type type_term typeclasses uconstr unconvertible unfold unify unshelve
vm_cast_no_check vm_compute with_strategy wlia wlra_Q wnia wnra_Q wpsatz_Q wpsatz_Z wsos_Q wsos_Z xlia xlra_Q
xlra_R xnia xnra_Q xnra_R xpsatz xpsatz_Q xpsatz_R xpsatz_Z xsos_Q xsos_R xsos_Z zchecker zero_or_not zify
""".split())
