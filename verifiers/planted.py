"""Solutions with known first errors, for judging step judges (``ponder bench prm``).

From reasoning-gym problems, a correct multi-step solution is built from the task's own
structure, one operation per step, and a copy of it gets one step corrupted; every later
step follows from the error (it computes correctly from the wrong value), so the planted
step is the first error and the only one.

- ``chain_sum`` and ``basic_arithmetic``: the expression is parsed (numbers, ``+ - * /``,
  parentheses, unary minus) and evaluated one binary operation per step, in evaluation
  order: ``56 + -33 = 23``, then ``23 - 84 = -61``. The last step also states the answer.
  A unary minus is folded into its operand (no step of its own).
- ``simple_equations`` (linear, ``A*x + B = C``): ``Ax = C - B = D`` (move the constant),
  then ``x = D / A = x0`` (divide); equations with no constant or a coefficient of +-1 need one
  step and are skipped.
- ``gsm_symbolic``: the task's own worked solution, one line per step, where it fits (every
  ``=`` in a plain computation, see :func:`gsm_steps`); the corruption hits the first
  computation of its line, and later computations that use a changed result recompute.

Corruptions (each changes the value the step states; later steps recompute from it):

- ``wrong_arithmetic``: the step's result is off by a small non-zero amount;
- ``sign_error``: the operation's sign is flipped (``a + b`` computed as ``a - b``; a
  product / quotient negated; for an equation, the constant moved without changing its sign);
- ``dropped_term``: the step leaves its second operand out (``a + b = a``; the equation's
  constant, or its coefficient, dropped);
- ``copied_wrong_number``: an operand is copied with one digit changed and the step computes
  correctly from it. In an arithmetic chain this is consistent arithmetic from a wrong input:
  a checker of stated claims cannot see it; in an equation the derived equation no longer has
  the question's solution.

Split: a problem is held out iff ``sha256(task + "\\n" + question)``, read as an integer, mod
100 is below ``HELDOUT_PERCENT`` (50). The split depends on the question only -- never on a
seed -- so no seed, size or task order can move a held-out question into training data; a
trainer excludes held-out questions with :func:`is_heldout`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Literal

Corruption = Literal["wrong_arithmetic", "sign_error", "dropped_term", "copied_wrong_number"]
CORRUPTIONS: tuple[Corruption, ...] = ("wrong_arithmetic", "sign_error", "dropped_term", "copied_wrong_number")
TASKS = ("chain_sum", "basic_arithmetic", "simple_equations", "gsm_symbolic")
HELDOUT_PERCENT = 50
Split = Literal["heldout", "train"]


@dataclasses.dataclass(frozen=True)
class PlantedSolution:
    """One solution of one problem, correct or with one planted error.

    Attributes:
        id: ``task/seed/index/correct|<corruption>``.
        task: The reasoning-gym task.
        question: The problem statement.
        steps: The solution's steps, in order (no delimiters).
        first_error: Index of the planted erroneous step; None for a correct solution.
        corruption: What was planted; None for a correct solution.
        answer: The final answer the solution states.
        gold: The problem's gold answer.
    """

    id: str
    task: str
    question: str
    steps: tuple[str, ...]
    first_error: int | None
    corruption: Corruption | None
    answer: str
    gold: str

    @property
    def correct(self) -> bool:
        return self.first_error is None


def is_heldout(task: str, question: str, percent: int = HELDOUT_PERCENT) -> bool:
    """Whether a problem belongs to the held-out split (see the module docstring)."""
    digest = hashlib.sha256(f"{task}\n{question}".encode()).hexdigest()
    return int(digest, 16) % 100 < percent


def show(value: Fraction) -> str:
    """A number as a solution writes it: an integer, a finite decimal, else ``p/q``."""
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    twos = fives = 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    text = f"{abs(value) * 10**places // 1:0{places + 1}d}"
    sign = "-" if value < 0 else ""
    return f"{sign}{text[:-places]}.{text[-places:]}"


# --- arithmetic: expression -> one binary operation per step -----------------------------------

_ARITH_TOKEN = re.compile(r"\s*(\d+|[-+*/()])")


@dataclasses.dataclass
class _Op:
    """One binary operation; an operand is a number (from the question) or an earlier op's
    index. ``negate_*``: a unary minus folded into that operand."""

    op: str
    left: Fraction | int
    right: Fraction | int
    left_is_ref: bool
    right_is_ref: bool
    negate_left: bool = False
    negate_right: bool = False


class _ArithParser:
    """``expr := term (('+'|'-') term)* ; term := unary (('*'|'/') unary)* ;
    unary := '-' unary | number | '(' expr ')'`` -> a list of :class:`_Op` in evaluation order."""

    def __init__(self, text: str) -> None:
        self.tokens = [m.group(1) for m in _ARITH_TOKEN.finditer(text)]
        if "".join(self.tokens) != re.sub(r"\s+", "", text):
            raise ValueError(f"not an arithmetic expression: {text!r}")
        self.pos = 0
        self.ops: list[_Op] = []

    def parse(self) -> tuple[list[_Op], tuple[bool, Fraction | int, bool]]:
        result = self._expr()
        if self.pos != len(self.tokens):
            raise ValueError("trailing tokens")
        return self.ops, result

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise ValueError("unexpected end")
        self.pos += 1
        return token

    def _binary(self, op: str, a: tuple[bool, Fraction | int, bool], b: tuple[bool, Fraction | int, bool]):
        (a_ref, a_val, a_neg), (b_ref, b_val, b_neg) = a, b
        self.ops.append(_Op(op, a_val, b_val, a_ref, b_ref, a_neg, b_neg))
        return True, len(self.ops) - 1, False

    def _expr(self):
        value = self._term()
        while self._peek() in ("+", "-"):
            value = self._binary(self._take(), value, self._term())
        return value

    def _term(self):
        value = self._unary()
        while self._peek() in ("*", "/"):
            value = self._binary(self._take(), value, self._unary())
        return value

    def _unary(self):
        token = self._take()
        if token == "-":
            is_ref, val, neg = self._unary()
            if not is_ref:
                return False, -val, False
            return is_ref, val, not neg
        if token == "(":
            value = self._expr()
            if self._take() != ")":
                raise ValueError("unbalanced parenthesis")
            return value
        if token.isdigit():
            return False, Fraction(int(token)), False
        raise ValueError(f"unexpected {token!r}")


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise ZeroDivisionError
    return a / b


def _wrong_digit(value: Fraction, rng: random.Random) -> Fraction:
    """``value`` with one digit of its integer part changed (same number of digits)."""
    sign = -1 if value < 0 else 1
    digits = list(str(abs(value.numerator // value.denominator)))
    k = rng.randrange(len(digits))
    choices = [d for d in "0123456789" if d != digits[k] and not (k == 0 and d == "0" and len(digits) > 1)]
    digits[k] = rng.choice(choices)
    return sign * (Fraction(int("".join(digits))) + (abs(value) - abs(value.numerator // value.denominator)))


def _delta(rng: random.Random) -> int:
    return rng.choice([-1, 1]) * rng.randint(1, 10)


def arithmetic_steps(expression: str, corruption: Corruption | None = None, at: int = 0,
                     rng: random.Random | None = None) -> tuple[list[str], Fraction] | None:
    """The one-operation-per-step solution of ``expression`` (``corruption`` planted at step
    ``at``), and the answer it reaches; None when the corruption cannot change that step
    (e.g. dropping a zero) or a division is by zero."""
    ops, result = _ArithParser(expression).parse()
    if not ops or not result[0] or result[2]:
        return None  # a lone number, or a negated whole (its last step would state the opposite)
    rng = rng or random.Random(0)
    values: list[Fraction] = []
    steps: list[str] = []
    for k, op in enumerate(ops):
        left = values[op.left] if op.left_is_ref else Fraction(op.left)
        right = values[op.right] if op.right_is_ref else Fraction(op.right)
        left, right = (-left if op.negate_left else left), (-right if op.negate_right else right)
        try:
            value = _apply(op.op, left, right)
        except ZeroDivisionError:
            return None
        if corruption is not None and k == at:
            if corruption == "wrong_arithmetic":
                planted = value + _delta(rng)
            elif corruption == "sign_error":
                planted = _apply({"+": "-", "-": "+"}[op.op], left, right) if op.op in "+-" else -value
            elif corruption == "dropped_term":
                planted = left
            else:  # copied_wrong_number: one operand copied wrong, the step computed from it
                if rng.random() < 0.5:
                    left = _wrong_digit(left, rng)
                else:
                    right = _wrong_digit(right, rng)
                try:
                    planted = _apply(op.op, left, right)
                except ZeroDivisionError:
                    return None
            if planted == value:
                return None
            value = planted
        values.append(value)
        steps.append(f"{show(left)} {op.op} {show(right)} = {show(value)}")
    answer = values[-1]
    steps[-1] += f". The answer is {show(answer)}."
    return steps, answer


# --- simple equations: A*x + B = C ------------------------------------------------------------

_LINEAR_TERM = re.compile(r"\s*([+-]?)\s*(\d*)\s*(\*?)\s*([a-z]?)\s*")


def _linear(side: str, var: str) -> tuple[Fraction, Fraction]:
    """(coefficient of ``var``, constant) of a side made of ``k*var``, ``var`` and ``k`` terms."""
    coef, const = Fraction(0), Fraction(0)
    pos = 0
    side = side.strip()
    if not side:
        raise ValueError("empty side")
    while pos < len(side):
        m = _LINEAR_TERM.match(side, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"not a linear side: {side!r}")
        sign, number, star, name = m.groups()
        if not number and not name:
            raise ValueError(f"not a linear side: {side!r}")
        if name and name != var:
            raise ValueError(f"unknown variable {name!r}")
        if star and not (number and name):
            raise ValueError(f"not a linear side: {side!r}")
        value = Fraction(int(number) if number else 1) * (-1 if sign == "-" else 1)
        if name:
            coef += value
        else:
            const += value
        pos = m.end()
    return coef, const


def equation_steps(equation: str, var: str, corruption: Corruption | None = None, at: int = 0,
                   rng: random.Random | None = None) -> tuple[list[str], Fraction] | None:
    """The two-step solution of a linear equation (move the constant, divide), with
    ``corruption`` planted at step ``at`` (0 or 1); None for equations that one step solves (no
    constant, or a coefficient of +-1) or a corruption that changes nothing."""
    rng = rng or random.Random(0)
    left, right = equation.split("=")
    lc, lk = _linear(left, var)
    rc, rk = _linear(right, var)
    a, b, c = lc - rc, lk, rk - Fraction(0)  # a*x + b = c + (rc moved)  ->  a*x + b = rk
    if a in (0, 1, -1) or b == 0:
        return None  # one step would do (no constant to move, or nothing to divide by)
    # step 0: a*x = c - b = d
    op, shown_b = ("-", b) if b > 0 else ("+", -b)
    c_shown = c
    d = c - b
    if corruption is not None and at == 0:
        if corruption == "wrong_arithmetic":
            d += _delta(rng)
        elif corruption == "sign_error":
            op = "+" if op == "-" else "-"
            d = c + b
        elif corruption == "dropped_term":
            d = c
        else:
            if rng.random() < 0.5:
                shown_b = _wrong_digit(shown_b, rng)
            else:
                c_shown = _wrong_digit(c, rng)
            d = c_shown - shown_b if op == "-" else c_shown + shown_b
        if d == c - b:
            return None
    coefficient = show(a)
    if corruption == "dropped_term" and at == 0:
        first = f"{coefficient}{var} = {show(c)}"
    else:
        first = f"{coefficient}{var} = {show(c_shown)} {op} {show(shown_b)} = {show(d)}"
    # step 1: x = d / a = x0
    divisor, d_shown = a, d
    x0 = d / a
    if corruption is not None and at == 1:
        if corruption == "wrong_arithmetic":
            x0 += _delta(rng)
        elif corruption == "sign_error":
            x0 = -x0
        elif corruption == "dropped_term":
            x0 = d
        else:
            d_shown = _wrong_digit(d, rng)
            x0 = d_shown / a
        if x0 == d / a:
            return None
    if corruption == "dropped_term" and at == 1:
        second = f"{var} = {show(x0)}"
    else:
        second = f"{var} = {show(d_shown)} / {show(divisor)} = {show(x0)}"
    return [first, f"{second}. The answer is {show(x0)}."], x0


# --- gsm_symbolic: the task's own worked solution, where its computations are plain -------------

_GSM_NUM = r"(?<![\d.,])[$€£]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d,]\d)"
_GSM_OP = r"\s*(?:[-+*/×÷]|(?<=\s)x(?=\s))\s*"
_GSM_COMPUTATION = re.compile(rf"{_GSM_NUM}(?:{_GSM_OP}{_GSM_NUM})+\s*=\s*{_GSM_NUM}")
_GSM_NUMBER = re.compile(_GSM_NUM)


def _gsm_value(token: str) -> Fraction:
    return Fraction(token.lstrip("$€£").replace(",", ""))


def _gsm_render(token: str, value: Fraction) -> str:
    """``value`` written like ``token`` (its currency sign kept)."""
    sign = token[0] if token[0] in "$€£" else ""
    return f"{sign}{show(value)}" if value >= 0 else f"-{sign}{show(-value)}"


def _gsm_eval(operands: Sequence[Fraction], ops: Sequence[str]) -> Fraction:
    """``operands`` joined by ``ops``: ``*`` and ``/`` first, then ``+`` and ``-``, left to right."""
    terms: list[Fraction] = [operands[0]]
    signs: list[str] = []
    for o, v in zip(ops, operands[1:], strict=True):
        if o in "*/":
            terms[-1] = terms[-1] * v if o == "*" else terms[-1] / v
        else:
            signs.append(o)
            terms.append(v)
    value = terms[0]
    for o, v in zip(signs, terms[1:], strict=True):
        value = value + v if o == "+" else value - v
    return value


def gsm_steps(question: str, cot: str, corruption: Corruption | None = None, at: int = 0,
              rng: random.Random | None = None) -> tuple[list[str], Fraction] | None:
    """The worked solution of a gsm_symbolic problem, one line per step, with ``corruption``
    planted in the first computation of line ``at``; None where the task's text does not fit:
    a line with ``=`` but no plain computation (``a op b = c`` with numbers, ``$`` / ``€`` and
    ``+ - * / × ÷ x`` only), a computation that does not hold, an operand that is both a number
    of the question and an earlier result, or a corruption that changes nothing.

    An operand equal to an earlier computation's result (and not written in the question) is
    read as that result: after a corruption it takes the new value, and later lines recompute.
    """
    rng = rng or random.Random(0)
    lines = [ln.strip() for ln in cot.split("\n") if ln.strip() and not ln.strip().startswith("####")]
    given = {_gsm_value(m.group()) for m in _GSM_NUMBER.finditer(question)}
    changed: dict[Fraction, Fraction] = {}  # an earlier result -> the value it has now
    results: set[Fraction] = set()
    steps: list[str] = []
    final: Fraction | None = None
    applied = False
    for k, line in enumerate(lines):
        found = list(_GSM_COMPUTATION.finditer(line))
        if "=" in line and not found:
            return None
        out, pos = [], 0
        for j, m in enumerate(found):
            tokens = list(_GSM_NUMBER.finditer(m.group()))
            *operand_tokens, result_token = [t.group() for t in tokens]
            between = [m.group()[a.end():b.start()] for a, b in zip(tokens, tokens[1:-1])]
            ops = ["*" if o.strip() in ("×", "x") else "/" if o.strip() == "÷" else o.strip() for o in between]
            operands = []
            for tok in operand_tokens:
                v = _gsm_value(tok)
                if v in results and v in given:
                    return None  # which one is it? the text does not say
                operands.append(changed.get(v, v) if v in results else v)
            original = _gsm_value(result_token)
            try:
                if _gsm_eval([_gsm_value(t) for t in operand_tokens], ops) != original:
                    return None  # the worked solution's own arithmetic does not hold
                value = _gsm_eval(operands, ops)
                if corruption is not None and k == at and j == 0:
                    applied = True
                    correct_value = value
                    if corruption == "wrong_arithmetic":
                        value += _delta(rng)
                    elif corruption == "sign_error":  # written as before, computed with + and - swapped
                        if not any(o in "+-" for o in ops):
                            return None
                        i = max(i for i, o in enumerate(ops) if o in "+-")
                        value = _gsm_eval(operands, [*ops[:i], "+" if ops[i] == "-" else "-", *ops[i + 1:]])
                    elif corruption == "dropped_term":
                        value = _gsm_eval(operands[:-1], ops[:-1])
                    else:
                        i = rng.randrange(len(operands))
                        operands[i] = _wrong_digit(operands[i], rng)
                        value = _gsm_eval(operands, ops)
                    if value == correct_value:
                        return None
            except ZeroDivisionError:
                return None
            if value != original:
                changed[original] = value
            results.add(original)
            final = value
            rendered = m.group()
            pieces, last = [], 0
            for tok, new in zip(tokens, [*operands, value]):
                pieces.append(rendered[last:tok.start()] + _gsm_render(tok.group(), new))
                last = tok.end()
            out.append(line[pos:m.start()] + "".join(pieces) + rendered[last:])
            pos = m.end()
        steps.append("".join(out) + line[pos:])
    if final is None or (corruption is not None and not applied):
        return None
    steps[-1] = f"{steps[-1].rstrip()} The answer is {show(final)}."
    return steps, final


# --- reasoning-gym problems -> planted solutions ----------------------------------------------


def _solution(task: str, entry: dict, corruption: Corruption | None, at: int,
              rng: random.Random) -> tuple[list[str], Fraction] | None:
    meta = entry["metadata"]
    if task in ("chain_sum", "basic_arithmetic"):
        return arithmetic_steps(meta["expression"], corruption, at, rng)
    if task == "simple_equations":
        return equation_steps(meta["equation"], meta["variable"], corruption, at, rng)
    if task == "gsm_symbolic":
        return gsm_steps(entry["question"], meta["answer_cot"], corruption, at, rng)
    raise ValueError(f"no planted solutions for task {task!r}; choose from {', '.join(TASKS)}")


def planted_solutions(task: str, num_problems: int, *, seed: int = 0, split: Split = "heldout",
                      min_steps: int = 2, corruptions: Sequence[Corruption] = CORRUPTIONS,
                      max_scan: int = 20_000) -> list[PlantedSolution]:
    """For each of ``num_problems`` problems of ``split``: its correct solution and one with a
    planted error (corruption kinds in turn, the step chosen by ``seed``).

    Args:
        task: ``chain_sum``, ``basic_arithmetic``, ``simple_equations`` or ``gsm_symbolic``.
        num_problems: Problems wanted (each gives two solutions).
        seed: reasoning-gym dataset seed and the corruption choices' seed.
        split: ``heldout`` (benchmarks) or ``train`` (see :func:`is_heldout`).
        min_steps: Problems whose solution has fewer steps are skipped.
        corruptions: The kinds to plant, in turn.
        max_scan: reasoning-gym problems looked at, at most.

    Returns:
        ``2 * num_problems`` solutions (fewer when the scan runs out), correct first per pair.
    """
    import reasoning_gym

    if task not in TASKS:
        raise ValueError(f"no planted solutions for task {task!r}; choose from {', '.join(TASKS)}")
    if not corruptions:
        raise ValueError("corruptions: at least one kind is needed")
    dataset = reasoning_gym.create_dataset(task, size=max_scan, seed=seed)
    rng = random.Random(f"{task}/{seed}")
    out: list[PlantedSolution] = []
    kinds = iter(_cycle(corruptions))
    for index in range(max_scan):
        if len(out) >= 2 * num_problems:
            break
        entry = dataset[index]
        if is_heldout(task, entry["question"]) != (split == "heldout"):
            continue
        correct = _solution(task, entry, None, 0, rng)
        if correct is None or len(correct[0]) < min_steps:
            continue
        steps, answer = correct
        if show(answer) != str(entry["answer"]).strip():
            continue  # our reading of the task disagrees with its gold: leave the problem out
        kind = next(kinds)
        planted = None
        for _ in range(8):  # a corruption that changes nothing (dropping a 0) is drawn again
            at = rng.randrange(len(steps))
            planted = _solution(task, entry, kind, at, rng)
            if planted is not None:
                break
        if planted is None:
            continue
        base = f"{task}/{seed}/{index}"
        gold = str(entry["answer"])
        out.append(PlantedSolution(f"{base}/correct", task, entry["question"], tuple(steps), None, None,
                                   show(answer), gold))
        out.append(PlantedSolution(f"{base}/{kind}", task, entry["question"], tuple(planted[0]), at, kind,
                                   show(planted[1]), gold))
    return out


def _cycle(items: Sequence[Corruption]) -> Iterator[Corruption]:
    while True:
        yield from items
