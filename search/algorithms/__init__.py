"""The search algorithms: one config per algorithm, one ``match`` to run them.

``AlgorithmConfig`` is a pydantic discriminated union on the ``algorithm`` field; validate
a dict with ``parse_algorithm_config`` (or ``pydantic.TypeAdapter(AlgorithmConfig)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from search.algorithms.best_first import BestFirstConfig, best_first_search
from search.algorithms.best_of_n import BestOfNConfig, best_of_n_search
from search.algorithms.cot import CotConfig, cot_search
from search.algorithms.dvts import DvtsConfig, dvts_search
from search.algorithms.mc_nest import MCNestConfig, mc_nest_search
from search.algorithms.mcts import MctsConfig, mcts_search
from search.algorithms.rest_mcts import RestMctsConfig, rest_mcts_search
from search.algorithms.self_consistency import SelfConsistencyConfig, self_consistency_search
from search.algorithms.step_beam import StepBeamConfig, step_beam_search
from search.algorithms.treepo import TreePOConfig, treepo_search
from search.context import SearchContext
from search.protocols import ConfigError
from search.trace import SearchResult

AlgorithmConfig = Annotated[
    Union[
        CotConfig,
        SelfConsistencyConfig,
        BestOfNConfig,
        StepBeamConfig,
        DvtsConfig,
        BestFirstConfig,
        MctsConfig,
        RestMctsConfig,
        MCNestConfig,
        TreePOConfig,
    ],
    Field(discriminator="algorithm"),
]

_ADAPTER: TypeAdapter[Any] = TypeAdapter(AlgorithmConfig)


def parse_algorithm_config(data: Mapping[str, Any]) -> AlgorithmConfig:
    """Validates a config dict (e.g. from YAML).

    Raises:
        ConfigError: Naming the first offending field and value.
    """
    try:
        return _ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "algorithm"
        raise ConfigError(field, err.get("input"), err["msg"]) from exc


async def run_search(ctx: SearchContext, config: AlgorithmConfig) -> SearchResult:
    """Runs the configured algorithm on one problem and returns its result.

    The search's clock starts here. ``result.config`` is filled with the config as JSON.
    """
    ctx.start_clock()
    match config:
        case CotConfig():
            result = await cot_search(ctx, config)
        case SelfConsistencyConfig():
            result = await self_consistency_search(ctx, config)
        case BestOfNConfig():
            result = await best_of_n_search(ctx, config)
        case StepBeamConfig():
            result = await step_beam_search(ctx, config)
        case DvtsConfig():
            result = await dvts_search(ctx, config)
        case BestFirstConfig():
            result = await best_first_search(ctx, config)
        case MctsConfig():
            result = await mcts_search(ctx, config)
        case RestMctsConfig():
            result = await rest_mcts_search(ctx, config)
        case MCNestConfig():
            result = await mc_nest_search(ctx, config)
        case TreePOConfig():
            result = await treepo_search(ctx, config)
        case _:
            raise ConfigError("algorithm", type(config).__name__, "not an algorithm config")
    result.config = config.model_dump(mode="json")
    return result


__all__ = [
    "AlgorithmConfig",
    "BestFirstConfig",
    "BestOfNConfig",
    "CotConfig",
    "DvtsConfig",
    "MCNestConfig",
    "MctsConfig",
    "RestMctsConfig",
    "SelfConsistencyConfig",
    "StepBeamConfig",
    "TreePOConfig",
    "parse_algorithm_config",
    "run_search",
]
