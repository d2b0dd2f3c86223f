"""The held-out split of planted solutions.

Split: a problem is held out iff ``sha256(task + "\\n" + question)``, read as an integer, mod
100 is below ``HELDOUT_PERCENT`` (50). The split depends on the question only -- never on a
seed -- so no seed, size or task order can move a held-out question into training data; a
trainer excludes held-out questions with :func:`is_heldout`.
"""

from __future__ import annotations

import hashlib
from typing import Literal

HELDOUT_PERCENT = 50
Split = Literal["heldout", "train"]


def is_heldout(task: str, question: str, percent: int = HELDOUT_PERCENT) -> bool:
    """Whether a problem belongs to the held-out split (see the module docstring)."""
    digest = hashlib.sha256(f"{task}\n{question}".encode()).hexdigest()
    return int(digest, 16) % 100 < percent
