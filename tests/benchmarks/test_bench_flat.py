"""The flat bench (benchmarks.flat, benchmarks.plain_client) against scripted servers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import yaml

from models.client import VLLMClient
from models.policy import VLLMPolicy
from benchmarks.flat import (
    PONDER_FIELDS,
    FlatMeasure,
    FlatRequests,
    PlainMeasure,
    flat_lines,
    flat_requests,
)
from benchmarks.metrics import GENERATED
from benchmarks.plain_client import PlainRun, completion_request, run_plain
from benchmarks.search_runs import RunMeasure, override
from benchmarks.suite import flat_config
from search.context import SamplingDefaults, SearchContext
from search.protocols import ConfigError, ModelServerError, Problem
from verifiers.tasks import load_tasks

PRESET = Path(__file__).parents[2] / "configs" / "self_consistency.yaml"


def _reply(body: dict, tokens_per_sample: int = 5) -> httpx.Response:
    return httpx.Response(200, json={
        "choices": [{"index": i, "text": "x", "finish_reason": "stop"} for i in range(body["n"])],
        "usage": {"prompt_tokens": len(body["prompt"]), "completion_tokens": tokens_per_sample * body["n"]}})


async def test_plain_client_sends_one_request_per_prompt_at_the_asked_concurrency():
    bodies, state = [], {"in_flight": 0, "peak": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/completions" and request.method == "POST"
        bodies.append(json.loads(request.content))
        state["in_flight"] += 1
        state["peak"] = max(state["peak"], state["in_flight"])
        await asyncio.sleep(0.01)
        state["in_flight"] -= 1
        return _reply(bodies[-1])

    prompts = [[1, 2, i] for i in range(7)]
    run = await run_plain("http://x:1", "m", prompts, n=8, max_tokens=576, temperature=0.7, top_p=1.0,
                          concurrency=3, transport=httpx.MockTransport(handler))
    assert run == PlainRun(generated_tokens=7 * 8 * 5, calls=7, wall_seconds=run.wall_seconds)
    assert run.tok_per_s == pytest.approx(280 / run.wall_seconds)
    assert state["peak"] == 3
    assert sorted(b["prompt"] for b in bodies) == prompts
    assert bodies[0] == {"model": "m", "prompt": bodies[0]["prompt"], "n": 8, "max_tokens": 576,
                         "temperature": 0.7, "top_p": 1.0, "stop": []}


async def test_plain_client_adds_extra_fields_and_reports_failures():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(500, text="boom") if len(seen) > 1 else _reply(seen[-1])

    with pytest.raises(ModelServerError, match="500"):
        await run_plain("http://x:1", "m", [[1], [2]], n=2, max_tokens=4, temperature=0.0, top_p=1.0,
                        concurrency=1, extra=PONDER_FIELDS, transport=httpx.MockTransport(handler))
    assert "logprobs" not in seen[0] and seen[0]["return_token_ids"] is True and seen[0]["stop"] == []


async def test_plain_request_is_ponders_whole_solution_request_without_ponders_own_fields():
    cfg = flat_config(num_problems=2)
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(400, json={"error": {"message": "captured"}})

    async with VLLMClient("http://x:1", "m", transport=httpx.MockTransport(handler)) as client:
        ctx = SearchContext(policy=VLLMPolicy(client), root_prefix=[5, 6, 7], problem=Problem(id="p", question="q"),
                            steps=cfg.steps, extract_fn=lambda text: None, budget=cfg.budget,
                            sampling=SamplingDefaults(temperature=cfg.temperature))
        assert await ctx.sample_solutions(0, cfg.search.num_samples) == []  # the 400 errors the root
    plain = completion_request("m", [5, 6, 7], n=8, max_tokens=cfg.steps.solution_tokens,
                               temperature=cfg.temperature, top_p=SamplingDefaults().top_p)
    assert sent == [{**plain, **PONDER_FIELDS}]


def test_flat_preset_is_the_self_consistency_config_without_a_budget():
    cfg = flat_config(num_problems=5, num_samples=4)
    preset = yaml.safe_load(PRESET.read_text())
    assert cfg.search.algorithm == "self_consistency" and cfg.search.num_samples == 4
    same_tasks = cfg.tasks.model_validate({**preset["tasks"], "size": 5})
    assert cfg.tasks == same_tasks
    assert cfg.steps == cfg.steps.model_validate(preset["steps"])
    assert cfg.budget.max_generated_tokens is None and cfg.steps.solution_tokens == 6 * 96


@pytest.mark.parametrize(("updates", "field"), [
    ({"budget": {"max_generated_tokens": 4000}}, "budget"),
    ({"search": {"algorithm": "best_of_n", "num_samples": 8}}, "search.algorithm"),
    ({"seed": 3}, "seed"),
])
def test_flat_requests_refuse_configs_the_plain_client_cannot_mirror(updates, field):
    cfg = flat_config(num_problems=2)
    with pytest.raises(ConfigError, match=field):
        flat_requests(override(cfg, updates), load_tasks(cfg.tasks))


def _ponder_run(cfg, ponder_tokens: int) -> RunMeasure:
    rows = [{"usage": {"prompt_tokens": 10, "generated_tokens": ponder_tokens // 4, "cached_prompt_tokens": 0,
                       "reward_tokens": 0, "calls": 1, "reward_calls": 0, "wall_seconds": 1.0},
             "status": "correct" if i < 3 else "wrong", "correct": i < 3} for i in range(4)]
    summary = {"problems": 4, "accuracy": 0.75, "errors": 0, "generated_tokens": ponder_tokens, "calls": 4}
    return RunMeasure("ponder", cfg, rows, summary, 10.0, 4, {GENERATED: 0.0}, {GENERATED: float(ponder_tokens)},
                      [], 1.0, True, 12.5)


def _flat(plain_tokens: tuple[int, ...], *ponder_tokens: int) -> tuple[FlatMeasure, FlatRequests]:
    cfg = flat_config(num_problems=4)
    plain = tuple(PlainMeasure(PlainRun(t, 4, 10.0), float(t), True) for t in plain_tokens)
    reqs = FlatRequests([[1]] * 4, 8, 576, 0.7, 1.0, 32)
    return FlatMeasure(plain, tuple(_ponder_run(cfg, t) for t in ponder_tokens)), reqs


def test_flat_report_divides_ponder_by_the_mean_plain_rate():
    fm, reqs = _flat((2000, 1800), 1000)
    assert fm.plain_tok_per_s == pytest.approx(190.0) and fm.ponder_tok_per_s == pytest.approx(100.0)
    text = "\n".join(flat_lines(fm.ponder[0].cfg, reqs, fm, ponder_fields=False))
    assert f"{100 / 190:.3f} (search wall)" in text and f"{80 / 190:.3f} (whole run_config wall)" in text
    assert "n=8, max_tokens=576" in text and "32 problems at once" in text
    assert "ponder 1 accuracy: 0.750 over 4 problems, errors 0" in text and "WARNING" not in text
    assert "median" not in text
    row = next(line for line in text.splitlines() if line.startswith("ponder 1 (run_config wall)"))
    assert row.split()[-5:] == ["1000", "4", "12.5", "80.0", "1000"]


def test_flat_report_warns_when_the_plain_runs_disagree():
    fm, reqs = _flat((2000, 1000), 1000)
    assert "WARNING: plain 1 and 2 differ by 50%" in "\n".join(flat_lines(fm.ponder[0].cfg, reqs, fm, True))


def test_repeated_runs_divide_each_ponder_run_by_its_own_bracket_and_report_the_median():
    # plain 200, ponder 100, plain 100, ponder 150, plain 200, ponder 90, plain 100 tok/s
    fm, reqs = _flat((2000, 1000, 2000, 1000), 1000, 1500, 900)
    assert fm.ratios == pytest.approx([100 / 150, 150 / 150, 90 / 150])
    assert fm.median_ratio == pytest.approx(100 / 150)
    text = "\n".join(flat_lines(fm.ponder[0].cfg, reqs, fm, False))
    assert "order: plain, ponder, plain, ponder, plain, ponder, plain" in text
    assert f"median ratio over 3 ponder runs (search wall): {100 / 150:.3f}" in text


def test_a_flat_measure_needs_one_more_plain_run_than_ponder_runs():
    with pytest.raises(ValueError, match="k \\+ 1 plain"):
        _flat((2000,), 1000)


def test_plain_run_rate_of_an_empty_run_is_zero():
    assert PlainRun(0, 0, 0.0).tok_per_s == 0.0
