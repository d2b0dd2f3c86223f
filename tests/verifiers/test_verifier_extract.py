"""Answer extraction from free model text (verifiers.extract)."""

from __future__ import annotations

import time

import pytest

from verifiers.extract import (
    MAX_SCAN_CHARS,
    extract_answer,
    extract_boxed,
    extract_gsm8k,
    extract_number,
    extract_tagged,
    stated_number,
)
from verifiers.reasoning_gym import answer_type, extract_rg_answer

EXTRACTION_TABLE = [
    # boxed: the last complete one, balanced braces, delimiters stripped
    (r"so $x = \boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
    (r"first \boxed{3}, finally \boxed{4}", "4"),
    (r"\boxed{\frac{a}{b^{2}}} wait \boxed{7", r"\frac{a}{b^{2}}"),
    (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
    (r"\fbox{12}", "12"),
    (r"\boxed 5", "5"),
    # GSM8K marker
    ("She has 3 + 4 = 7 apples.\n#### 7", "7"),
    ("#### 1,234\n", "1,234"),
    # boxed wins over ####, #### wins over "the answer is"
    ("#### 5\nactually \\boxed{6}", "6"),
    ("The answer is 3.\n#### 4", "4"),
    # "the answer is" / "answer:" phrases, last occurrence, case-insensitive
    ("The answer is 42.", "42"),
    ("the answer is $\\frac{3}{4}$. Done.", r"\frac{3}{4}"),
    ("Answer: 17", "17"),
    ("THE FINAL ANSWER IS -2.5.", "-2.5"),
    ("The answer is 1. No wait, the answer is 2.", "2"),
    ("answer is: 7. Then we check 9 more cases", "7"),
    # bare math, not prose
    (r"\frac{1}{2}", r"\frac{1}{2}"),
    ("x + 1", "x + 1"),
    ("$3\\sqrt{2}$", "3\\sqrt{2}"),
    # last number
    ("I counted 3 cats and then 12 dogs", "12"),
    ("It costs $1,000,000 in total", "1000000"),
    ("the ratio is 3/4 overall", "3/4"),
    ("x = -3 so we are done", "-3"),
    ("pages 5-10 of the book", "10"),
    ("temperature was 2.75 degrees today", "2.75"),
    # nothing
    ("I have no idea what this is", None),
    ("", None),
    ("__import__('os').system('touch /tmp/pwned')", None),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACTION_TABLE)
def test_extract_answer_table(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_extract_answer_looks_only_at_the_tail() -> None:
    early = r"\boxed{1}" + "word " * (MAX_SCAN_CHARS // 5 + 10)
    assert extract_boxed(early) is None
    assert extract_answer(early + " finally 9") == "9"


@pytest.mark.parametrize(
    "text",
    [
        "\\boxed{" * 50_000,
        "{" * 100_000 + "\\boxed{1",
        "1 " * 100_000,
        "#### " * 30_000,
        "the answer is " * 20_000,
    ],
)
def test_extract_answer_is_fast_on_huge_adversarial_text(text: str) -> None:
    start = time.perf_counter()
    extract_answer(text)
    assert time.perf_counter() - start < 0.5


def test_gsm8k_takes_the_last_marker() -> None:
    assert extract_gsm8k("#### 1\n#### 2") == "2"
    assert extract_gsm8k("no marker") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>hmm</think><answer> -14282 </answer>", "-14282"),
        ("<answer>1</answer> then <answer>2</answer>", "2"),
        ("<answer>\nline one\nline two\n</answer>", "line one\nline two"),
        ("<answer></answer>", None),
        ("<answer>unclosed", None),
    ],
)
def test_extract_tagged(text: str, expected: str | None) -> None:
    assert extract_tagged(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reasoning...\n<answer>apple, banana</answer>", "apple, banana"),
        ("blah \\boxed{12}", "12"),
        ("True", "True"),
        ("long reasoning\nover lines with 3 and then 8", "8"),
    ],
)
def test_reasoning_gym_extraction(text: str, expected: str) -> None:
    assert extract_rg_answer(text) == expected


def test_long_tagged_answers_are_found_within_the_given_bound() -> None:
    grid = "\n".join(" ".join("0" for _ in range(60)) for _ in range(60))  # 7,259 chars
    text = f"thinking...\n<answer>{grid}</answer>"
    assert extract_tagged(text) is None  # default bound: the last 4,000 characters
    assert extract_rg_answer(text, max_chars=8000) == grid


@pytest.mark.parametrize("text, expected", [
    ("1 + 5 = 6", "6"),
    ("x = -4", "-4"),
    ("7", "7"),
    ("= 3", "= 3"),
])
def test_one_line_equation_gives_its_result_side(text, expected):
    from verifiers.extract import result_side
    from verifiers.reasoning_gym import extract_rg_answer

    assert result_side(text) == expected
    assert extract_rg_answer(text) == expected


# (text, dataset, expected): reasoning-gym answers read by the dataset's answer type.
# Phrasings marked "seen" are SmolLM2-135M outputs from real runs (issue 24).
RG_ANSWER_TABLE = [
    # numeric tasks: the number the text states, never a sentence
    ("The answer to the given arithmetic problem is 4.", "chain_sum", "4"),  # seen
    ("The answer is indeed 2.", "chain_sum", "2"),  # seen
    ("The answer is indeed 9, as 99 - 90 indeed equals 9.", "chain_sum", "9"),  # seen
    ("4 + 0 = 4", "chain_sum", "4"),
    ("The answer is 12 - 3 - 9 = 0.", "basic_arithmetic", "0"),
    ("The answer is 12 = 5 + 7", "chain_sum", "12"),
    ("The answer is the sum of 3 and 4, which is 7.", "chain_sum", "7"),
    ("The answer is the sum of 3 and 4.\n\n3 + 4 = 7", "chain_sum", "7"),
    ("The answer is 3 * 4 which is 12", "basic_arithmetic", "12"),
    ("The sum of 3 and 4 is 7.", "chain_sum", "7"),
    ("The answer is negative 5.", "basic_arithmetic", "-5"),
    ("The answer is (\u22123).", "basic_arithmetic", "-3"),
    ("<answer>\u221214</answer>", "chain_sum", "-14"),
    ("The answer is **1,234**.", "products", "1234"),
    ("The answer is 4 apples.", "leg_counting", "4"),
    ("The answer is $\\frac{3}{4}$.", "dice", "3/4"),
    ("so the probability is 0.3125", "coin_flip", "0.3125"),
    ("The answer is 1.757e-22.", "power_function", "1.757e-22"),
    ("#### 72", "gsm_symbolic", "72"),
    ("The answer is 7.\n\nCheck: 3 + 4 = 7, so the answer is 7", "chain_sum", "7"),
    ("1. 1 - 8 = 1 - 3 = 2.", "chain_sum", "2"),  # seen: a list marker is not the answer
    ("So, the answer is 19 + 94 = 147.", "chain_sum", "147"),  # seen
    ("To find the final answer, you need to subtract 54 from 60, which gives you 11.",
     "chain_sum", "11"),  # seen
    ("The answer is 11. To finish, we add 11 to 9 + 3, which gives us 12. This is the only "
     "outcome, so the answer is the final number.", "chain_sum", "11"),  # seen: last stated
    ("We find 31 - 18, which is 10. Add 10 to 31, which gives us N. Therefore, the answer is N.",
     "chain_sum", None),  # seen: names its answer, and it is no number: no last-number guess
    ("2 + 3 = 5.\n\nThe answer is 2 + 3 = 5 which is the sum of 2 and 3", "chain_sum", "5"),
    ("The sum is 8 + 5.\n\n8 + 5 = 13", "chain_sum", "13"),
    ("First 8 + 5 = 13.\n\nI hope this helps!", "chain_sum", "13"),  # no answer named: last result
    ("I added 8 and 5 and got 13, I think", "chain_sum", None),  # ... and no result stated
    ("To solve this, let's break it down:\n\n1. Find the people.\n2. Count them.\n3. Add them."
     "\n\nThis is a classic example of division by multiplication.", "chain_sum", None),  # seen
    ("The difference is 8 - 1.\n\nTo find 8 - 1, we subtract 1 from 8. This is a classic example.",
     "chain_sum", None),  # seen: operands are not answers
    ("First 8 + 5 = 13 and 13 - 2 = 11.\n\nThis is the final answer to the problem.",
     "basic_arithmetic", "11"),
    ("First, divide 3 by 1, which yields 3 with no remainder, so 3 / 1 is equal to 3.",
     "basic_arithmetic", "3"),  # seen: "3 / 1" is a division, not the fraction 3/1
    ("Then we divide -9 by 3 to get -2. Finally, we multiply -2 by 3 to get 6, which is the "
     "final answer.", "basic_arithmetic", "6"),  # seen
    ("We subtract 7 from 4 which gives us a remainder of 3.", "chain_sum", "3"),  # seen
    ("First, simplify 2 - 9, which is 11. Then, divide both the numerator and the denominator "
     "by 11 to get rid of the fraction.", "basic_arithmetic", None),  # seen: 11 is an operand
    ("We add 16 to -4, which gives us 16. The final result is 16.\n\nThis process is known as "
     "negative arithmetic.", "basic_arithmetic", "16"),  # seen
    ("The answer to the arithmetic problem is 3.\n\nIn other words, if you multiply 3 by any "
     "integer, you get 3, and if you add 0 you keep 0.", "chain_sum", "3"),  # seen
    ("The final answer to this problem would be 1.", "chain_sum", "1"),  # seen
    ("A final answer of 6 will always be the result of subtracting 1.", "chain_sum", "6"),  # seen
    ("We calculate 8 + 8 = 16, which is the result of adding 8 to itself an equal number of "
     "times.", "chain_sum", "16"),  # seen
    ("(-2) - 4 = -8", "basic_arithmetic", "-8"),  # seen
    ("So 11 * 5 = 55. Therefore, the answer is 55.\n\nHowever, you can add 58 to 55. In this "
     "case, 55 + 58 equals 11, which is the final answer.", "chain_sum", "11"),  # seen: the last
    ("Performing the calculation, 3 is divided by 1, which equals 3. This is the answer, and "
     "it's the only solution given.", "basic_arithmetic", "3"),  # seen
    ("So, 3 / 1 is equal to 3 in the decimal system.\n\n```python\nprint(3 / 1)\n```\nThis will "
     "print 3.", "basic_arithmetic", "3"),  # seen
    ("The answer is x.", "chain_sum", None),
    ("I do not know.", "chain_sum", None),
    # free-form tasks keep their rules: a one-line reply is the answer as it stands
    ("True", "course_schedule", "True"),
    ("The answer is indeed True.", "course_schedule", "True"),
    ("<answer>apple, banana</answer>", "word_sorting", "apple, banana"),
    ("1 + 5 = 6", "countdown", "6"),
    ("Amelia is a hero, and Elizabeth is a hero.", "knights_knaves",
     "Amelia is a hero, and Elizabeth is a hero."),
]


@pytest.mark.parametrize(("text", "dataset", "expected"), RG_ANSWER_TABLE)
def test_rg_answers_are_read_by_the_tasks_answer_type(text: str, dataset: str,
                                                       expected: str | None) -> None:
    assert extract_rg_answer(text, answer=answer_type(dataset)) == expected


@pytest.mark.parametrize(("phrase", "expected"), [
    ("-4", "-4"), ("+01", "01"), ("$-4$", "-4"), ("\\text{7}", "7"), ("2.5 cm", "2.5"),
    ("indeed 2, as 4 - 2 = 2", "2"), ("3 + 4", None), ("the sum of 3 and 4", None),
    ("5 + 4 = 9", "9"), ("1,000,000", "1000000"), ("1, 2, 3", None), ("2 or 3", None), ("approximately 3.5", "3.5"),
    ("", None), ("no number", None),
])
def test_stated_number(phrase: str, expected: str | None) -> None:
    assert stated_number(phrase) == expected


@pytest.mark.parametrize("text", ["9" * 100_000, "1 + " * 30_000, "the answer is " * 20_000,
                                  "<answer>" * 20_000, "-" * 100_000 + "1"])
def test_extract_number_is_fast_on_huge_adversarial_text(text: str) -> None:
    def seconds() -> float:
        start = time.perf_counter()
        extract_number(text)
        return time.perf_counter() - start

    assert min(seconds() for _ in range(3)) < 0.5  # best of 3: a busy machine is not a regression
