"""A small proof environment on the project's own dependencies: equations, rewritten by sympy.

A theorem is a polynomial identity ``L = R`` over one-letter variables. A state is a list of
goals, each ``hypotheses + L = R`` (printed like Coq's goals). Tactics act on the first goal:

- ``rewrite A = B``: ``A = B`` must be an identity (sympy: ``expand(A - B) == 0``), ``A`` a
  proper sub-expression of a side (not a whole side); every occurrence of ``A`` becomes ``B``.
- ``rewrite h`` / ``rewrite <- h``: the same with hypothesis ``h`` (left to right / back).
- ``ring_nf``: the left side expanded (sympy ``expand``), at most once per goal, so a factored
  right side needs ``assert`` + ``rewrite`` (that is what grades the theorems' difficulty).
- ``reflexivity``: closes the goal when both sides are the same expression.
- ``symmetry``: swaps the sides.
- ``assert (h : A = B)``: a new first goal ``A = B``; the goal after it gets hypothesis ``h``.

Model text never reaches ``eval``: it is tokenised against a whitelist (one-letter
variables, integers, ``+ - * ^ ( )``) and rebuilt before sympy parses it, and every step runs
in a :class:`verifiers.pool.WorkerPool` worker with a hard timeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from search.protocols import ProofCheck, ProofState, TacticResult, TacticStatus, Theorem
from verifiers.pool import PoolConfig, WorkerCrashed, WorkerPool, WorkerTimeout

PLACEHOLDER = "admit"
MAX_EXPR_CHARS = 200
MAX_POWER = 12
RING_MARK = "(ring_nf used)"
_TOKEN = re.compile(r"\s*(?:(\d+)|([a-z])|(\^|\*\*|[-+*()]))")
_HYP = re.compile(r"^([a-z][a-z0-9_]{0,15}) : (.+)$")


class RefusedExpression(ValueError):
    pass


def _clean(text: str) -> str:
    """The expression rebuilt from whitelisted tokens (refused otherwise)."""
    text = text.strip()
    if not text or len(text) > MAX_EXPR_CHARS:
        raise RefusedExpression(f"expression must have 1..{MAX_EXPR_CHARS} characters")
    out, pos, last = [], 0, None
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise RefusedExpression(f"unexpected character {text[pos:].strip()[:1]!r} in {text!r}")
        number, name, op = m.groups()
        if last == "^" and (number is None or int(number) > MAX_POWER):
            raise RefusedExpression(f"exponents must be integers <= {MAX_POWER}")
        token = number or name or ("^" if op in ("^", "**") else op)
        out.append(token)
        last, pos = token, m.end()
    return " ".join(out).replace("^", "**")


def _parse(text: str):
    import sympy
    from sympy.parsing.sympy_parser import implicit_multiplication, parse_expr, standard_transformations

    cleaned = _clean(text)
    names = {c: sympy.Symbol(c) for c in "abcdefghijklmnopqrstuvwxyz"}
    try:
        return parse_expr(cleaned, local_dict=names, global_dict={"Integer": sympy.Integer, "Symbol": sympy.Symbol},
                          transformations=(*standard_transformations, implicit_multiplication), evaluate=True)
    except Exception as err:  # noqa: BLE001 - a parse error is the message
        raise RefusedExpression(f"cannot parse {text!r}: {type(err).__name__}") from None


def _equation(text: str):
    if text.count("=") != 1:
        raise RefusedExpression(f"expected one '=' in {text!r}")
    left, right = text.split("=")
    return _parse(left), _parse(right)


def _show(expr) -> str:
    return str(expr).replace("**", "^")


def _goal_text(hyps: Sequence[str], left, right, ring_used: bool) -> str:
    lines = [*hyps, "============================", f"{_show(left)} = {_show(right)}"]
    return "\n".join([*lines, RING_MARK] if ring_used else lines)


def _split_goal(goal: str) -> tuple[list[str], str, bool]:
    lines = goal.split("\n")
    ring_used = lines[-1] == RING_MARK
    if ring_used:
        lines = lines[:-1]
    bar = lines.index("============================")
    return lines[:bar], lines[bar + 1], ring_used


def step(goals: tuple[str, ...], tactic: str) -> tuple[str, tuple[str, ...] | str]:
    """Runs ``tactic`` on ``goals`` (in a worker): ("ok", new goals) or ("error", message)."""
    import sympy

    try:
        hyps, equation, ring_used = _split_goal(goals[0])
        left, right = _equation(equation)
        rest = goals[1:]
        t = tactic.strip().rstrip(".").strip()
        if t == PLACEHOLDER:
            return "ok", rest
        if t == "reflexivity":
            if sympy.srepr(left) != sympy.srepr(right):
                return "error", "reflexivity: the sides differ"
            return "ok", rest
        if t == "symmetry":
            return "ok", (_goal_text(hyps, right, left, ring_used), *rest)
        if t == "ring_nf":
            if ring_used:
                return "error", "ring_nf: already used on this goal"
            return "ok", (_goal_text(hyps, sympy.expand(left), right, True), *rest)
        m = re.fullmatch(r"assert \(\s*([a-z][a-z0-9_]{0,15})\s*:\s*(.+)\)", t)
        if m:
            name, stmt = m.groups()
            if any(h.startswith(f"{name} :") for h in hyps):
                return "error", f"assert: {name} already exists"
            a, b = _equation(stmt)
            new = _goal_text(hyps, a, b, False)
            main = _goal_text([*hyps, f"{name} : {_show(a)} = {_show(b)}"], left, right, ring_used)
            return "ok", (new, main, *rest)
        m = re.fullmatch(r"rewrite (<- )?([a-z][a-z0-9_]{0,15})", t)
        if m and len(m.group(2)) > 0 and any(h.startswith(f"{m.group(2)} :") for h in hyps):
            hyp = next(h for h in hyps if h.startswith(f"{m.group(2)} :"))
            a, b = _equation(_HYP.match(hyp).group(2))
            if m.group(1):
                a, b = b, a
        elif t.startswith("rewrite "):
            a, b = _equation(t[len("rewrite "):])
            if sympy.expand(a - b) != 0:
                return "error", f"rewrite: {_show(a)} = {_show(b)} is not an identity"
            if a in (left, right):
                return "error", "rewrite: rewrite a proper part of a side, not a whole side"
        else:
            return "error", f"unknown tactic {t!r}"
        new_left, new_right = left.subs(a, b), right.subs(a, b)
        if (new_left, new_right) == (left, right):
            return "error", f"rewrite: {_show(a)} does not occur in the goal"
        return "ok", (_goal_text(hyps, new_left, new_right, ring_used), *rest)
    except RefusedExpression as err:
        return "error", str(err)


class RewriteConfig(BaseModel):
    """Settings of :class:`RewriteEnv`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_workers: int = Field(1, ge=1, le=16, description="sympy worker processes.")
    tactic_timeout_s: float = Field(5.0, gt=0, description="Per-tactic limit in seconds.")


