"""Proof environments (``search.protocols.ProofEnv``): Coq (:mod:`verifiers.proof.coq`, real
coqtop / coqc) and the always-available equational one (:mod:`verifiers.proof.rewrite`), and
the theorem sets written for them (:mod:`verifiers.proof.theorems`)."""

from __future__ import annotations

from typing import Literal

from search.protocols import ProofEnv

EnvName = Literal["auto", "coq", "rewrite"]


def open_env(name: EnvName = "rewrite", *, num_workers: int = 2, tactic_timeout_s: float = 5.0) -> ProofEnv:
    """The named environment; ``auto``: Coq when it is installed, else ``rewrite``."""
    from verifiers.proof.coq import CoqConfig, CoqEnv, coq_available

    if name == "auto":
        name = "coq" if coq_available() is None else "rewrite"
    if name == "coq":
        return CoqEnv(CoqConfig(num_workers=num_workers, tactic_timeout_s=tactic_timeout_s))
    if name == "rewrite":
        from verifiers.proof.rewrite import RewriteConfig, RewriteEnv

        return RewriteEnv(RewriteConfig(num_workers=max(1, num_workers // 2), tactic_timeout_s=tactic_timeout_s))
    raise ValueError(f"invalid env={name!r}: expected auto, coq or rewrite")
