"""Claims decided with sympy (stage 2 of :mod:`verifiers.steps`; runs in a worker only).

:func:`check_claim` (in a :class:`verifiers.pool.WorkerPool` worker, hard timeout): each
side is parsed by a recursive-descent parser straight into sympy objects (no ``eval``,
no ``sympify``, no ``parse_expr``); nesting depth, tokens, digits and powers are capped.

What a claim means:

- No variable: the relation is decided exactly (rationals; ``sqrt`` through sympy). An
  ``=`` whose one side is a lone decimal literal with k decimals allows rounding to k places
  (``10/3 = 3.33`` is true, ``10/3 = 3`` false); ``≈`` allows that or 0.5 % of the larger side.
- One variable, ``=``: an identity (``2(x + 3) = 2x + 6``) is true; otherwise it is an
  equation, checked against the latest earlier equation in the same variable (question,
  earlier steps, earlier in the step): true when both have the same solutions (``2x + 3 = 11``
  then ``x = 4``), false otherwise. The first equation in a variable is a premise: unchecked.
- Several variables, or an inequality with a variable: unchecked.
- Division by zero, powers past the caps, a parse failure, a timeout: unchecked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from verifiers.steps.reading import MAX_DEPTH, MAX_NUMBER_DIGITS, MAX_SIDE_TOKENS, Claim

MAX_POWER_DIGITS = 2000
"""Estimated digits of a numeric power (|exponent| * log10 |base|) past which a side is refused."""
MAX_SYMBOLIC_EXPONENT = 32
"""Largest integer exponent of an expression with a variable."""
MAX_PREMISES = 3
"""Earlier equations in the same variable a new one is checked against (latest usable first)."""


class Refused(ValueError):
    """A side the checker will not evaluate (past a cap, or not an expression)."""


class _Parser:
    """Recursive descent over whitelisted tokens, building sympy objects directly.

    expr := term (('+'|'-') term)* ; term := unary (('*'|'/') unary | implicit unary)* ;
    unary := ('+'|'-') unary | power ; power := postfix ('^' unary)? ; postfix := atom '%'* ;
    atom := number | variable | '(' expr ')' | 'sqrt' '(' expr ')'.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        import sympy

        self.sympy = sympy
        self.tokens = list(tokens)
        self.pos = 0
        self.depth = 0

    def parse(self) -> Any:
        if not self.tokens or len(self.tokens) > MAX_SIDE_TOKENS:
            raise Refused("side is empty or too long")
        value = self._expr()
        if self.pos != len(self.tokens):
            raise Refused(f"unexpected {self.tokens[self.pos]!r}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise Refused("unexpected end")
        self.pos += 1
        return token

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Refused(f"nested deeper than {MAX_DEPTH}")

    def _expr(self) -> Any:
        self._enter()
        value = self._term()
        while self._peek() in ("+", "-"):
            value = value + self._term() if self._take() == "+" else value - self._term()
        self.depth -= 1
        return value

    def _term(self) -> Any:
        value = self._unary()
        while True:
            token = self._peek()
            if token in ("*", "/"):
                self._take()
                right = self._unary()
                value = value * right if token == "*" else value / right
            elif token is not None and (token[0].isdigit() or token[0] == "." or token.isalpha() or token == "("):
                value = value * self._unary()  # written together: 2x, 3(4)
            else:
                return value

    def _unary(self) -> Any:
        token = self._peek()
        if token in ("+", "-"):
            self._enter()
            self._take()
            value = self._unary()
            self.depth -= 1
            return -value if token == "-" else value
        return self._power()

    def _power(self) -> Any:
        base = self._postfix()
        if self._peek() in ("^", "**"):
            self._take()
            self._enter()
            exponent = self._unary()
            self.depth -= 1
            return self._checked_power(base, exponent)
        return base

    def _checked_power(self, base: Any, exponent: Any) -> Any:
        sympy = self.sympy
        if not exponent.is_Rational:
            raise Refused("only rational exponents are read")
        if base.free_symbols:
            if not exponent.is_Integer or abs(int(exponent)) > MAX_SYMBOLIC_EXPONENT:
                raise Refused(f"exponents of variables must be integers <= {MAX_SYMBOLIC_EXPONENT}")
        elif base.is_number and not base.is_zero:
            magnitude = abs(sympy.N(base, 15))
            digits = abs(float(exponent)) * max(1.0, abs(float(sympy.log(magnitude, 10).evalf(15))))
            if digits > MAX_POWER_DIGITS or exponent.q > 12:
                raise Refused(f"power too large (about {digits:.0f} digits)")
        return sympy.Pow(base, exponent)

    def _postfix(self) -> Any:
        value = self._atom()
        while self._peek() == "%":
            self._take()
            value = value / 100
        return value

    def _atom(self) -> Any:
        sympy = self.sympy
        token = self._take()
        if token[0].isdigit() or token[0] == ".":
            if len(token.replace(".", "")) > MAX_NUMBER_DIGITS:
                raise Refused("number too long")
            return sympy.Rational(token)
        if token == "(":
            value = self._expr()
            if self._take() != ")":
                raise Refused("unbalanced parenthesis")
            return value
        if token == "sqrt":
            if self._take() != "(":
                raise Refused("sqrt needs parentheses")
            value = self._expr()
            if self._take() != ")":
                raise Refused("unbalanced parenthesis")
            return sympy.sqrt(value)
        if len(token) == 1 and token.isalpha() and token.islower():
            return sympy.Symbol(token)
        raise Refused(f"unexpected {token!r}")


def _decimals(side: Sequence[str]) -> int | None:
    """Decimal places of a side that is one number literal (``3.33`` -> 2, ``3`` -> 0), else None."""
    if len(side) != 1 or not (side[0][0].isdigit() or side[0][0] == "."):
        return None
    return len(side[0].split(".")[1]) if "." in side[0] else 0


def _numeric(lhs: Any, rhs: Any, claim: Claim) -> tuple[str, str]:
    import sympy

    diff = lhs - rhs
    if diff.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return "unchecked", "undefined (division by zero)"
    if not diff.is_Rational:
        diff = sympy.simplify(diff)
    value = diff if diff.is_Rational else sympy.N(diff, 50)
    if not value.is_real:
        return "unchecked", "not a real number"
    places = [d for d in (_decimals(claim.lhs), _decimals(claim.rhs)) if d is not None]
    rounding = max((sympy.Rational(1, 2) / 10**d for d in places if d > 0 or claim.rel == "≈"), default=0)
    if claim.rel == "=":
        holds = value == 0 or (rounding and abs(value) <= rounding)
        detail = f"{claim.text}: difference {value}" if not holds else "holds"
    elif claim.rel == "≈":
        scale = max(abs(sympy.N(lhs, 30)), abs(sympy.N(rhs, 30)))
        holds = abs(value) <= max(rounding, scale * sympy.Rational(5, 1000))
        detail = "holds" if holds else f"difference {sympy.N(value, 6)} past the tolerance"
    else:
        holds = {"!=": value != 0, "<": value < 0, ">": value > 0, "<=": value <= 0, ">=": value >= 0}[claim.rel]
        detail = "holds" if holds else f"{claim.text} fails"
    return ("true" if bool(holds) else "false"), detail


def _solutions(equation: Any, var: Any) -> set[Any] | None:
    """The finite solution set of ``equation = 0`` in ``var``, or None (identity, none found,
    not finite)."""
    import sympy

    if sympy.expand(equation) == 0:
        return None
    found = sympy.solve(equation, var, dict=False)
    return {sympy.nsimplify(s) for s in found} if isinstance(found, list) else None


def _same(a: set[Any], b: set[Any]) -> bool:
    import sympy

    return len(a) == len(b) and all(any(sympy.simplify(x - y) == 0 for y in b) for x in a)


def _equation(claim: Claim, premises: Sequence[Claim]) -> tuple[str, str]:
    import sympy

    (name,) = claim.variables
    var = sympy.Symbol(name)
    lhs, rhs = _Parser(claim.lhs).parse(), _Parser(claim.rhs).parse()
    if sympy.expand(lhs - rhs) == 0:
        return "true", "identity"
    new = _solutions(lhs - rhs, var)
    if new is None:
        return "unchecked", "no finite solution set"
    for premise in reversed(premises):
        try:
            before = _solutions(_Parser(premise.lhs).parse() - _Parser(premise.rhs).parse(), var)
        except Refused:
            continue
        if before is None:
            continue
        if _same(new, before):
            return "true", f"same solutions as {premise.text}"
        return "false", f"{name} in {sorted(map(str, new))}, but {premise.text} gives {sorted(map(str, before))}"
    return "unchecked", "a premise (no earlier equation in this variable)"


def check_claim(claim: Claim, premises: tuple[Claim, ...] = ()) -> tuple[str, str]:
    """Decides one claim (in a worker). Returns (status, detail), status one of ``true``,
    ``false``, ``unchecked`` (see the module docstring for what each relation means)."""
    try:
        names = claim.variables
        if len(names) > 1:
            return "unchecked", "several variables"
        if names:
            if claim.rel != "=":
                return "unchecked", "an inequality with a variable"
            return _equation(claim, premises)
        return _numeric(_Parser(claim.lhs).parse(), _Parser(claim.rhs).parse(), claim)
    except Refused as err:
        return "unchecked", f"not read: {err}"
    except (ArithmeticError, ValueError, TypeError, RecursionError, NotImplementedError, MemoryError) as err:
        return "unchecked", f"checker error: {type(err).__name__}"[:200]