class RewriteEnv:
    """The equational environment (see the module docstring)."""

    name = "rewrite"
    placeholder = PLACEHOLDER

    def __init__(self, config: RewriteConfig | None = None) -> None:
        self.config = config or RewriteConfig()
        self.pool = WorkerPool(PoolConfig(num_workers=self.config.num_workers, preload=("sympy",),
                                          start_method="forkserver"))
        self._theorems: dict[str, Theorem] = {}
        self.restarts = 0

    def close(self) -> None:
        self.pool.close()

    def _step(self, goals: tuple[str, ...], tactic: str, timeout_s: float | None) -> tuple[str, object]:
        try:
            return self.pool.run(step, goals, tactic, timeout=timeout_s or self.config.tactic_timeout_s)
        except (WorkerTimeout, WorkerCrashed) as err:
            self.restarts += 1
            return "error", f"timeout: {err}"

    def _run(self, theorem: Theorem, tactics: Sequence[str], allow_placeholder: bool = False) -> TacticResult:
        start = time.perf_counter()
        self._theorems[theorem.name] = theorem
        if not tactics_free(theorem.statement):
            return TacticResult(TacticStatus.ERROR, error=f"bad statement {theorem.statement!r}")
        goals: tuple[str, ...] = (f"============================\n{theorem.statement}",)
        for t in ("symmetry", "symmetry"):  # parses both sides and prints them as sympy does
            kind, value = self._step(goals, t, None)
            if kind == "error":
                return TacticResult(TacticStatus.ERROR, error=f"bad statement: {value}")
            goals = tuple(value)  # type: ignore[arg-type]
        for t in tactics:
            if t.strip().rstrip(".").strip() == PLACEHOLDER and not allow_placeholder:
                return TacticResult(TacticStatus.ERROR, error="refused: admit", seconds=time.perf_counter() - start)
            if not goals:
                return TacticResult(TacticStatus.ERROR, error="no goals left", seconds=time.perf_counter() - start)
            kind, value = self._step(goals, t, None)
            if kind == "error":
                return TacticResult(TacticStatus.ERROR, error=str(value), seconds=time.perf_counter() - start)
            goals = tuple(value)  # type: ignore[arg-type]
        state = ProofState(theorem.name, goals, tuple(t.strip().rstrip(".").strip() for t in tactics))
        return TacticResult(TacticStatus.PROVED if not goals else TacticStatus.OPEN, state,
                            seconds=time.perf_counter() - start)

    def start(self, theorem: Theorem) -> TacticResult:
        return self._run(theorem, ())

    def apply(self, state: ProofState, tactic: str, timeout_s: float | None = None) -> TacticResult:
        start = time.perf_counter()
        t = tactic.strip().rstrip(".").strip()
        if t == PLACEHOLDER:
            return TacticResult(TacticStatus.ERROR, error="refused: admit")
        kind, value = self._step(state.goals, t, timeout_s)
        if kind == "error":
            return TacticResult(TacticStatus.ERROR, error=str(value), seconds=time.perf_counter() - start)
        new = ProofState(state.theorem, tuple(value), (*state.tactics, t))  # type: ignore[arg-type]
        return TacticResult(TacticStatus.PROVED if new.proved else TacticStatus.OPEN, new,
                            seconds=time.perf_counter() - start)

    def run(self, theorem: Theorem, tactics: Sequence[str]) -> TacticResult:
        return self._run(theorem, tactics)

    def assert_tactic(self, name: str, statement: str) -> str:
        return f"assert ({name} : {statement})"

    def check_plan(self, theorem: Theorem, subgoals: Sequence[tuple[str, str]]) -> TacticResult:
        tactics = [t for name, stmt in subgoals for t in (self.assert_tactic(name, stmt), PLACEHOLDER)]
        return self._run(theorem, tactics, allow_placeholder=True)

    def check(self, theorem: Theorem, tactics: Sequence[str]) -> ProofCheck:
        result = self._run(theorem, tactics)
        if result.status is TacticStatus.PROVED:
            return ProofCheck(True, "all goals closed, no placeholder", result.seconds)
        return ProofCheck(False, result.error or f"{len(result.state.goals)} goals left", result.seconds)


def tactics_free(statement: str) -> bool:
    return statement.count("=") == 1 and len(statement) <= 2 * MAX_EXPR_CHARS
