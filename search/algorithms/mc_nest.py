"""MC-NEST and MCTSr (spec 01): Monte-Carlo self-refine trees whose nodes are whole answers.

The generic loop (``search.loop``) with a global pick instead of a descent:

- **pick** (``pick_fn``, §5): every answer node that is not fully expanded is a candidate
  (a scan of the whole tree, not a root-to-leaf walk); each gets a UCT (§5.2); the
  selection policy -- greedy, importance sampling or pairwise importance sampling, with the
  Nash-equilibrium prior (MC-NEST, §5.3-5.4) or without (MCTSr) -- picks one with the
  search's own seeded RNG, so a run replays exactly. No candidate: the first root.
- **expand** (§4, §6): the picked node gets a NEW reward sample (repeated sampling) while it
  is critiqued and then rewritten -- two follow-up turns of its conversation, sent as token
  ids so the server's prefix cache holds the conversation; exactly one child per rollout.
- **evaluate** (§3): the child's first reward sample. A sample is the policy's self-evaluation
  in [-100, 100] as a follow-up turn (a new sample every time, parse failures retried), then
  the high-score penalty; ``Q = (min + mean) / 2`` over the node's samples.
- **backup** (§7): ``Q(parent) = (Q(parent) + max child Q) / 2`` up to the root, visits counted.

Roots (§2): a zero-shot answer, the "I don't know." dummy, or MCTSr's two. The final answer
(§8) is the highest-Q node's, judged by the task's verifier after the search (any format). No
oracle: the search never sees the gold answer, never stops on it. Self-evaluation calls are
policy generations: in ``generated_tokens`` and the budget, and listed in ``reward_tokens``.

Traces: each node's ``info`` holds its role, the iteration it was made in, the critique that
made it, every reward sample (reply, raw and penalised score), its Q history and, per
selection it was a candidate in, its UCT, prior and selection probability. ``extra`` holds
the node selected per iteration and whether the dummy root was ever selected.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Literal

from pydantic import Field, model_validator

from search.algorithms.common import ConfigBase
from search.backup import refine_backup, set_quality
from search.context import SearchContext
from search.loop import LoopFns, run_simulations
from search.protocols import ConfigError, StepProposal
from search.refine import (
    CRITIQUE_REQUEST,
    DUMMY_ANSWERS,
    EVALUATE_REQUEST,
    REWRITE_REQUEST,
    SCORE_PREFIX,
    PenaltyRule,
    Turns,
    parse_score,
    penalise,
    q_value,
)
from search.selection import (
    ExpandedRule,
    RefinePolicy,
    fully_expanded,
    mc_nest_uct,
    mctsr_ucb,
    nash_prior,
    selection_probabilities,
)
from search.trace import SearchResult
from search.tree import Tree

PRESETS: dict[str, dict[str, Any]] = {
    "mc_nest": {},
    "mctsr": {"num_rollouts": 16, "roots": "both", "selection": "greedy", "nash": False, "expanded_rule": "and",
              "max_children": 3, "uct": "mctsr", "c": 1.4, "penalty": "reset", "blend_backup": False,
              "visits": "samples", "temperature": 0.95, "eval_temperature": 0.95},
}
"""MCTSr's code settings (spec 01 §2-§8) over MC-NEST's (the field defaults). Fields set
explicitly win."""


class MCNestConfig(ConfigBase):
    """MC-NEST (``algorithm: mc_nest``) or MCTSr (``algorithm: mctsr``, its code's settings
    filled in for every field left unset). Every point where the two codebases differ is a
    field; the defaults are MC-NEST's code unless a field says otherwise."""

    algorithm: Literal["mc_nest", "mctsr"] = Field("mc_nest", description="Discriminator; mctsr fills MCTSr's settings.")
    num_rollouts: int = Field(4, ge=1, description="Rollouts (MC-NEST README example 4; MCTSr code max_iter 16).")
    roots: Literal["zero_shot", "dummy", "both"] = Field(
        "zero_shot", description="zero_shot: one sampled answer (MC-NEST package README, the default: a small model "
        "needs an answer to refine); dummy: 'I don't know.' (MC-NEST GPT-4o experiment scripts); both: MCTSr's two "
        "parentless roots, the dummy picked at random.")
    selection: RefinePolicy = Field(
        "importance_sampling", description="greedy, importance_sampling (default: best in the MC-NEST abstract) or "
        "pairwise_importance_sampling; MCTSr: greedy (UCB argmax).")
    nash: bool = Field(True, description="Nash-equilibrium prior in the selection (MC-NEST); False: MCTSr / "
                       "MC-NEST's mctsr_original baseline.")
    nash_support: Literal["root_children", "candidates"] = Field(
        "root_children", description="Where the uniform NE prior is > 0: root_children (default, code-faithful: "
        "what MC-NEST's numbers come from) or every candidate (the paper's reading).")
    expanded_rule: ExpandedRule = Field(
        "or", description="Fully expanded: or (MC-NEST: >= max_children children OR a child with higher Q) or and "
        "(MCTSr: >= max_children AND a child with Q >= the node's).")
    max_children: int = Field(2, ge=1, description="Child limit of the fully-expanded rule (MC-NEST 2, MCTSr 3).")
    uct: Literal["mc_nest", "mctsr"] = Field(
        "mc_nest", description="mc_nest: Q + c sqrt(ln(N_p + 1)/(N + 1e-10)), roots 10000; mctsr: Qhat (Q blended "
        "with the best child's) + C sqrt(ln(N_p + 1)/(N + 1e-5)), roots N_p = 0.")
    c: float = Field(1.0, gt=0.0, description="Exploration constant (MC-NEST 1.0, MCTSr 1.4).")
    penalty: PenaltyRule = Field(
        "subtract", description="subtract (MC-NEST: > limit -> minus excess_penalty) or reset (MCTSr: >= limit -> "
        "reset_score).")
    reward_limit: float = Field(95.0, ge=-100.0, le=100.0, description="Penalty threshold (95 in both).")
    excess_penalty: float = Field(5.0, ge=0.0, description="MC-NEST's excess_reward_penalty.")
    reset_score: float = Field(50.0, ge=-100.0, le=100.0, description="MCTSr's replacement score.")
    blend_backup: bool = Field(True, description="Backup overwrites Q(parent) with (Q + max child Q)/2 (MC-NEST); "
                               "False: MCTSr's code, Q stays the samples' and the UCB blends instead.")
    visits: Literal["evaluations", "samples"] = Field(
        "evaluations", description="evaluations (MC-NEST: +1 per self-evaluation and per backup pass) or samples "
        "(MCTSr: N = number of reward samples).")
    history: Literal["answer", "conversation"] = Field(
        "answer", description="A new answer's own conversation: answer (default, both codes keep little history: "
        "question -> answer, short prompts) or conversation (the whole critique/rewrite chat it came from).")
    eval_attempts: int = Field(3, ge=1, description="Self-evaluation requests per sample until one parses (MC-NEST 3).")
    fallback_score: float = Field(0.0, ge=-100.0, le=100.0, description="Sample recorded when no reply parses.")
    temperature: float = Field(0.9, ge=0.0, description="Root, critique and rewrite temperature (MC-NEST 0.9, MCTSr 0.95).")
    eval_temperature: float = Field(0.9, ge=0.0, description="Self-evaluation temperature (samples must differ).")
    answer_tokens: int | None = Field(None, ge=1, description="Tokens per answer; None = steps.solution_tokens.")
    critique_tokens: int = Field(256, ge=1, description="Tokens per critique.")
    eval_tokens: int = Field(8, ge=1, description="Tokens per self-evaluation reply.")
    answer_by: Literal["q", "q_answered"] = Field(
        "q", description="q: the highest-Q node (MC-NEST, ties: first in BFS order); q_answered: the highest-Q node "
        "whose text states an answer (skips the dummy).")
    seed: int | None = Field(None, description="Selection RNG seed; None = the context's seed (else 0), with the problem id.")

    @model_validator(mode="before")
    @classmethod
    def _fill_preset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {**PRESETS.get(str(data.get("algorithm", "mc_nest")), {}), **data}
        return data

    @property
    def backs_up_values(self) -> bool:
        return True


