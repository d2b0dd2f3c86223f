"""Finding the final answer in free model text.

Pure string work: regular expressions and brace counting, never ``eval``. Every function
looks at no more than the last :data:`MAX_SCAN_CHARS` characters of its input, so a
100k-character generation costs the same as a short one.

Rules, tried in order by :func:`extract_answer` (the first that finds something wins):

1. the last balanced ``\\boxed{...}`` (or ``\\fbox{...}``);
2. the last GSM8K marker ``#### X``;
3. the last "the answer is X" / "answer: X" (case-insensitive);
4. a bare answer: the whole text is one short line of math (``\\frac{1}{2}``, ``x + 1``):
   some digit, letter or command, but no run of two letters outside LaTeX commands;
5. the last number in the text (integers, decimals, ``1,000``-style, simple fractions ``3/4``).

:func:`extract_number` is the same search for questions whose answer is one number (most
reasoning-gym arithmetic tasks): each rule's find is reduced to the number it states
(:func:`stated_number`), so "the answer is indeed 2." gives ``2`` and a sentence is never
returned as the answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MAX_SCAN_CHARS = 4000
"""Characters (from the end of the text) that extraction looks at."""

MAX_ANSWER_CHARS = 300
"""Longest answer accepted from the "answer is" and bare-answer rules, in characters."""

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX_NOBRACE_RE = re.compile(r"\\boxed\s+([^\s${}]+)")
_GSM8K_RE = re.compile(r"####\s*([^\n]+)")
_PHRASE_RE = re.compile(  # "answer is", "answer:" (ASCII or full-width colon)
    r"(?:\banswer\s+is|\banswer\s*[:\uff1a])[ \t]*(?:[:=][ \t]*)?", re.IGNORECASE
)
_FILLER_RE = re.compile(  # words between "the answer is" and the answer that say nothing
    r"^(?:(?:indeed|simply|just|exactly|actually|clearly|therefore|thus|then|now|still|also|"
    r"obviously|definitely|certainly|precisely|so|hence|finally|approximately|about|roughly|"
    r"around|equal\s+to|equals)\b|[\u2248~])[\s,:]*",
    re.IGNORECASE,
)
_NUM = r"(?:\d{1,3}(?:,\d{3})+(?![\d])|\d+|(?=\.\d))(?:\.\d+)?(?:[eE][-+]?\d+)?"
_NUMBER_TOKEN_RE = re.compile(  # one number in running text: sign, 1,000 groups, decimals,
    # an exponent, a simple fraction; not part of a word or of a longer number
    rf"(?<![\w.])(?:(?<![\w)\]}}])[-+\u2212])?{_NUM}(?:/{_NUM})?(?![\d]|\.\d)"
)
_NUMBER_ONLY_RE = re.compile(rf"[-+\u2212]?{_NUM}(?:[ \t]*/[ \t]*{_NUM})?")  # a whole phrase
_OPERATION_AFTER_RE = re.compile(  # an operator and an operand: the number starts an expression
    r"[ \t]*[)\]]*[ \t]*(?:[-+*/^\u2212\u00d7\u00f7\u22c5=]|\\(?:times|div|cdot)\b|"
    r"(?:plus|minus|times|divided\s+by|multiplied\s+by|over)\b)[ \t]*\$?[ \t]*[-(\d\\]",
    re.IGNORECASE,
)
_LIST_AFTER_RE = re.compile(r"[ \t]*(?:,|and|or)[ \t]*[-+\u2212]?\d")  # "1, 2": no one number
_SIDE_SPLIT_RE = re.compile(
    r"=|\u2192|\b(?:equals|is|are|gives(?:\s+(?:us|you|me))?|makes|yields|results?\s+in)\b",
    re.IGNORECASE)
_RESULT_RE = re.compile(  # "= N", "equals N": a result, for texts that name no answer
    r"(?:=|\bequals\b|\bis[ \t]+equal[ \t]+to\b)[ \t]*\$?[ \t]*"
    r"((?:(?<![\w)\]}])[-+\u2212])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?)(?![\d]|\.\d)")
_NAMED_ANSWER_RE = re.compile(  # "N, which is the final answer", "N is the answer"
    rf"(?<![\w.])((?:(?<![\w)\]}}])[-\u2212])?{_NUM})\**,?[ \t]+(?:which[ \t]+)?is[ \t]+"
    r"(?:the|our)[ \t]+(?:final[ \t]+)?answer\b", re.IGNORECASE)
_LOOSE_PHRASE_RE = re.compile(  # "the answer to the given problem is X", "a final answer of X"
    r"\banswer\b[^\n.=:]{0,60}?\b(?:is|was|would\s+be|will\s+be|equals|of)\b[ \t]*([^\n]{1,120})",
    re.IGNORECASE)
_RESULT_PHRASE_RE = re.compile(  # "the final result is N" (weaker than "the answer is")
    r"\b(?:final[ \t]+(?:result|number|value|sum|total)|result)[ \t]+(?:is|=|:)[ \t]*([^\n]{1,80})",
    re.IGNORECASE)
_LIST_MARKER_RE = re.compile(r"^(?:\d{1,2}[.)]|[-*\u2022]|step\s+\d+[.:)]?)\s+(?=\S)",
                             re.IGNORECASE)
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}")
_TEXT_CMD_RE = re.compile(r"\\(?:text|mathrm|textbf|mathbf)\s*\{([^{}]*)\}")
_NEGATIVE_RE = re.compile(r"^(?:negative|minus)\s+(?=\d)", re.IGNORECASE)
_LATEX_CMD_RE = re.compile(r"\\[A-Za-z]+")
_WORD_RE = re.compile(r"[A-Za-z]{2,}")
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)")


def _tail(text: str) -> str:
    return text[-MAX_SCAN_CHARS:]


def _brace_pairs(text: str) -> dict[int, int]:
    """Maps the index of each unescaped ``{`` in ``text`` to its matching ``}`` (one pass)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for i, ch in enumerate(text):
        if ch in "{}" and text[i - 1 : i] == "\\":
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def _clean(answer: str) -> str | None:
    """Strips whitespace, ``$`` delimiters, bold markers and a trailing full stop."""
    answer = answer.strip()
    for _ in range(3):
        before = answer
        answer = answer.strip().strip("*").strip()
        if answer.startswith("\\(") and answer.endswith("\\)"):
            answer = answer[2:-2]
        if answer.startswith("\\[") and answer.endswith("\\]"):
            answer = answer[2:-2]
        answer = answer.strip("$").strip()
        if answer.endswith(".") and not answer.endswith(".."):
            answer = answer[:-1]
        if answer == before:
            break
    return answer or None


