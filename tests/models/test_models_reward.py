"""Reward models without a server: score parsing, prompt layout, label probabilities, usage."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from models.client import VLLMClient
from models.pooling_prm import PoolingPRM, parse_pooling_rows
from models.reward import (
    NEUTRAL_SCORE,
    GenerativePRM,
    SelfEvalReward,
    label_probability,
    parse_rating,
)
from search.protocols import ConfigError, ModelServerError, Problem, RewardModel

PROBLEM = Problem(id="p1", question="What is 2+3?")


class CharTokenizer:
    """One token per character (id = code point); a chat prompt is ``[1] + text + [2]``."""

    eos_token_id = 0

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, token_ids) -> str:
        return "".join(chr(t) for t in token_ids)

    def chat_prompt(self, user: str, system: str | None = None) -> list[int]:
        return [1, *self.encode(user), 2]


def client_for(handler) -> VLLMClient:
    return VLLMClient("http://prm:1", "judge", transport=httpx.MockTransport(handler),
                      backoff_s=0.001, max_retries=1)


def completion_reply(top: dict[str, float] | None, text: str = "+", n: int = 1, prompt_tokens: int = 50):
    choices = []
    for i in range(n):
        lp = None if top is None else {"token_logprobs": [-0.1], "tokens": ["x"], "top_logprobs": [top]}
        choices.append({"index": i, "text": text if isinstance(text, str) else text[i],
                        "token_ids": [9], "finish_reason": "length", "stop_reason": None, "logprobs": lp})
    return {"choices": choices, "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", 0.7), (" 10", 1.0), ("0", 0.0), ("7.5", 0.75), ("Score: 8", 0.8), ("rating is 3", 0.3),
        ("8/10", 0.8), ("8 out of 10", 0.8), ("3/4", 0.75), ("I'd say 6 because", 0.6),
        ("85", None), ("-3", None), ("11", None), ("", None), ("no idea", None), ("12/10", None),
    ],
)
def test_parse_rating(text, expected):
    got = parse_rating(text)
    assert (got is None and expected is None) or got == pytest.approx(expected)


def test_parse_rating_custom_scale():
    assert parse_rating("4", max_score=5) == pytest.approx(0.8)


def test_label_probability_normalises_and_sums_variants():
    top = {27: math.log(0.3), 1232: math.log(0.3), 29: math.log(0.2), 5: math.log(0.2)}
    assert label_probability(top, (27, 1232), (29, 731)) == pytest.approx(0.6 / 0.8)
    assert label_probability({5: -0.1}, (27,), (29,)) == NEUTRAL_SCORE
    assert label_probability({27: -0.1}, (27,), (29,)) == 1.0


async def test_generative_prm_scores_every_step_and_caches():
    bodies = []
    # p(+) depends on how many steps the prompt holds: step k -> logit so that p = k/4.
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        text = "".join(chr(t) for t in body["prompt"])
        k = text.count("STEP")
        p = k / 4
        top = {f"token_id:{ord('+')}": math.log(p), f"token_id:{ord('-')}": math.log(1 - p)}
        return httpx.Response(200, json=completion_reply(top))

    prm = GenerativePRM(client_for(handler), CharTokenizer())
    assert isinstance(prm, RewardModel)
    paths = [["STEP a", "STEP b"], ["STEP a", "STEP c", "STEP d"]]
    out = await prm.score(PROBLEM, paths)
    assert out.scores == (pytest.approx((0.25, 0.5)), pytest.approx((0.25, 0.5, 0.75)))
    assert len(bodies) == 4  # prefix ("STEP a",) is shared and scored once
    assert out.usage.reward_calls == 4 and out.usage.reward_tokens == 4 * (50 + 1)
    b = bodies[0]
    assert b["max_tokens"] == 1 and b["temperature"] == 0.0 and b["return_tokens_as_token_ids"]
    assert sorted(b["logprob_token_ids"]) == [ord("+"), ord("-")]
    assert b["prompt"][0] == 1 and b["prompt"][-1] == 2  # chat-wrapped
    # A second call on known prefixes costs nothing.
    again = await prm.score(PROBLEM, [["STEP a", "STEP b"]])
    assert again.scores == (pytest.approx((0.25, 0.5)),) and again.usage.reward_calls == 0


async def test_judges_score_only_the_steps_asked_for():
    prompts = []

    def handler(request: httpx.Request) -> httpx.Response:
        prompts.append("".join(chr(t) for t in json.loads(request.content)["prompt"]))
        p = prompts[-1].count("STEP") / 4
        return httpx.Response(200, json=completion_reply(
            {f"token_id:{ord('+')}": math.log(p), f"token_id:{ord('-')}": math.log(1 - p)}))

    prm = GenerativePRM(client_for(handler), CharTokenizer())
    paths = [["STEP a", "STEP b", "STEP c"], ["STEP a", "STEP d"]]
    out = await prm.score(PROBLEM, paths, first=[2, 1])
    assert out.scores == (pytest.approx((0.75,)), pytest.approx((0.5,)))
    assert len(prompts) == 2 and out.usage.reward_calls == 2  # no request for the known prefixes
    assert (await prm.score(PROBLEM, paths, first=[3, 2])).scores == ((), ())
    with pytest.raises(ValueError, match="first"):
        await prm.score(PROBLEM, paths, first=[4, 0])


async def test_generative_prm_falls_back_to_top_logprobs():
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if "logprob_token_ids" in body:
            return httpx.Response(400, json={"error": {"message": "extra field logprob_token_ids not permitted"}})
        return httpx.Response(200, json=completion_reply({f"token_id:{ord('+')}": math.log(0.9),
                                                          f"token_id:{ord('-')}": math.log(0.1)}))

    prm = GenerativePRM(client_for(handler), CharTokenizer())
    out = await prm.score(PROBLEM, [["s1"]])
    assert out.scores == (pytest.approx((0.9,)),)
    assert bodies[-1]["logprobs"] == 20 and not prm.exact_label_logprobs


async def test_generative_prm_label_absent_is_neutral():
    prm = GenerativePRM(client_for(lambda r: httpx.Response(200, json=completion_reply({"token_id:5": -0.1}))),
                        CharTokenizer())
    assert (await prm.score(PROBLEM, [["s"]])).scores == ((NEUTRAL_SCORE,),)


def test_generative_prm_rejects_bad_labels():
    with pytest.raises(ConfigError):
        GenerativePRM(client_for(lambda r: None), CharTokenizer(), positive="yes")  # 3 tokens
    with pytest.raises(ConfigError):
        GenerativePRM(client_for(lambda r: None), CharTokenizer(), template="no fields")


async def test_self_eval_parses_averages_and_counts_garbage():
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        return httpx.Response(200, json=completion_reply(None, text=["8", "6/10", "banana"], n=3))

    judge = SelfEvalReward(client_for(handler), CharTokenizer(), num_samples=3, temperature=0.7)
    out = await judge.score(PROBLEM, [["step one"]])
    assert out.scores == (pytest.approx((0.7,)),)
    assert (judge.rated, judge.unparseable) == (2, 1)
    assert bodies[0]["n"] == 3 and bodies[0]["stop"] == ["\n"]
    prompt = "".join(chr(t) for t in bodies[0]["prompt"])
    assert "What is 2+3?" in prompt and "step one" in prompt and "from 0 to 10" in prompt
    assert prompt.endswith("Rating: ")
    assert out.usage.reward_calls == 1


class ChatCharTokenizer(CharTokenizer):
    """CharTokenizer with a follow-up turn: ``[3] + user + [4]``."""

    def chat_follow_up(self, user: str) -> list[int]:
        return [3, *self.encode(user), 4]


async def test_self_eval_follow_up_continues_the_policy_conversation():
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=completion_reply(None, text="9"))

    tok = ChatCharTokenizer()
    judge = SelfEvalReward(client_for(handler), tok, follow_up="Rate it.", system="sys")
    out = await judge.score(PROBLEM, [["Add.\n\n", "It is 5."]], first=[1])
    assert out.scores == (pytest.approx((0.9,)),)
    policy_ids = tok.chat_prompt(PROBLEM.question, "sys") + tok.encode("Add.\n\nIt is 5.")
    assert bodies[0]["prompt"] == policy_ids + [3, *tok.encode("Rate it."), 4] + tok.encode("Rating: ")
    fresh = SelfEvalReward(client_for(handler), tok, follow_up=None)
    await fresh.score(PROBLEM, [["Add.\n\n"]])
    assert "Partial solution:" in "".join(chr(t) for t in bodies[1]["prompt"])  # the re-quoting template


async def test_self_eval_all_garbage_is_neutral_and_not_cached_by_default():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, json=completion_reply(None, text="lots"))

    judge = SelfEvalReward(client_for(handler), CharTokenizer())
    assert (await judge.score(PROBLEM, [["a", "b"]])).scores == ((0.5, 0.5),)
    await judge.score(PROBLEM, [["a", "b"]])
    assert len(calls) == 4 and judge.unparseable == 4


async def test_pooling_prm_token_classify_reads_separator_positions():
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/pooling"
        body = json.loads(request.content)
        bodies.append(body)
        data = []
        for i, ids in enumerate(body["input"]):
            # p(correct) = 0.1 * (number of separators so far) at each token.
            seps = 0
            row = []
            for t in ids:
                seps += t == ord("|")
                row.append([1 - 0.1 * seps, 0.1 * seps])
            data.append({"index": i, "object": "pooling", "data": row})
        return httpx.Response(200, json={"data": data, "usage": {"prompt_tokens": 99}})

    prm = PoolingPRM(client_for(handler), CharTokenizer(), step_separator="|", chat=False)
    out = await prm.score(PROBLEM, [["ab", "cd"], ["ab", "ef", "gh"]])
    assert out.scores == (pytest.approx((0.1, 0.2)), pytest.approx((0.1, 0.2, 0.3)))
    assert bodies[0]["task"] == "token_classify" and bodies[0]["model"] == "judge"
    assert bodies[0]["input"][0] == [ord(c) for c in "What is 2+3?ab|cd|"]
    assert out.usage.reward_calls == 1 and out.usage.reward_tokens == 99
    # All prefixes now cached: no request.
    again = await prm.score(PROBLEM, [["ab", "cd"]])
    assert again.usage.reward_calls == 0 and len(bodies) == 1


async def test_pooling_prm_classify_mode():
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/classify"
        body = json.loads(request.content)
        bodies.append(body)
        data = [{"index": i, "label": "x", "probs": [0.25, 0.75], "num_classes": 2}
                for i in range(len(body["input"]))]
        return httpx.Response(200, json={"data": data, "usage": {"prompt_tokens": 10}})

    prm = PoolingPRM(client_for(handler), CharTokenizer(), mode="classify", chat=False, step_joiner="/")
    out = await prm.score(PROBLEM, [["a", "b"]])
    assert out.scores == ((0.75, 0.75),)
    assert bodies[0]["input"] == [[ord(c) for c in "What is 2+3?a"], [ord(c) for c in "What is 2+3?a/b"]]


def test_parse_pooling_rows_errors():
    with pytest.raises(ModelServerError):
        parse_pooling_rows({"data": [{"index": 0, "data": [0.1, 0.9]}]}, 2)
    with pytest.raises(ModelServerError):
        parse_pooling_rows({"data": [{"index": 0, "data": "base64..."}]}, 1)
    assert parse_pooling_rows({"data": [{"index": 1, "data": [[1.0]]}, {"index": 0, "data": [[0.0]]}]}, 2) == [
        [[0.0]], [[1.0]]]


def test_pooling_prm_separator_must_be_one_token():
    with pytest.raises(ConfigError):
        PoolingPRM(client_for(lambda r: None), CharTokenizer(), step_separator="<sep>")
