"""Answer checking and task sources.

Implements :class:`search.protocols.Verifier` for math (math-verify) and for
reasoning-gym tasks (their own scorers); every check runs in a worker process with a
hard timeout (:mod:`verifiers.pool`). Task sources (:mod:`verifiers.tasks`) keep gold
answers apart from the problems the search sees. Importing this package loads neither
sympy nor reasoning-gym; the workers do.
"""

from verifiers.extract import extract_answer
from verifiers.jsonl import TaskFileError
from verifiers.math import MathVerifier, MathVerifierConfig
from verifiers.pool import PoolConfig, WorkerCrashed, WorkerPool, WorkerTimeout, shared_pool
from verifiers.reasoning_gym import (
    ReasoningGymGold,
    ReasoningGymVerifier,
    ReasoningGymVerifierConfig,
)
from verifiers.tasks import (
    JsonlTaskConfig,
    ReasoningGymTaskConfig,
    TaskConfig,
    TaskSet,
    UnknownProblemError,
    load_tasks,
)

__all__ = [
    "JsonlTaskConfig", "MathVerifier", "MathVerifierConfig", "PoolConfig",
    "ReasoningGymGold", "ReasoningGymTaskConfig", "ReasoningGymVerifier",
    "ReasoningGymVerifierConfig", "TaskConfig", "TaskFileError", "TaskSet",
    "UnknownProblemError", "WorkerCrashed", "WorkerPool", "WorkerTimeout",
    "extract_answer", "load_tasks", "shared_pool",
]