def extract_boxed(text: str) -> str | None:
    """The contents of the last complete ``\\boxed{...}`` in ``text``, or None."""
    tail = _tail(text)
    starts = [m.end() - 1 for m in _BOX_RE.finditer(tail)]
    pairs = _brace_pairs(tail) if starts else {}
    for open_at in reversed(starts):
        if open_at in pairs:
            return _clean(tail[open_at + 1 : pairs[open_at]])
    bare = _BOX_NOBRACE_RE.findall(tail)
    return _clean(bare[-1]) if bare else None


def extract_gsm8k(text: str) -> str | None:
    """The answer after the last ``####`` marker (GSM8K convention), or None."""
    found = _GSM8K_RE.findall(_tail(text))
    return _clean(found[-1]) if found else None


def extract_answer_phrase(text: str) -> str | None:
    """X from the last "the answer is X" or "answer: X", cut at the end of its sentence."""
    return next(answer_phrases(text), None)


def answer_phrases(text: str) -> Iterator[str | None]:
    """X of each "the answer is X" / "answer: X" in ``text``, the last first, each cut at the
    end of its sentence, delimiters and leading words such as "indeed" removed (None where
    nothing follows on the line)."""
    tail = _tail(text)
    for found in reversed(list(_PHRASE_RE.finditer(tail))):
        yield _phrase_at(tail, found.end())


def _phrase_at(tail: str, start: int) -> str | None:
    answer = tail[start : start + MAX_ANSWER_CHARS].split("\n", 1)[0]
    end = _SENTENCE_END_RE.search(answer)
    if end:
        answer = answer[: end.start()]
    answer = _clean(answer) or ""
    stripped = _strip_filler(answer)
    return _clean(stripped) if stripped else (answer or None)


