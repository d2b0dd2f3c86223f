"""Solutions with known first errors, for judging step judges (``ponder bench prm``).

From reasoning-gym problems, a correct multi-step solution is built from the task's own
structure, one operation per step, and a copy of it gets one step corrupted; every later
step follows from the error (it computes correctly from the wrong value), so the planted
step is the first error and the only one.

Modules: :mod:`~verifiers.planted.solutions` (``planted_solutions``: reasoning-gym problems ->
pairs of solutions), one builder per task kind (:mod:`~verifiers.planted.arithmetic`,
:mod:`~verifiers.planted.equations`, :mod:`~verifiers.planted.gsm`), the corruption kinds
(:mod:`~verifiers.planted.corruptions`) and the held-out split (:mod:`~verifiers.planted.split`).
"""

from verifiers.planted.arithmetic import arithmetic_steps, show
from verifiers.planted.corruptions import CORRUPTIONS, Corruption
from verifiers.planted.equations import equation_steps
from verifiers.planted.gsm import gsm_steps
from verifiers.planted.solutions import TASKS, PlantedSolution, planted_solutions
from verifiers.planted.split import HELDOUT_PERCENT, Split, is_heldout

__all__ = ["CORRUPTIONS", "HELDOUT_PERCENT", "TASKS", "Corruption", "PlantedSolution", "Split", "arithmetic_steps",
           "equation_steps", "gsm_steps", "is_heldout", "planted_solutions", "show"]
