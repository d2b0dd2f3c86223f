"""What a configured search needs from the run around it, checked when a config is loaded.

A config that cannot work is refused before any server starts, with one ``ConfigError`` that
names the field and the fix, instead of starting a server and recording every problem as an
error. The needs are declared where they arise:

- each algorithm config's ``needs()`` (``search.algorithms.common.Need``): a reward model for
  a search that scores steps with one (best-of-N; ``score``, ``priority`` or ``value:
  reward_model``), the gold-answer oracle (label mode only) for rollouts and terminal checks;
  ``backs_up_values`` says whether its tree carries MCTS Q;
- label generators read gold answers (label mode only); AlphaMath's targets are MCTS Q
  (``needs_backed_up_values``);
- the reward block itself (``ponder.config.RewardConfig``): self-evaluation is the policy (no
  server, checkpoint or name of its own), a pooling PRM needs a pooling server.

This module holds the checks; ``RunConfig`` and the loop's stage configs call them from their
validators, so ``ponder run``, ``solve``, ``label`` and ``loop`` all refuse at load (exit 2).
Configured checkpoints are checked on disk by the commands that load a config
(:func:`check_checkpoints`; not in the validators, which also read configs of other machines).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.algorithms import AlgorithmConfig
from search.protocols import ConfigError

REWARD_FIX = "add a reward: block, e.g. reward: {kind: self_eval} (the policy judges its own steps)"
"""The fix for a run config whose search needs a reward model."""
LABEL_MODE_FIX = "run it in label mode (mode: label, or `ponder label`) to make training data"
"""The fix for a run config whose search reads gold answers."""


def check_search(search: AlgorithmConfig, *, where: str, has_reward: bool, label_mode: bool,
                 reward_fix: str = REWARD_FIX, oracle_fix: str | None = LABEL_MODE_FIX) -> None:
    """Raises ConfigError when ``search`` needs what its run does not have.

    Args:
        search: The algorithm config.
        where: Its dotted place in the config file (``search``, ``eval.methods.bon``).
        has_reward: The run has a reward model.
        label_mode: The run is in label mode (its searches may read gold answers).
        reward_fix: How this config file supplies a reward model.
        oracle_fix: How this config file reaches label mode; None where it cannot (a
            held-out evaluation).
    """
    for need in search.needs():
        field = f"{where}.{need.field}"
        value = getattr(search, need.field)
        instead = f"set {where}.{need.instead}"
        if need.what == "reward_model" and not has_reward:
            raise ConfigError(field, value, f"{search.algorithm} scores steps with a reward model and this run has "
                              f"none: {reward_fix}, or {instead}")
        if need.what == "oracle" and not label_mode:
            fixes = f"{oracle_fix}, or {instead}" if oracle_fix else instead
            raise ConfigError(field, value, f"{search.algorithm} checks paths against the gold answer, which a "
                              f"search sees in label mode only: {fixes}")


def check_labels(labels: Sequence[Any], search: AlgorithmConfig, *, where: str, search_where: str,
                 label_mode: bool) -> None:
    """Raises ConfigError when label generators cannot run in this run: outside label mode,
    or reading MCTS Q off a tree that has none.

    Args:
        labels: The configured label generators (``search.labels.LabelConfig``).
        search: The search that grows the trees they label.
        where: The labels' dotted place (``labels``, ``label.labels``).
        search_where: The search's dotted place.
        label_mode: The run is in label mode.
    """
    if labels and not label_mode:
        raise ConfigError(where, [g.generator for g in labels], "label generators read gold answers, which exist "
                          "in label mode only: set mode: label (or run `ponder label`, which sets it), or remove "
                          f"{where}")
    for i, generator in enumerate(labels):
        if getattr(generator, "needs_backed_up_values", False) and not search.backs_up_values:
            raise ConfigError(f"{where}.{i}.generator", generator.generator,
                              f"its targets are MCTS Q backed up through the tree, and {search.algorithm} backs up "
                              f"none (every intermediate target would be empty): set {search_where}.algorithm to "
                              "mcts or rest_mcts, or use another generator (rover reads Q off any tree)")


def check_checkpoints(paths: dict[str, str | None]) -> None:
    """Raises ConfigError for a configured checkpoint that is not a checkpoint directory (no
    ``config.json``): checked when a command loads its config, not when its second server (a
    PRM's, a later round's) would start after the first one has.

    Args:
        paths: Dotted field -> configured path (None: not set, the embedded model).
    """
    for field, path in paths.items():
        if path is not None and not (Path(path).expanduser() / "config.json").is_file():
            what = "does not exist" if not Path(path).expanduser().exists() else "has no config.json"
            raise ConfigError(field, path, f"not a checkpoint directory ({what}): point {field} at a Hugging Face "
                              "checkpoint folder (e.g. the model/ folder `ponder train` wrote), or remove it")


def check_serving(model: Any, where: str = "model") -> None:
    """Raises ConfigError when the servers ponder would start for ``model`` (a
    ``ponder.config.ModelConfig``) cannot each get their share of this machine: replicas x
    tensor_parallel_size more than the GPUs visible, tensor parallelism without a GPU, more
    CPU replicas than cores. Checked when a command loads its config (this machine's GPUs and
    cores), not by the validators, which also read configs written for other machines."""
    if model.endpoints or model.cluster is not None:
        return
    from models.replicas import check_placement

    check_placement(model.replicas, model.server_settings(), where=where)


DRIVERS_FIX = "or set drivers: 1"
"""The way out of a sharded run that cannot work here."""


def check_drivers(drivers: int, model: Any, *, where: str = "drivers") -> None:
    """Raises ConfigError when ``drivers`` > 1 driver processes (``ponder.shards``) have no
    servers to share: one local server (neither ``model.endpoints``, ``model.replicas`` > 1
    nor ``model.cluster``) is one process's work, which one driver keeps busy.

    Args:
        drivers: The run's driver processes.
        model: Its ``ponder.config.ModelConfig``.
        where: The field's dotted place.
    """
    if drivers > 1 and not (model.endpoints or model.replicas > 1 or model.cluster is not None):
        raise ConfigError(where, drivers, "driver processes share the run's servers, and this run has one local "
                          "server, which one driver keeps busy: list the servers in model.endpoints, start several "
                          f"with model.replicas or model.cluster, {DRIVERS_FIX}")


def check_ray(drivers: int, where: str = "drivers") -> None:
    """Raises ConfigError when ``drivers`` > 1 and Ray, which runs the drivers, is not
    installed here (checked by the commands that load a config, not by the validators)."""
    import importlib.util

    if drivers > 1 and importlib.util.find_spec("ray") is None:
        raise ConfigError(where, drivers, "sharded runs run their drivers as Ray actors and Ray is not installed: "
                          f"install it (the ray extra of ponder, or pip install ray), {DRIVERS_FIX}")
