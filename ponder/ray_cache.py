"""The shared proof cache as a Ray actor (spec 04 §4: V2's ``ProgressCache`` is one Ray actor).

The actor holds a ``search.prover.cache.CacheCore`` (the same logic as the in-process cache)
over an environment it builds itself from a picklable factory, so agents on other machines of
a Ray cluster can share it. Ray is the distributed engine; ponder adds only this adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from search.protocols import ProofEnv, Theorem
from search.prover.cache import CacheCore, CacheEntry, StepProof, UpdateResult


class _CacheActor(CacheCore):
    def __init__(self, make_env: Callable[[], ProofEnv]) -> None:
        super().__init__(make_env())


def init_ray(address: str | None = None, **kwargs: Any) -> None:
    """Connects to ``address`` (a running cluster), else starts a small local Ray (once), which
    ends with this process (:mod:`models.ray_local`)."""
    import ray

    if ray.is_initialized():
        return
    if address is not None:
        ray.init(address=address, **kwargs)
        return
    from models.ray_local import start_local_ray

    start_local_ray(num_cpus=kwargs.pop("num_cpus", 1), include_dashboard=False, log_to_driver=False,
                    object_store_memory=kwargs.pop("object_store_memory", 100 * 1024 * 1024), **kwargs)


class RayProofCache:
    """:class:`search.prover.cache.ProofCache` over a Ray actor (one call at a time, so updates
    are serialised as in the in-process cache)."""

    def __init__(self, make_env: Callable[[], ProofEnv], *, address: str | None = None) -> None:
        import ray

        init_ray(address)
        self.actor = ray.remote(_CacheActor).options(max_concurrency=1).remote(make_env)

    async def register(self, theorem: Theorem, plan: Sequence[tuple[str, str]]) -> CacheEntry:
        return await self.actor.register.remote(theorem, list(plan))

    async def entry(self, name: str) -> CacheEntry:
        return await self.actor.entry.remote(name)

    async def progress(self, name: str) -> int:
        return await self.actor.progress.remote(name)

    async def prefix(self, name: str, upto: int) -> list[str]:
        return await self.actor.prefix.remote(name, upto)

    async def update(self, name: str, step: int, proof: StepProof) -> UpdateResult:
        return await self.actor.update.remote(name, step, proof)

    async def replan(self, name: str, progress: int, new_subgoals: Sequence[tuple[str, str]]) -> bool:
        return await self.actor.replan.remote(name, progress, list(new_subgoals))

    def close(self) -> None:
        import ray

        ray.kill(self.actor)