def _strip_filler(text: str) -> str:
    """``text`` without leading words that say nothing about the answer ("indeed", "simply")."""
    for _ in range(4):
        found = _FILLER_RE.match(text)
        if not found or not found.end():
            break
        text = text[found.end():]
    return text.strip()


def extract_bare(text: str) -> str | None:
    """``text`` itself when it is one short line of math rather than prose, else None."""
    stripped = text.strip()
    if not stripped or "\n" in stripped or len(stripped) > MAX_ANSWER_CHARS:
        return None
    if _WORD_RE.search(_LATEX_CMD_RE.sub(" ", stripped)):
        return None
    if not re.search(r"[0-9A-Za-z\\]", stripped):
        return None
    return _clean(result_side(stripped))


def result_side(line: str) -> str:
    """For a one-line equation such as ``1 + 5 = 6``, the side after the last ``=``; else ``line``."""
    head, sep, tail = line.rpartition("=")
    return tail.strip() if sep and head.strip() and tail.strip() else line


def extract_last_number(text: str) -> str | None:
    """The last number in ``text`` (thousands commas removed), or None."""
    found = _NUMBER_TOKEN_RE.findall(_tail(text))
    return _canonical_number(found[-1]) if found else None


def _canonical_number(token: str) -> str:
    """A number token with spacing, a leading ``+``, a Unicode minus and 1,000 commas removed."""
    number = re.sub(r"\s+", "", token).replace("\u2212", "-").lstrip("+")
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?:[eE][-+]?\d+)?", number):
        number = number.replace(",", "")
    return number


def _leading_number(segment: str) -> str | None:
    """The number ``segment`` starts with (after words such as "indeed" and delimiters), unless
    an operator and an operand follow it (then it starts an expression, not an answer)."""
    segment = _strip_filler(segment.strip().lstrip("$*(\"'`[{ \t").strip())
    sign = ""
    negative = _NEGATIVE_RE.match(segment)
    if negative:
        sign, segment = "-", segment[negative.end():]
    found = _NUMBER_TOKEN_RE.match(segment)
    if (not found or _OPERATION_AFTER_RE.match(segment, found.end())
            or _LIST_AFTER_RE.match(segment, found.end())):
        return None
    number = _canonical_number(found.group())
    return f"-{number}" if sign and not number.startswith("-") else number


def stated_number(answer: str, *, phrase: bool = True) -> str | None:
    """The one number an answer phrase states, or None when it states none (or several).

    In order: the phrase is a number (``$-4$``, ``**1,000**``, ``\\frac{3}{4}``); it starts
    with one not followed by an operator or a list (``indeed 2, as 4 - 2 = 2`` -> ``2``,
    ``7 apples`` -> ``7``); the last side of an equation or "is" / "gives" clause that starts
    or ends with its only one (``5 + 4 = 9`` -> ``9``, ``the sum of 3 and 4 is 7`` -> ``7``,
    ``which gives a remainder of 3`` -> ``3``); with ``phrase`` (the text followed "the answer
    is"), the only number in it. ``3 + 4`` and ``the sum of 3 and 4`` state none. Commas of
    1,000 groups, a leading ``+`` and Unicode minus signs are normalised.
    """
    text = _TEXT_CMD_RE.sub(r"\1", _FRAC_RE.sub(r"\1/\2", answer))
    text = re.sub(r"\\[,;:! ]", "", text)
    cleaned = _clean(text)
    if cleaned is None:
        return None
    if cleaned.startswith("(") and cleaned.endswith(")"):
        cleaned = cleaned[1:-1].strip()
    if _NUMBER_ONLY_RE.fullmatch(cleaned):
        return _canonical_number(cleaned)
    leading = _leading_number(cleaned)
    if leading is not None:
        return leading
    for side in reversed(_SIDE_SPLIT_RE.split(cleaned)[1:]):
        found = _leading_number(side) or _only_number(side, at_end=True)
        if found is not None:
            return found
    return _only_number(cleaned) if phrase else None


