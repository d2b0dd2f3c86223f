"""The small contracts that cross package boundaries.

``search/`` owns these; ``models/`` and ``verifiers/`` implement them and import only this
module of ``search/``. Nothing here imports torch, vLLM, transformers or sympy, and no
vendor type (OpenAI, vLLM, torch) ever crosses these boundaries: convert at the edge.
"""

from __future__ import annotations

import contextvars
import dataclasses
import enum
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "eos", "length", "error"]
"""Why a step ended: a stop string (step delimiter), end of sequence, max tokens, a failure."""


class PonderError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(PonderError, ValueError):
    """An invalid setting. The message names the field and the offending value."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"invalid {field}={value!r}: {reason}")


class ModelServerError(PonderError):
    """A model endpoint failed. ``retryable`` says whether trying again may help.

    A non-retryable one that reaches a search (a 4xx such as a context overflow, a malformed
    reply) is a node-level failure. Retryable ones are the client's business: it retries,
    recovers the endpoint, or raises :class:`EngineFault`.
    """

    def __init__(self, endpoint: str, cause: str, *, retryable: bool, unreachable: bool = False) -> None:
        self.endpoint, self.cause, self.retryable = endpoint, cause, retryable
        self.unreachable = unreachable
        """The endpoint did not answer at all (connection refused or reset, server gone)."""
        kind = "transient" if retryable else "permanent"
        super().__init__(f"{endpoint}: {cause} ({kind})")


class EngineFault(PonderError):
    """The engine itself is gone: an endpoint that stayed unreachable (or kept failing) after
    ponder tried to recover it (restarted a server it owns, or waited for an external one).

    Unlike a node-level failure (one malformed reply, a context overflow: the node is marked
    errored and the search goes on), an engine fault is never folded into a search result:
    searches let it through, the run stops, and unfinished problems stay unfinished.
    """

    def __init__(self, endpoint: str, cause: str) -> None:
        self.endpoint, self.cause = endpoint, cause
        super().__init__(f"engine unavailable at {endpoint}: {cause}")


class Interrupted(PonderError):
    """A command was asked to stop (Ctrl-C / SIGINT or SIGTERM); finished work is saved."""

    def __init__(self, signal_name: str) -> None:
        self.signal_name = signal_name
        super().__init__(f"interrupted by {signal_name}; finished results are saved, re-run to resume")


@dataclasses.dataclass(frozen=True)
class Problem:
    """What a search receives. The gold answer is deliberately NOT a field."""

    id: str
    question: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Sampling options, with vLLM's names."""

    n: int = 1
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 128
    stop: tuple[str, ...] = ()
    include_stop_str_in_output: bool = True
    logprobs: int | None = 0
    """Number of top logprobs per token; 0 returns only the sampled token's logprob; None none."""
    seed: int | None = None