class _Refine:
    """One self-refine search: roots, the loop's pieces, and its records."""

    def __init__(self, ctx: SearchContext, config: MCNestConfig) -> None:
        if ctx.chat is None:
            raise ConfigError("chat", None, f"{config.algorithm} needs the policy's chat turns (a chat tokenizer)")
        self.ctx, self.config, self.turns = ctx, config, Turns(ctx.chat)
        seed = config.seed if config.seed is not None else (ctx.sampling.seed or 0)
        self.rng = random.Random(f"{seed}:{ctx.problem.id}")
        self.roots: list[int] = []
        self.selected: list[int] = []
        self.iteration = 0
        self.unparsed = 0
        self.answer_tokens = config.answer_tokens or ctx.steps.solution_tokens

    # --- reward -------------------------------------------------------------------------
    async def evaluate(self, node_id: int) -> float:
        """Appends one new self-evaluation sample to ``node_id`` and returns its new Q."""
        ctx, cfg, node = self.ctx, self.config, self.ctx.tree.nodes[node_id]
        assert node.prompt_ids is not None
        prompt = self.turns.extend(node.prompt_ids, node.token_ids, EVALUATE_REQUEST, SCORE_PREFIX)
        raw, reply, attempts = None, None, 0
        while raw is None and attempts < cfg.eval_attempts:
            generation = await ctx.converse(node_id, prompt, 1, max_tokens=cfg.eval_tokens, stop=("\n",),
                                            temperature=cfg.eval_temperature, reward=True, mark_error=False)
            if generation is None:
                break
            attempts += 1
            reply = generation.proposals[0].text
            raw = parse_score(reply)
        if attempts == 0:
            return node.value  # budget exhausted or the request failed: no sample
        with ctx.bookkeeping():
            if raw is None:
                self.unparsed += 1
            score = cfg.fallback_score if raw is None else penalise(
                raw, cfg.penalty, cfg.reward_limit, cfg.excess_penalty, cfg.reset_score)
            samples = node.info.setdefault("reward_samples", [])
            samples.append({"raw": raw, "score": score, "reply": reply, "attempts": attempts,
                            "iteration": self.iteration})
            q = q_value([s["score"] for s in samples])
            node.visits = node.visits + 1 if cfg.visits == "evaluations" else len(samples)
            set_quality(node, q)
            node.info.setdefault("q_history", []).append(q)
            return q

    # --- expansion ----------------------------------------------------------------------
    async def refine(self, node_id: int) -> int | None:
        """Critique, then rewrite, ``node_id``'s answer; the rewrite becomes its one new child."""
        ctx, cfg, node = self.ctx, self.config, self.ctx.tree.nodes[node_id]
        assert node.prompt_ids is not None
        critique_prompt = self.turns.extend(node.prompt_ids, node.token_ids, CRITIQUE_REQUEST)
        critique = await ctx.converse(node_id, critique_prompt, 1, max_tokens=cfg.critique_tokens,
                                      temperature=cfg.temperature)
        if critique is None or critique.proposals[0].finish_reason == "error":
            return None
        said = critique.proposals[0]
        rewrite_prompt = self.turns.extend(critique_prompt, said.token_ids, REWRITE_REQUEST)
        rewrite = await ctx.converse(node_id, rewrite_prompt, 1, max_tokens=self.answer_tokens,
                                     temperature=cfg.temperature)
        if rewrite is None:
            return None
        with ctx.bookkeeping():
            conversation = ctx.root_prefix if cfg.history == "answer" else rewrite_prompt
            child = ctx.add_answer(node_id, rewrite.proposals[0], conversation)
            child.info.update(role="refine", iteration=self.iteration, critique=said.text,
                              critique_finish=said.finish_reason)
            return child.id

    async def expand(self, node_id: int) -> list[int]:
        """The picked node's new reward sample, concurrently with its critique -> rewrite."""
        _, child = await asyncio.gather(self.evaluate(node_id), self.refine(node_id))
        return [] if child is None else [child]

    async def evaluate_new(self, children: list[int]) -> list[float]:
        values = list(await asyncio.gather(*(self.evaluate(c) for c in children)))
        tree = self.ctx.tree
        for c in children:  # MCTSr's hints_reward_imp_bank: min(R_child) - min(R_parent)
            mine = [s["score"] for s in tree.nodes[c].info.get("reward_samples", [])]
            theirs = [s["score"] for s in tree.nodes[tree.nodes[c].parent or 0].info.get("reward_samples", [])]
            if mine and theirs:
                tree.nodes[c].info["reward_improvement"] = min(mine) - min(theirs)
        return values

    async def make_roots(self) -> None:
        ctx, cfg = self.ctx, self.config
        if cfg.roots in ("zero_shot", "both"):
            generation = await ctx.converse(0, ctx.root_prefix, 1, max_tokens=self.answer_tokens,
                                            temperature=cfg.temperature)
            if generation is not None:
                root = ctx.add_answer(0, generation.proposals[0], ctx.root_prefix)
                root.info.update(role="zero_shot", iteration=0)
                self.roots.append(root.id)
        if cfg.roots in ("dummy", "both"):
            text = DUMMY_ANSWERS[0] if cfg.roots == "dummy" else self.rng.choice(DUMMY_ANSWERS)
            ids = tuple(self.turns.encode(text))
            root = ctx.add_answer(0, StepProposal(text, ids, (), "stop"), ctx.root_prefix)
            root.info.update(role="dummy", iteration=0)
            self.roots.append(root.id)
        await asyncio.gather(*(self.evaluate(r) for r in self.roots))  # both scored once at creation

    # --- selection ----------------------------------------------------------------------
    def bfs(self) -> list[int]:
        """Every answer node, roots first, in breadth-first order."""
        tree, out = self.ctx.tree, list(self.roots)
        for i in out:
            out.extend(tree.nodes[i].children)
        return out

    def candidates(self, dead: set[int]) -> list[int]:
        tree, cfg = self.ctx.tree, self.config
        return [i for i in self.bfs() if i not in dead and tree.nodes[i].error is None and not fully_expanded(
            len(tree.nodes[i].children), [tree.nodes[c].value for c in tree.nodes[i].children],
            tree.nodes[i].value, cfg.expanded_rule, cfg.max_children)]

    def uct(self, node_id: int) -> float:
        tree = self.ctx.tree
        node = tree.nodes[node_id]
        parent = None if node.parent in (None, 0) else tree.nodes[node.parent]
        if self.config.uct == "mc_nest":
            return mc_nest_uct(node.value, node.visits, None if parent is None else parent.visits, self.config.c)
        q_hat = node.value
        if node.children:
            q_hat = 0.5 * (node.value + max(tree.nodes[c].value for c in node.children))
        return mctsr_ucb(q_hat, node.visits, 0 if parent is None else parent.visits, self.config.c)

    def pick(self, tree: Tree, dead: set[int]) -> list[int] | None:
        """The loop's pick: the candidate the selection policy draws (§5); records it all."""
        cfg = self.config
        self.iteration += 1
        cands = self.candidates(dead)
        if not cands:  # MC-NEST: no candidate -> the root
            cands = [r for r in self.roots if r not in dead and tree.nodes[r].error is None][:1]
            if not cands:
                return None
        ucts = [self.uct(i) for i in cands]
        support = [c for r in self.roots for c in tree.nodes[r].children] if cfg.nash_support == "root_children" else cands
        prior = nash_prior(cands, support) if cfg.nash else None
        probs = selection_probabilities(cfg.selection, ucts, prior)
        k = sample_index(self.rng, probs) if cfg.selection != "greedy" else probs.index(1.0)
        for j, i in enumerate(cands):
            tree.nodes[i].info.setdefault("selections", []).append({
                "iteration": self.iteration, "uct": ucts[j], "prior": None if prior is None else prior[j],
                "probability": probs[j], "visits": tree.nodes[i].visits, "q": tree.nodes[i].value,
                "selected": j == k})
        self.selected.append(cands[k])
        return tree.path(cands[k])

    def final(self) -> int | None:
        """The highest-Q node (ties: first in BFS order), among answered ones for q_answered."""
        tree, order = self.ctx.tree, self.bfs()
        if self.config.answer_by == "q_answered":
            order = [i for i in order if tree.nodes[i].answer is not None] or order
        best: int | None = None
        for i in order:
            if best is None or tree.nodes[i].value > tree.nodes[best].value:
                best = i
        return best


