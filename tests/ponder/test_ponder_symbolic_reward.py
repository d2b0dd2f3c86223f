"""`reward: {kind: symbolic}` and the symbolic rule over a judge: config and construction."""

from __future__ import annotations

import pytest

from ponder.config import RewardConfig, parse_run_config
from ponder.engine import _reward_model
from search.protocols import ConfigError
from verifiers.step_reward import CombinedReward, SymbolicChecker, SymbolicReward


def test_symbolic_kind_and_rule_parse() -> None:
    cfg = parse_run_config({"reward": {"kind": "symbolic", "checker": {"timeout_s": 1.5, "unchecked_score": 0.4}}})
    assert cfg.reward.kind == "symbolic" and cfg.reward.checker.timeout_s == 1.5
    assert parse_run_config({"reward": {"kind": "self_eval", "symbolic": "veto"}}).reward.symbolic == "veto"
    with pytest.raises(ConfigError, match="reward.symbolic"):
        parse_run_config({"reward": {"kind": "self_eval", "symbolic": "sometimes"}})
    with pytest.raises(ConfigError, match="reward.checker.false_score"):
        parse_run_config({"reward": {"kind": "symbolic", "checker": {"false_score": 2}}})


class _Client:
    model = "policy"


class _Tokenizer:
    def chat_follow_up(self, user: str) -> list[int]:
        return [1]

    def encode(self, text: str) -> list[int]:
        return [2]


async def test_construction_needs_no_server_for_symbolic() -> None:
    checker = SymbolicChecker()
    rm = await _reward_model(RewardConfig(kind="symbolic"), None, None, None, None, None, checker)  # type: ignore[arg-type]
    assert isinstance(rm, SymbolicReward) and rm.checker is checker
    vetoed = await _reward_model(RewardConfig(kind="self_eval", symbolic="veto"), None, _Client(), _Tokenizer(),  # type: ignore[arg-type]
                                 None, None, checker)  # type: ignore[arg-type]
    assert isinstance(vetoed, CombinedReward) and vetoed.rule == "veto" and vetoed.checker is checker