@dataclasses.dataclass
class Usage:
    """Compute spent. Tokens are counts; ``wall_seconds`` is elapsed time in seconds."""

    prompt_tokens: int = 0
    generated_tokens: int = 0
    cached_prompt_tokens: int = 0
    reward_tokens: int = 0
    calls: int = 0
    reward_calls: int = 0
    wall_seconds: float = 0.0

    def add(self, other: Usage) -> Usage:
        """Adds ``other`` into ``self`` in place and returns ``self``."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class StepProposal:
    """One sampled continuation (a candidate next step)."""

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    """Log-probability of each sampled token (same length as ``token_ids``; may be empty)."""
    finish_reason: FinishReason
    stop_reason: str | None = None
    """The stop string that ended the step, when ``finish_reason == "stop"``."""
    text_offsets: tuple[int, ...] = ()
    """Where each token's text starts in ``text`` (vLLM's ``text_offset``; same length as
    ``token_ids``); empty when unknown. Lets a whole solution be cut into steps afterwards."""

    @property
    def mean_logprob(self) -> float:
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else 0.0


@dataclasses.dataclass(frozen=True)
class Generation:
    """The result of one policy request: ``sampling.n`` proposals and what it cost."""

    proposals: tuple[StepProposal, ...]
    usage: Usage


@runtime_checkable
class Tokenizer(Protocol):
    """The policy checkpoint's tokenizer."""

    eos_token_id: int | None

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` with no special tokens added."""
        ...

    def decode(self, token_ids: Sequence[int]) -> str: ...

    def chat_prompt(self, user: str, system: str | None = None) -> list[int]:
        """Token ids of the chat template applied to one user turn, ready for the reply."""
        ...


@runtime_checkable
class ChatTurns(Protocol):
    """Builds a conversation as token ids, so that each turn extends the previous prompt and
    the server's prefix cache holds everything before the new turn (``models.tokenizer``)."""

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` with no special tokens added."""
        ...

    def chat_follow_up(self, user: str) -> list[int]:
        """Token ids that close the assistant reply written so far and open a new ``user``
        turn, ready for the next reply."""
        ...


@runtime_checkable
class Policy(Protocol):
    """Proposes next steps. A prefix is token ids: root prompt + steps so far."""

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation: ...


@dataclasses.dataclass(eq=False)
class Affinity:
    """The problem (tree) a model request belongs to, for engines that route by problem.

    The scheduler sets :data:`problem_affinity` in each problem's coroutine, so every request
    of its search and of its labelling (tasks started inside inherit it) carries the same
    object; a client with several replicas keeps the problem on one of them (its prefix
    cache). ``open`` turns False when the problem is recorded: the binding may be dropped.
    """

    key: str
    open: bool = True


problem_affinity: contextvars.ContextVar[Affinity | None] = contextvars.ContextVar("problem_affinity", default=None)
"""The running problem's :class:`Affinity` (None outside a problem: route per request)."""


@dataclasses.dataclass(frozen=True)
class StepScores:
    """Scores in [0, 1] for every step of every scored path, and what they cost."""

    scores: tuple[tuple[float, ...], ...]
    usage: Usage


@runtime_checkable
class RewardModel(Protocol):
    """Scores every step of many partial paths in one call (PRM, self-eval, value model)."""

    async def score(
        self, problem: Problem, paths: Sequence[Sequence[str]], first: Sequence[int] | None = None
    ) -> StepScores:
        """Returns, for each path (a list of step texts), one score in [0, 1] per step.

        ``first[i]`` (default 0) asks only for the steps of path ``i`` from that index on
        (the earlier ones are already scored): its row then holds ``len(path) - first[i]``
        scores. A judge that spends one request per step prefix saves the rest.
        """
        ...


def score_starts(paths: Sequence[Sequence[str]], first: Sequence[int] | None) -> list[int]:
    """Per path, the first step index :meth:`RewardModel.score` is asked for, checked."""
    if first is None:
        return [0] * len(paths)
    if len(first) != len(paths) or any(not 0 <= k <= len(p) for p, k in zip(paths, first)):
        raise ValueError(f"first={list(first)} does not fit paths of lengths {[len(p) for p in paths]}")
    return list(first)


StepStatus = Literal["checked_true", "checked_false", "unchecked"]
"""What a symbolic check found in one step: a false claim, only true claims, or nothing checkable."""

ClaimStatus = Literal["true", "false", "unchecked", "timeout"]


@dataclasses.dataclass(frozen=True)
class ClaimCheck:
    """One claim a step states (``3 + 4 = 7``, ``x = 4``), as read, and what checking it found."""

    text: str
    status: ClaimStatus
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class StepCheck:
    """The symbolic check of one step: its status and the claims behind it.

    ``status`` is ``checked_false`` when any claim is false, else ``checked_true`` when any
    claim is true, else ``unchecked`` (no claim, or none that could be decided in time).
    """

    status: StepStatus
    claims: tuple[ClaimCheck, ...] = ()


@runtime_checkable
class StepChecker(Protocol):
    """Checks the claims each step of a path states, in the context of the question and the
    earlier steps (an equation is checked against the one it was derived from). Needs no gold
    answer, so solve-mode searches and label generators may both use it."""

    async def check(self, problem: Problem, steps: Sequence[str]) -> tuple[StepCheck, ...]:
        """One :class:`StepCheck` per step of ``steps`` (one path), in order."""
        ...


