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
"""

from __future__ import annotations

import re

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
_NUMBER_RE = re.compile(
    r"(?<![\d.])(?:(?<![\w)\]}])-)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?"
    r"(?:\s*/\s*\d+(?:\.\d+)?)?(?![\d])"
)
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
    tail = _tail(text)
    found = list(_PHRASE_RE.finditer(tail))
    if not found:
        return None
    start = found[-1].end()
    answer = tail[start : start + MAX_ANSWER_CHARS].split("\n", 1)[0]
    end = _SENTENCE_END_RE.search(answer)
    if end:
        answer = answer[: end.start()]
    return _clean(answer)


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
    found = _NUMBER_RE.findall(_tail(text))
    if not found:
        return None
    number = found[-1].replace(" ", "")
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", number):
        number = number.replace(",", "")
    return number


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
