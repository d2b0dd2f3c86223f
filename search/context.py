"""Everything one search of one problem needs, its meter, and the shared expand step.

The CLI builds a ``SearchContext`` per problem. It holds no gold answer: in solve mode
``oracle`` is None and nothing reachable from the context knows the answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence

from pydantic import BaseModel, ConfigDict, Field

from search.budget import Budget, Meter
from search.occupancy import Occupancy
from search.protocols import (
    ChatTurns,
    EngineFault,
    Generation,
    Policy,
    PonderError,
    Problem,
    RewardModel,
    Sampling,
    StepProposal,
    StepScores,
    Usage,
    Verdict,
)
from search.steps import StepFormat
from search.trace import SearchResult
from search.tree import Node, Tree


class SamplingDefaults(BaseModel):
    """Default sampling options; algorithms may override the temperature."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass in (0, 1].")
    seed: int | None = Field(
        None, description="Base seed; each request gets one derived from it and its prefix. None = unseeded."
    )


@dataclasses.dataclass(eq=False)
class SearchContext:
    """One problem's search: models, prompt, step format, budget, meter and tree.

    Attributes:
        policy: Proposes next steps from token-id prefixes.
        root_prefix: Chat-template token ids of the problem (the prompt).
        problem: The problem (no gold answer on it).
        steps: How steps are cut and when paths end.
        extract_fn: Final answer found in a solution text, or None (needs no gold).
        reward_model: Step scorer (PRM, self-eval, value model), or None.
        oracle: Verifier against the gold answer. LABEL MODE ONLY; None when solving.
        budget: Compute limits (``search.budget.Budget``; re-exported here).
        sampling: Default sampling options.
        reward_key: Name under which reward-model step scores are stored on nodes.
        pause_clock: Cumulative seconds the engine was unavailable (an outage being
            recovered); the search's wall clock stops meanwhile. None: never paused.
        chat: Builds follow-up conversation turns as token ids (the policy's tokenizer), for
            searches whose nodes are whole answers of a conversation (MC-NEST, MCTSr); None
            when the engine has no chat template to offer.
        occupancy: The engine's fill (sequences in flight against the server's target),
            read by searches with adaptive parallelism; default: the policy's own
            (``BoundedPolicy.occupancy``), None when the policy keeps none.
        meter: What the search spent against ``budget``: usage, wall clock, model wait
            (``search.budget.Meter``; not an argument). ``usage`` is its usage.
        tree: The search tree (created from ``root_prefix``; not an argument).
    """

    policy: Policy
    root_prefix: list[int]
    problem: Problem
    steps: StepFormat
    extract_fn: Callable[[str], str | None]
    reward_model: RewardModel | None = None
    oracle: Callable[[str], Awaitable[Verdict]] | None = None
    budget: Budget = dataclasses.field(default_factory=Budget)
    sampling: SamplingDefaults = dataclasses.field(default_factory=SamplingDefaults)
    reward_key: str = "prm"
    pause_clock: Callable[[], float] | None = None
    chat: ChatTurns | None = None
    occupancy: Occupancy | None = None
    meter: Meter = dataclasses.field(init=False)
    tree: Tree = dataclasses.field(init=False)
    bookkeeping_seconds: float = dataclasses.field(default=0.0, init=False)
    _requests: dict[int, int] = dataclasses.field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.tree = Tree(self.root_prefix)
        if self.occupancy is None:
            self.occupancy = getattr(self.policy, "occupancy", None)
        # The meter reads ``pause_clock`` through the context, which may set it later.
        self.meter = Meter(self.budget, lambda: self.pause_clock() if self.pause_clock else 0.0)

    @property
    def usage(self) -> Usage:
        """Compute spent so far (the meter's)."""
        return self.meter.usage

    @property
    def model_wait_seconds(self) -> float:
        """Summed latency of the search's model calls, seconds."""
        return self.meter.model_wait_seconds

    def start_clock(self) -> None:
        """Starts (or restarts) the search's wall clock."""
        self.meter.start_clock()

    def paused_seconds(self) -> float:
        """Seconds of engine outage since the clock started."""
        return self.meter.paused_seconds()

    def elapsed(self) -> float:
        """Seconds since the search started, engine outages excluded."""
        return self.meter.elapsed()

    def exhausted(self) -> bool:
        """Whether any budget limit is reached."""
        return self.meter.exhausted()

    @contextlib.contextmanager
    def bookkeeping(self) -> Iterator[None]:
        """Times a block of search code (no awaits inside) into ``bookkeeping_seconds``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.bookkeeping_seconds += time.perf_counter() - start

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        """Calls the policy and meters the call (at least one call is counted)."""
        start = time.perf_counter()
        self.meter.in_flight += 1
        try:
            generation = await self.policy.propose(prefix, sampling)
        finally:
            self.meter.in_flight -= 1
            self.meter.model_wait_seconds += time.perf_counter() - start
        self.meter.add(generation.usage)
        return generation

    async def score(self, paths: Sequence[Sequence[str]], first: Sequence[int] | None = None) -> StepScores:
        """Calls the reward model on step-text paths (steps ``first[i]:`` of path ``i``) and
        meters the call."""
        if self.reward_model is None:
            raise PonderError("no reward model configured")
        start = time.perf_counter()
        try:
            scores = await self.reward_model.score(self.problem, paths, first)
        finally:
            self.meter.model_wait_seconds += time.perf_counter() - start
        u = scores.usage
        self.usage.add(dataclasses.replace(u, reward_calls=max(u.reward_calls, 1), wall_seconds=0.0))
        return scores

    def step_sampling(
        self, node_id: int, prefix: Sequence[int], n: int, temperature: float | None = None
    ) -> Sampling:
        """Sampling for the next request from ``node_id`` (whose token path is ``prefix``).

        With a base seed, each request gets a seed derived from the base seed, the prefix
        and how many requests the node already made (expansions and rollouts), so repeated
        requests differ while whole runs repeat.
        """
        seed = self.sampling.seed
        count = self._requests.get(node_id, 0)
        self._requests[node_id] = count + 1
        if seed is not None:
            seed = hash((seed, count, *prefix)) & 0x7FFFFFFF
        temp = self.sampling.temperature if temperature is None else temperature
        return self.steps.sampling(n, temperature=temp, top_p=self.sampling.top_p, seed=seed)

    async def expand(
        self, node_id: int, n: int, *, temperature: float | None = None, dedupe: bool = False,
        max_tokens: int | None = None, logprobs: bool = True,
    ) -> list[int]:
        """Samples ``n`` next steps of ``node_id`` and appends them as children.

        The prompt is the node's path token ids (root prefix + step tokens, never
        re-tokenised text), so the server's prefix cache hits. Children get priors,
        terminal flags and, when terminal, the answer extracted from the path text.

        Args:
            node_id: Node to expand; must be neither terminal nor errored.
            n: Number of steps to sample (>= 1).
            temperature: Overrides the default temperature (0 = greedy).
            dedupe: Drop proposals whose text equals a sibling's.
            max_tokens: Overrides the step's token limit for this request (TreePO's
                block-aligned segments).
            logprobs: Ask for the sampled tokens' logprobs (priors, probability-driven
                policies); without them the server does less and the nodes' logprobs are empty.

        Returns:
            Ids of the new children; empty when the budget is exhausted, the call failed
            (the node's ``error`` is then set) or every proposal was a duplicate.
        """
        generation = await self._request(node_id, n, temperature, whole=False, max_tokens=max_tokens,
                                         logprobs=logprobs)
        if generation is None:
            return []
        with self.bookkeeping():
            tree = self.tree
            seen = {tree.nodes[c].text for c in tree.nodes[node_id].children} if dedupe else set()
            new = []
            for proposal in generation.proposals:
                if dedupe and proposal.text in seen:
                    continue
                seen.add(proposal.text)
                child = self._add_step(node_id, proposal)
                if child.error is None:
                    new.append(child.id)
            return new

    async def sample_solutions(self, node_id: int, n: int, *, temperature: float | None = None) -> list[int]:
        """Samples ``n`` whole continuations of ``node_id`` in one request and adds each as a
        chain of steps.

        For methods that do not branch inside a solution (cot, self-consistency, best-of-N):
        one request with ``n`` samples, no step stop (EOS or ``steps.solution_tokens`` ends
        them), cut into steps afterwards (``StepFormat.split``), so traces, step scores and
        labels still see steps while the engine pays one prefill and one round trip. No
        logprobs are asked for (the steps' logprob fields stay 0): the policy supplies the
        token offsets the split needs.

        Returns:
            The last node of each chain (terminal, errored, or unfinished at the token
            limit); empty when the budget is exhausted or the call failed (``error`` set).
        """
        generation = await self._request(node_id, n, temperature, whole=True)
        if generation is None:
            return []
        with self.bookkeeping():
            leaves = []
            room = max(self.steps.max_depth - self.tree.nodes[node_id].depth, 1)
            for solution in generation.proposals:
                parent = node_id
                pieces = [solution] if solution.finish_reason == "error" else self.steps.split(solution, room)
                for piece in pieces:
                    parent = self._add_step(parent, piece).id
                leaves.append(parent)
            return leaves

    async def _request(self, node_id: int, n: int, temperature: float | None, *, whole: bool,
                       max_tokens: int | None = None, logprobs: bool = True) -> Generation | None:
        """One policy request from ``node_id``: next steps, or whole solutions (``whole``).

        None when the budget is exhausted or the request failed at this node (a node-level
        failure: the node's ``error`` is set). An ``EngineFault`` propagates.
        """
        if self.exhausted():
            return None
        prefix = self.tree.path_token_ids(node_id)
        sampling = self.step_sampling(node_id, prefix, n, temperature)
        if max_tokens is not None:
            sampling = dataclasses.replace(sampling, max_tokens=max_tokens)
        if not logprobs:
            sampling = dataclasses.replace(sampling, logprobs=None)
        if whole:
            # No logprobs: they cost the server time and flat methods use no priors; the
            # policy derives the token offsets that split() needs from the token ids.
            sampling = dataclasses.replace(sampling, stop=(), max_tokens=self._solution_tokens(n), logprobs=None)
        return await self._guarded(node_id, prefix, sampling, reward=False, mark_error=True)

    async def _guarded(
        self, node_id: int, prefix: Sequence[int], sampling: Sampling, *, reward: bool, mark_error: bool
    ) -> Generation | None:
        """``propose`` with node-level failures caught (the node's ``error`` set when
        ``mark_error``; None returned); an ``EngineFault`` propagates."""
        try:
            generation = await self.propose(prefix, sampling)
        except EngineFault:
            raise  # the engine is gone: not this node's failure
        except PonderError as exc:
            if mark_error:
                self.tree.nodes[node_id].error = f"{type(exc).__name__}: {exc}"
            return None
        if reward:  # generated, so in the budget above; also listed as self-evaluation cost
            u = generation.usage
            self.usage.reward_tokens += u.prompt_tokens + u.generated_tokens
            self.usage.reward_calls += 1
        return generation

    async def converse(
        self,
        node_id: int,
        prompt: Sequence[int],
        n: int,
        *,
        max_tokens: int,
        temperature: float | None = None,
        stop: tuple[str, ...] = (),
        reward: bool = False,
        mark_error: bool = True,
    ) -> Generation | None:
        """One policy request from an arbitrary conversation ``prompt`` (token ids), on behalf
        of ``node_id``: a critique, a rewrite or a self-evaluation turn of a self-refine search.

        Seeded like every request of the node (``step_sampling``), no logprobs asked; with a
        token budget, ``max_tokens`` is capped at an even share of what is left of it. With
        ``reward``, the call is also counted as self-evaluation (``Usage.reward_tokens`` =
        prompt + generated tokens, ``reward_calls``); its generated tokens stay in
        ``generated_tokens`` and the token budget, since the policy generated them.

        Returns:
            The generation; None when the budget is exhausted or the request failed (the
            node's ``error`` is then set when ``mark_error``).
        """
        if self.exhausted():
            return None
        if self.budget.max_generated_tokens is not None:
            left = self.budget.max_generated_tokens - self.usage.generated_tokens
            max_tokens = min(max_tokens, max(-(-left // n), 1))
        sampling = self.step_sampling(node_id, prompt, n, temperature)
        sampling = dataclasses.replace(sampling, stop=stop, max_tokens=max_tokens, logprobs=None)
        return await self._guarded(node_id, prompt, sampling, reward=reward, mark_error=mark_error)

    def add_answer(self, parent_id: int, proposal: StepProposal, prompt_ids: Sequence[int]) -> Node:
        """Appends a whole-answer child of ``parent_id`` (0: a root answer): the reply
        ``proposal`` to the conversation ``prompt_ids``, its answer extracted from its text.
        An answer node is never terminal (a self-refine search refines it again)."""
        child = self.tree.add_child(parent_id, proposal, terminal=False, prompt_ids=prompt_ids)
        if proposal.finish_reason == "error":
            child.error = "the policy returned an errored proposal"
        else:
            child.answer = self.extract_fn(proposal.text)
        return child

    def _solution_tokens(self, n: int) -> int:
        """Per-sample token limit of a whole-solution request: ``steps.solution_tokens``, and
        with a token budget at most an even share of what is left of it (per-step sampling
        checks the budget between steps; one request has to ask for its share up front)."""
        limit = self.steps.solution_tokens
        if self.budget.max_generated_tokens is not None:
            left = self.budget.max_generated_tokens - self.usage.generated_tokens
            limit = min(limit, max(-(-left // n), 1))
        return limit

    def _add_step(self, parent_id: int, proposal: StepProposal) -> Node:
        """Appends one sampled step under ``parent_id``: terminal flag, answer, or error."""
        tree = self.tree
        failed = proposal.finish_reason == "error"
        depth = tree.nodes[parent_id].depth + 1
        child = tree.add_child(parent_id, proposal, terminal=not failed and self.steps.is_terminal(proposal, depth))
        if failed:
            child.error = "the policy returned an errored proposal"
        elif child.terminal:
            child.answer = self.extract_fn(tree.path_text(child.id))
        return child

    def answer_of(self, node_id: int) -> str | None:
        """The node's answer, or one extracted from its (possibly unfinished) path text."""
        node = self.tree.nodes[node_id]
        if node.answer is not None or node_id == 0:
            return node.answer
        return self.extract_fn(self.tree.path_text(node_id))

    def result(self, algorithm: str, node_id: int | None, *, answer: str | None = None, **extra: object) -> SearchResult:
        """The ``SearchResult`` choosing ``node_id`` (its answer unless ``answer`` is given)."""
        if answer is None and node_id is not None:
            answer = self.answer_of(node_id)
        info = {
            "num_nodes": len(self.tree),
            "budget_exhausted": self.exhausted(),
            "bookkeeping_seconds": self.bookkeeping_seconds,
            "model_wait_seconds": self.model_wait_seconds,
            "paused_seconds": self.paused_seconds(),
            **extra,
        }
        usage = dataclasses.replace(self.usage, wall_seconds=self.elapsed())
        path = self.tree.path(node_id) if node_id is not None else []
        return SearchResult(answer, path, self.tree, usage, algorithm, info)
