"""Coq as a :class:`search.protocols.ProofEnv`: a pool of ``coqidetop`` workers and ``coqc`` checks.

Modules: :mod:`~verifiers.proof.coq.env` (``CoqEnv``: the ProofEnv, its pool of workers and
where a theorem lives), :mod:`~verifiers.proof.coq.worker` (one ``coqidetop`` session and its
document), :mod:`~verifiers.proof.coq.ide` (the client of Coq's XML protocol that a worker speaks),
:mod:`~verifiers.proof.coq.check` (the final check: ``coqc`` + ``Print Assumptions``) and
:mod:`~verifiers.proof.coq.config` (``CoqConfig``, whether Coq is installed).
"""

from verifiers.proof.coq.check import CLOSED, check_proof, read_assumptions, run_bounded
from verifiers.proof.coq.config import DEFAULT_PREAMBLE, CoqConfig, CoqUnavailable, coq_available, coqidetop_path
from verifiers.proof.coq.env import PLACEHOLDER, CoqEnv

__all__ = ["CLOSED", "DEFAULT_PREAMBLE", "PLACEHOLDER", "CoqConfig", "CoqEnv", "CoqUnavailable", "check_proof",
           "coq_available", "coqidetop_path", "read_assumptions", "run_bounded"]
