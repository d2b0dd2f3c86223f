"""models/ against the embedded SmolLM2-135M on a real local vLLM server (CPU). No mocks.

Uses the session fixtures ``embedded_server`` / ``embedded_client`` / ``embedded_tokenizer``
from tests/conftest.py; the server starts once (~30-50 s) for the whole session.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from pathlib import Path

import pytest

from models.client import VLLMClient
from models.embedded import embedded_checkpoint
from models.managed import ensure_server
from models.policy import VLLMPolicy
from models.reward import GenerativePRM, SelfEvalReward
from models.server import ServerSettings, server_status, start_server
from search.protocols import (
    EngineFault,
    ModelServerError,
    PonderError,
    Problem,
    Sampling,
)

pytestmark = pytest.mark.integration

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have now? Think step by step."


async def test_step_generation_blank_line_stop_with_n(embedded_client, embedded_tokenizer):
    prompt = embedded_tokenizer.chat_prompt(QUESTION)
    gen = await VLLMPolicy(embedded_client).propose(
        prompt, Sampling(n=4, temperature=0.9, max_tokens=96, stop=("\n\n",), seed=11)
    )
    assert len(gen.proposals) == 4
    assert {p.finish_reason for p in gen.proposals} <= {"stop", "eos", "length"}
    stopped = [p for p in gen.proposals if p.finish_reason == "stop"]
    assert stopped, [p.text for p in gen.proposals]
    for p in stopped:
        assert p.stop_reason == "\n\n"
        assert p.text.endswith("\n\n") and "\n\n" not in p.text[:-2]
    for p in gen.proposals:
        if p.finish_reason == "eos":
            assert p.token_ids[-1] == embedded_tokenizer.eos_token_id
        if p.finish_reason == "length":
            assert len(p.token_ids) == 96
    assert len({p.text for p in gen.proposals}) > 1  # n samples, not one repeated
    u = gen.usage
    assert u.calls == 1 and u.prompt_tokens == len(prompt)
    assert u.generated_tokens == sum(len(p.token_ids) for p in gen.proposals)


async def test_logprobs_and_token_ids_are_consistent(embedded_client, embedded_tokenizer):
    prompt = embedded_tokenizer.chat_prompt(QUESTION)
    c = await embedded_client.complete(prompt, n=3, temperature=1.0, max_tokens=40, stop=["\n\n"],
                                       logprobs=2, seed=3)
    for choice in c.choices:
        assert len(choice.logprobs) == len(choice.token_ids) == len(choice.top_logprobs) > 0
        assert all(lp <= 0.0 for lp in choice.logprobs)
        assert all(1 <= len(top) <= 3 for top in choice.top_logprobs)  # 2 best + the sampled one
        decoded = embedded_tokenizer.decode(choice.token_ids)
        if choice.finish_reason == "stop":
            assert decoded.startswith(choice.text)
        else:
            assert decoded == choice.text


async def test_local_text_offsets_equal_the_servers(embedded_client, embedded_tokenizer):
    """Offsets decoded from token ids (no logprobs asked) are the ones vLLM returns with logprobs."""
    prompt = embedded_tokenizer.chat_prompt(QUESTION)
    c = await embedded_client.complete(prompt, n=4, temperature=1.0, max_tokens=80, logprobs=0, seed=5)
    for choice in c.choices:
        text, offsets = embedded_tokenizer.decode_with_offsets(choice.token_ids)
        assert text == choice.text
        assert offsets == choice.text_offsets and len(offsets) == len(choice.token_ids)


async def test_token_id_prompt_reproduces_string_prompt(embedded_client, embedded_tokenizer):
    text = "The three primary colors are"
    by_text = await embedded_client.complete(text, temperature=0.0, max_tokens=24, logprobs=0)
    by_ids = await embedded_client.complete(embedded_tokenizer.encode(text), temperature=0.0,
                                            max_tokens=24, logprobs=0)
    assert by_ids.choices[0].token_ids == by_text.choices[0].token_ids
    assert by_ids.choices[0].text == by_text.choices[0].text
    assert by_ids.usage.prompt_tokens == by_text.usage.prompt_tokens


async def test_chat_prompt_matches_the_servers_chat_template(embedded_client, embedded_tokenizer):
    ours = await embedded_client.complete(embedded_tokenizer.chat_prompt("Name a fruit."),
                                          temperature=0.0, max_tokens=16, logprobs=None)
    body, _, _ = await embedded_client.request("POST", "/v1/chat/completions", {
        "model": embedded_client.model, "messages": [{"role": "user", "content": "Name a fruit."}],
        "temperature": 0.0, "max_tokens": 16,
    })
    assert body["usage"]["prompt_tokens"] == ours.usage.prompt_tokens
    assert body["choices"][0]["message"]["content"] == ours.choices[0].text


async def test_repeated_prefix_reports_cached_prompt_tokens(embedded_client, embedded_tokenizer):
    prefix = embedded_tokenizer.chat_prompt("Count: " + " ".join(str(i) for i in range(150)))
    first = await embedded_client.complete(prefix + embedded_tokenizer.encode("A"), max_tokens=2,
                                           temperature=0.0)
    second = await embedded_client.complete(prefix + embedded_tokenizer.encode("B"), max_tokens=2,
                                            temperature=0.0)
    assert len(prefix) > 200
    assert first.usage.cached_prompt_tokens < second.usage.cached_prompt_tokens
    assert second.usage.cached_prompt_tokens >= len(prefix) - 32  # whole blocks of the prefix


async def test_64_concurrent_requests_share_one_pool(embedded_client):
    prompts = [[1000 + i, 2000 + i, 3000 + i] for i in range(64)]
    results = await asyncio.gather(*(embedded_client.complete(p, max_tokens=2, temperature=0.0)
                                     for p in prompts))
    assert len(results) == 64 and all(len(r.choices[0].token_ids) == 2 for r in results)


async def test_reward_models_on_the_real_server(embedded_client, embedded_tokenizer):
    problem = Problem(id="apples", question="Tom has 3 apples and buys 4 more. How many now?")
    paths = [["3 + 4 = 7.", "Tom has 7 apples."], ["3 + 4 = 9.", "Tom has 9 apples."]]
    prm = GenerativePRM(embedded_client, embedded_tokenizer)
    out = await prm.score(problem, paths)
    assert [len(r) for r in out.scores] == [2, 2]
    assert all(0.0 <= s <= 1.0 for r in out.scores for s in r)
    assert len({s for r in out.scores for s in r}) > 1  # real logprobs, not the neutral fallback
    assert prm.exact_label_logprobs  # this vLLM accepts logprob_token_ids
    assert out.usage.reward_calls == 4 and out.usage.reward_tokens > 4 * 50
    judge = SelfEvalReward(embedded_client, embedded_tokenizer, num_samples=2, temperature=0.8, seed=1)
    rated = await judge.score(problem, paths[:1])
    assert len(rated.scores[0]) == 2 and all(0.0 <= s <= 1.0 for s in rated.scores[0])
    assert judge.rated + judge.unparseable == 4 and rated.usage.reward_calls == 2


async def test_follow_up_self_eval_prompt_is_the_policy_conversation_plus_a_turn(embedded_client, embedded_tokenizer):
    tok = embedded_tokenizer
    follow = tok._tok.decode(tok.chat_follow_up("Rate it."), skip_special_tokens=False)
    assert follow.startswith("<|im_end|>") and "<|im_start|>user\nRate it.<|im_end|>" in follow
    assert follow.endswith("<|im_start|>assistant\n")
    problem = Problem(id="apples", question="Tom has 3 apples and buys 4 more. How many now? " * 6)
    steps = ["3 + 4 = 7.\n\n", "Tom has 7 apples."]
    policy_prompt = tok.chat_prompt(problem.question) + tok.encode("".join(steps))
    await embedded_client.complete(policy_prompt, max_tokens=1, temperature=0.0)  # the policy's request
    judge = SelfEvalReward(embedded_client, tok)
    prompt = judge.prompt(problem, steps)
    assert prompt[: len(policy_prompt)] == policy_prompt
    reply = await embedded_client.complete(prompt, max_tokens=4, temperature=0.0)
    assert reply.usage.cached_prompt_tokens >= len(policy_prompt) - 32  # the conversation is a cache hit


def test_server_status_and_ensure_server_reuse(embedded_server, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    from models import records

    records.write_record(embedded_server)
    status = server_status()
    assert status is not None and status.healthy and status.record == embedded_server
    with ensure_server(embedded_server.checkpoint) as managed:
        assert managed.record == embedded_server and not managed.owned  # reused, nothing started
    assert server_status() is not None  # a reused server is left running and recorded


def test_port_already_in_use(embedded_server):
    with pytest.raises(ModelServerError) as e:
        start_server(ServerSettings(checkpoint=Path(embedded_server.checkpoint), port=embedded_server.port),
                     record=False)
    assert "already in use" in e.value.cause and not e.value.retryable


def test_server_that_dies_at_startup_reports_its_log(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(ModelServerError) as e:
        start_server(ServerSettings(checkpoint=tmp_path, startup_timeout_s=300), record=False)
    assert "exited with code" in e.value.cause and "log" in e.value.cause
    assert len(e.value.cause.splitlines()) > 3  # the last lines of vLLM's log are included


async def test_unreachable_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with VLLMClient(f"http://127.0.0.1:{port}", "m", max_retries=1, backoff_s=0.01,
                          outage_timeout_s=0.5) as client:
        with pytest.raises(EngineFault) as e:  # not a node failure: waited for, then given up
            await VLLMPolicy(client).propose([1, 2], Sampling())
    assert str(port) in e.value.endpoint and "ConnectError" in e.value.cause


def test_missing_model_file(tmp_path):
    with pytest.raises(PonderError, match="does not exist"):
        embedded_checkpoint(gguf=tmp_path / "SmolLM2.gguf", dest=tmp_path / "out")


def test_corrupt_model_file_gives_a_clear_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + struct.pack("<I", 3) + b"\xff" * 4096)  # magic + version, then junk
    with pytest.raises(PonderError, match="could not convert .*broken.gguf"):
        embedded_checkpoint(gguf=bad, dest=tmp_path / "out")
    assert not (tmp_path / "out").exists()
