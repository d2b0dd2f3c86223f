"""Claims a reasoning step states, read from its text and checked with sympy in a worker.

Two stages, like the answer verifiers:

1. :func:`~verifiers.steps.reading.read_claims` (:mod:`verifiers.steps.reading`, in the
   caller's process, pure Python, no sympy): the step's text -> claims.
2. :func:`~verifiers.steps.checking.check_claim` (:mod:`verifiers.steps.checking`, in a
   :class:`verifiers.pool.WorkerPool` worker, hard timeout): one claim -> true, false or unchecked.
"""

from verifiers.steps.checking import MAX_PREMISES, check_claim
from verifiers.steps.reading import MAX_CLAIMS_PER_STEP, Claim, numbers, read_claims, unsupported

__all__ = ["MAX_CLAIMS_PER_STEP", "MAX_PREMISES", "Claim", "check_claim", "numbers", "read_claims", "unsupported"]
