"""Proof environments (``search.protocols.ProofEnv``): Coq (:mod:`verifiers.proof.coq`, real
coqidetop workers and coqc checks) and the always-available equational one
(:mod:`verifiers.proof.rewrite`); the theorem sets written for them
(:mod:`verifiers.proof.theorems`) and a user's ``.v`` file as theorems
(:mod:`verifiers.proof.vfile`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from search.protocols import ProofEnv

EnvName = Literal["auto", "coq", "rewrite"]


def open_env(name: EnvName = "rewrite", *, num_workers: int = 2, tactic_timeout_s: float = 5.0,
             coq_args: Sequence[str] = (), allowed_assumptions: Sequence[str] = (),
             check_timeout_s: float | None = None) -> ProofEnv:
    """The named environment; ``auto``: Coq when it is installed, else ``rewrite``. The
    ``coq_args`` / ``allowed_assumptions`` / ``check_timeout_s`` options are
    :class:`~verifiers.proof.coq.CoqConfig`'s (None: its default); ``rewrite`` ignores them."""
    from verifiers.proof.coq import CoqConfig, CoqEnv, coq_available

    if name == "auto":
        name = "coq" if coq_available() is None else "rewrite"
    if name == "coq":
        extra = {} if check_timeout_s is None else {"check_timeout_s": check_timeout_s}
        return CoqEnv(CoqConfig(num_workers=num_workers, tactic_timeout_s=tactic_timeout_s, coq_args=tuple(coq_args),
                                allowed_assumptions=tuple(allowed_assumptions), **extra))
    if name == "rewrite":
        from verifiers.proof.rewrite import RewriteConfig, RewriteEnv

        return RewriteEnv(RewriteConfig(num_workers=max(1, num_workers // 2), tactic_timeout_s=tactic_timeout_s))
    raise ValueError(f"invalid env={name!r}: expected auto, coq or rewrite")