def _only_number(text: str, at_end: bool = False) -> str | None:
    """The one number in ``text`` (with ``at_end``: only if it ends the text), else None."""
    numbers = list(_NUMBER_TOKEN_RE.finditer(text))
    if len(numbers) != 1 or (at_end and text[numbers[0].end():].strip(" \t.,;:!*$)")):
        return None
    return _canonical_number(numbers[0].group())


def extract_number(text: str, max_chars: int = MAX_SCAN_CHARS) -> str | None:
    """The final answer of a question whose answer is one number, or None.

    The rules of :func:`extract_answer`, each find reduced to the number it states
    (:func:`stated_number`), the first that states one winning:

    1. reasoning-gym's ``<answer>`` tag (in the last ``max_chars`` characters), ``\\boxed``,
       ``####``; then the statements "the answer is X", the looser "the answer to the
       problem is / would be / of X" and "N, which is the final answer", the last first;
    2. the last sentence of the text's last line (a list marker such as ``2.`` dropped);
    3. "the final result is X";
    4. only when the text names no answer at all (a text whose every "the answer is X"
       states no number, as in "the answer is N", has none): the result of its last
       equation (``= N``, "equals N"), not the last number anywhere, which is as often an operand or a
       list marker.

    The result is always a number (``-4``, ``2.5``, ``3/4``, ``1.5e-05``) or None, never a
    sentence.
    """
    marked = False
    for found in (extract_tagged(text, "answer", max_chars), extract_boxed(text), extract_gsm8k(text)):
        if found is not None:
            marked = True
            number = stated_number(found)
            if number is not None:
                return number
    tail = _tail(text)
    phrases = [(m.start(), _phrase_at(tail, m.end())) for m in _PHRASE_RE.finditer(tail)]
    phrases += [(m.start(), _SENTENCE_END_RE.split(m.group(1), maxsplit=1)[0])
                for m in _LOOSE_PHRASE_RE.finditer(tail)]
    phrases += [(m.start(), m.group(1)) for m in _NAMED_ANSWER_RE.finditer(tail)
                if not _OPERATION_AFTER_RE.match(tail, m.end(1))]
    for _, found in sorted(phrases, key=lambda p: -p[0]):  # the last statement first
        if found is not None:
            marked = True
            number = stated_number(found)
            if number is not None:
                return number
    lines = [line.strip() for line in tail.strip().split("\n") if line.strip()]
    if lines:
        sentences = _SENTENCE_END_RE.split(_LIST_MARKER_RE.sub("", lines[-1], count=1))
        last = next((x for x in reversed(sentences) if x.strip()), "")
        number = stated_number(last, phrase=False) if len(last) <= MAX_ANSWER_CHARS else None
        if number is not None:
            return number
    results = list(_RESULT_PHRASE_RE.finditer(tail))
    if results:
        number = stated_number(results[-1].group(1))
        if number is not None:
            return number
    if marked:
        return None
    results = [m for m in _RESULT_RE.finditer(tail) if not _OPERATION_AFTER_RE.match(tail, m.end())]
    return _canonical_number(results[-1].group(1)) if results else None


def extract_tagged(text: str, tag: str = "answer", max_chars: int = MAX_SCAN_CHARS
                   ) -> str | None:
    """The stripped contents of the last complete ``<tag>...</tag>`` pair in the last
    ``max_chars`` characters, or None if there is none or it is empty (reasoning-gym's
    answer convention)."""
    name = re.escape(tag)
    found = re.findall(rf"<{name}>(.*?)</{name}>", text[-max_chars:], flags=re.DOTALL)
    return (found[-1].strip() or None) if found else None


def extract_answer(text: str) -> str | None:
    """The final answer stated in free model ``text``, or None if there is none.

    Args:
        text: model output of any length; only the last :data:`MAX_SCAN_CHARS` characters
            are examined.

    Returns:
        The answer as a string (LaTeX or plain, delimiters stripped), or None.
    """
    for rule in (extract_boxed, extract_gsm8k, extract_answer_phrase, extract_bare,
                 extract_last_number):
        answer = rule(text)
        if answer:
            return answer
    return None