class VerdictStatus(str, enum.Enum):
    CORRECT = "correct"
    INCORRECT = "incorrect"
    UNPARSEABLE = "unparseable"
    TIMEOUT = "timeout"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of checking one candidate answer. Never a bare bool."""

    status: VerdictStatus
    extracted: str | None = None
    """The answer found in the candidate text, if any."""
    detail: str = ""

    @property
    def correct(self) -> bool:
        return self.status is VerdictStatus.CORRECT

    @property
    def reward(self) -> float:
        """1.0 if correct else 0.0 (unparseable and timeout count as not correct)."""
        return 1.0 if self.correct else 0.0


@runtime_checkable
class Verifier(Protocol):
    """Checks a candidate (free model text) against a gold answer. Blocking, bounded in time."""

    def extract(self, text: str) -> str | None:
        """The final answer stated in ``text`` (no gold needed), or None."""
        ...

    def verify(self, gold: Any, candidate: str) -> Verdict: ...


# --- Proof environments (spec 04): a theorem -> states; a tactic -> new state | error | proved ---


@dataclasses.dataclass(frozen=True)
class Theorem:
    """A statement to prove. ``statement`` is in the environment's language (no proof here)."""

    name: str
    statement: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, eq=False)
class ProofState:
    """An open proof state. Equal (and hashed) by theorem and goals only, so identical states
    reached by different tactics merge (spec 04 §1); ``tactics`` is how this one was reached.

    Attributes:
        theorem: The theorem's name.
        goals: The open goals, pretty-printed; the first one with its hypotheses. Empty: proved.
        tactics: The script from the theorem's start to this state.
    """

    theorem: str
    goals: tuple[str, ...]
    tactics: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProofState) and (self.theorem, self.goals) == (other.theorem, other.goals)

    def __hash__(self) -> int:
        return hash((self.theorem, self.goals))

    @property
    def proved(self) -> bool:
        return not self.goals

    @property
    def text(self) -> str:
        """Every goal, numbered when there are several (the full pretty-printed state)."""
        if len(self.goals) == 1:
            return self.goals[0]
        return "\n\n".join(f"goal {i + 1}:\n{g}" for i, g in enumerate(self.goals))


class TacticStatus(str, enum.Enum):
    OPEN = "open"
    PROVED = "proved"
    ERROR = "error"


@dataclasses.dataclass(frozen=True)
class TacticResult:
    """What running a tactic (or a script) did: a new state, a proof, or an error message."""

    status: TacticStatus
    state: ProofState | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class ProofCheck:
    """The final full-proof check: the whole script replayed from scratch, no assumptions."""

    accepted: bool
    detail: str = ""
    seconds: float = 0.0


@runtime_checkable
class ProofEnv(Protocol):
    """A proof assistant. Blocking calls, each bounded by a per-tactic timeout in seconds.

    ``placeholder`` is the environment's own "assume it" tactic (Coq ``admit``): only
    :meth:`check_plan` uses it; a tactic the model writes that contains it is refused.
    """

    name: str
    placeholder: str

    def start(self, theorem: Theorem) -> TacticResult:
        """The initial state of ``theorem`` (an error when the statement does not parse)."""
        ...

    def apply(self, state: ProofState, tactic: str, timeout_s: float | None = None) -> TacticResult:
        """Runs one tactic on the first goal of ``state``."""
        ...

    def run(self, theorem: Theorem, tactics: Sequence[str]) -> TacticResult:
        """Replays ``tactics`` from the theorem's start; the first failing one is the error."""
        ...

    def assert_tactic(self, name: str, statement: str) -> str:
        """The tactic that states subgoal ``name : statement`` (Coq ``assert (name : statement).``)."""
        ...

    def check_plan(self, theorem: Theorem, subgoals: Sequence[tuple[str, str]]) -> TacticResult:
        """Asserts every subgoal, each closed by the placeholder: the main goal with them all as
        hypotheses, or the first subgoal that does not type-check."""
        ...

    def check(self, theorem: Theorem, tactics: Sequence[str]) -> ProofCheck:
        """Replays the whole proof in a fresh session and accepts it only when it closes the
        theorem without any assumption (no placeholder, axiom, or other smuggled hypothesis)."""
        ...