def sample_index(rng: random.Random, probs: list[float]) -> int:
    """An index drawn with probabilities ``probs`` (summing to 1) from one ``rng.random()``."""
    r, total = rng.random(), 0.0
    for i, p in enumerate(probs):
        total += p
        if r < total:
            return i
    return max(i for i, p in enumerate(probs) if p > 0)


async def mc_nest_search(ctx: SearchContext, config: MCNestConfig) -> SearchResult:
    """Runs MC-NEST / MCTSr on ``ctx``; ``extra["rollouts"]`` counts rollouts run."""
    run = _Refine(ctx, config)
    await run.make_roots()
    fns = LoopFns(select_fn=None, expand_fn=run.expand, evaluate_fn=run.evaluate_new,
                  backup_fn=refine_backup(blend=config.blend_backup, count_visits=config.visits == "evaluations"),
                  pick_fn=run.pick)
    rollouts = (await run_simulations(ctx, fns, config.num_rollouts)).started if run.roots else 0
    with ctx.bookkeeping():
        chosen = run.final()
        dummy = [r for r in run.roots if ctx.tree.nodes[r].info.get("role") == "dummy"]
    return ctx.result(config.algorithm, chosen, rollouts=rollouts, roots=run.roots, selected=run.selected,
                      dummy_selected=any(i in dummy for i in run.selected), unparsed_rewards=run.unparsed)
