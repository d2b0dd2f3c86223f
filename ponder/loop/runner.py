"""`ponder loop`: rounds of label -> train PRM -> train policy -> evaluate, resumable per stage.

Round 0 judges and evaluates the base models. Round r >= 1:

1. ``label``: label-mode search of the training problems with round r-1's policy (and PRM, if
   the label search scores steps), the configured generators, then the PRM and SFT datasets
   (the PRM's: one generator's labels, or a mix of several and planted-error rows);
2. ``train_prm``: the generative PRM, from round r-1's PRM, on that dataset;
   ``judge``: round r's PRM on a small held-out planted set (``judge``; off with ``judge: null``);
3. ``train_policy``: round r-1's policy trained by ``policy_recipe``: SFT on the correct
   solutions (default), DPO on the label run's step pairs, or on-policy (grpo / treepo /
   rover, :mod:`ponder.rl`) on the training problems, each round's checkpoint served;
4. ``eval``: every method on the held-out problems at the same budget, with round r's models.

Each stage is a directory with a done marker (``ponder.loop.stages``); after each round the
report is rewritten (``ponder.loop.report``). A stage starts servers for its checkpoints (the
policy's, and the PRM's when it is another model) and stops them when it ends; its runs use
them as endpoints.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import filelock
import yaml

from ponder.config import ModelConfig, RewardConfig, RunConfig, validated
from ponder.interrupts import in_thread
from ponder.loop.config import LoopConfig
from ponder.loop.judge import JUDGE_FILE
from ponder.loop.stages import Stage, StageResult, done_marker, run_rounds, stage_dir
from ponder.rundir import SERVING_FIELDS, config_changes
from search.protocols import ConfigError, PonderError
from verifiers.tasks import TaskSet, load_tasks


class LoopDirError(PonderError):
    """The loop directory holds another loop, or another command is using it."""


def shared_questions(train: TaskSet, held_out: TaskSet) -> list[str]:
    """Ids of held-out problems whose question (whitespace-normalised) is a training question."""
    seen = {" ".join(p.question.split()) for p in train.problems}
    return [p.id for p in held_out.problems if " ".join(p.question.split()) in seen]


def check_disjoint(train: TaskSet, held_out: TaskSet) -> None:
    """Raises ConfigError when a held-out question is also a training question."""
    shared = shared_questions(train, held_out)
    if shared:
        raise ConfigError("eval_tasks", shared[:3], f"{len(shared)} held-out questions are also training "
                          "questions (change a seed or set drop_shared_eval: true)")


class Loop:
    """One loop directory: its config, task sets, checkpoints by round, and stages."""

    def __init__(self, cfg: LoopConfig, train: TaskSet | None = None, held_out: TaskSet | None = None,
                 on_progress: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.on_progress = on_progress
        """Told what a stage's start-up is doing (its servers' phases, warm-ups, searches)."""
        self.dir = cfg.resolved_loop_dir
        self.train = train or load_tasks(cfg.train_tasks)
        self.held_out = held_out or load_tasks(cfg.eval_tasks)
        self.dropped = shared_questions(self.train, self.held_out) if cfg.drop_shared_eval else []
        if self.dropped:
            self.held_out = self.held_out.without(self.dropped)
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "dropped_eval.json").write_text(json.dumps(self.dropped))
        check_disjoint(self.train, self.held_out)

    # -- checkpoints -----------------------------------------------------------------------
    def base_policy(self) -> Path:
        if self.cfg.base_policy:
            return Path(self.cfg.base_policy)
        from models.embedded import embedded_checkpoint

        return Path(embedded_checkpoint())

    def policy(self, r: int) -> Path:
        """Round r's policy: the base for round 0, else round r's SFT result."""
        return self.base_policy() if r == 0 else stage_dir(self.dir, r, "train_policy") / "run" / "model"

    def prm(self, r: int) -> Path:
        """Round r's PRM: the base judge for round 0, else round r's trained PRM."""
        if r == 0:
            return Path(self.cfg.base_prm) if self.cfg.base_prm else self.base_policy()
        return stage_dir(self.dir, r, "train_prm") / "run" / "model"

    def _named(self, name: str) -> Callable[[str], None] | None:
        """``on_progress`` with the evaluated method's name in front."""
        say = self.on_progress
        return None if say is None else (lambda message: say(f"{name}: {message}"))

    # -- servers and run configs -----------------------------------------------------------
    def _reward(self, r: int) -> RewardConfig:
        prm = self.prm(r)
        same = prm.resolve() == self.policy(r).resolve()  # judge = policy: share its server
        return RewardConfig(kind="generative_prm", checkpoint=None if same else str(prm))

    def policy_model(self, r: int) -> ModelConfig:
        """The loop's model block for round r's policy: its checkpoint, the loop's system prompt
        and requests in flight."""
        return self.cfg.model.model_copy(update={"checkpoint": str(self.policy(r)),
                                                 "system_prompt": self.cfg.system_prompt,
                                                 "max_in_flight": self.cfg.max_in_flight})

    @contextlib.contextmanager
    def serving(self, r: int, with_prm: bool) -> Iterator[tuple[ModelConfig, RewardConfig | None]]:
        """Servers of round r's policy (and PRM) for one stage: the policy's as the loop's model
        block says (one server, ``replicas`` on this machine, or a Ray ``cluster``). Every run of
        the stage uses them as endpoints (this process started them, so a dead one is restarted
        by the run that finds it, models.managed.own_restart_fns); stopped when the stage ends."""
        from models.managed import ensure_server
        from ponder.engine import model_endpoints

        reward = self._reward(r) if with_prm else None
        with contextlib.ExitStack() as stack:
            block = self.policy_model(r)
            served = stack.enter_context(model_endpoints(block, self.on_progress))
            model = block.model_copy(update={"endpoints": served.endpoints, "model": served.name, "replicas": 1,
                                             "cluster": None})
            if reward is not None and reward.checkpoint is not None:
                judge = stack.enter_context(ensure_server(Path(reward.checkpoint), on_progress=self.on_progress))
                reward = reward.model_copy(update={"endpoints": [judge.endpoint], "model": judge.record.model})
            yield model, reward

    def run_config(self, r: int, run_dir: Path, model: ModelConfig, **fields: Any) -> RunConfig:
        return RunConfig(name=f"{self.cfg.name}-r{r}", run_dir=str(run_dir), steps=self.cfg.steps, model=model,
                         max_concurrent_problems=self.cfg.max_concurrent_problems,
                         temperature=self.cfg.temperature, **fields)

    # -- stages ----------------------------------------------------------------------------
    async def label(self, r: int, directory: Path) -> StageResult:
        from ponder.run import run_config
        from training.export import export_run

        lab = self.cfg.label
        with self.serving(r - 1, lab.uses_reward) as (model, reward):
            cfg = self.run_config(r - 1, directory / "run", model, mode="label", tasks=self.cfg.train_tasks,
                                  search=lab.search, budget=lab.budget, labels=lab.labels, reward=reward)
            outcome = await run_config(cfg, tasks=self.train, on_progress=self.on_progress)
        prm_paths = [export_run(cfg.resolved_run_dir, ["prm"], directory / "datasets", g, lab.soft_labels)["prm"]
                     for g in lab.prm_generators]
        prm = {"prm": prm_paths[0]}
        mix = None
        if lab.mixed:
            from training.export.planted import mix_prm_datasets

            task = getattr(self.cfg.train_tasks, "name", None)
            mix = mix_prm_datasets(prm_paths, directory / "datasets" / "prm_mix", soft=lab.soft_labels,
                                   planted=lab.planted.rows() if lab.planted is not None else None, heldout_task=task)
            prm = {"prm": Path(mix["path"])}
        sft = export_run(cfg.resolved_run_dir, ["sft"], directory / "datasets", tasks=self.train)
        if self.cfg.policy_recipe == "dpo":
            sft.update(export_run(cfg.resolved_run_dir, ["pairs"], directory / "datasets", lab.prm_generators[0]))
        tokens = sum(row["usage"]["generated_tokens"] + row.get("label_usage", {}).get("generated_tokens", 0)
                     for row in outcome.rows)
        calls = sum(row["usage"]["calls"] + row.get("label_usage", {}).get("calls", 0) for row in outcome.rows)
        labels = sum(row.get("labels", 0) for row in outcome.rows)
        outputs = {"run_dir": str(cfg.resolved_run_dir), "prm_dataset": str(prm["prm"]),
                   "sft_dataset": str(sft["sft"]), "labels": labels}
        if "pairs" in sft:
            outputs["dpo_dataset"] = str(sft["pairs"])
        if mix is not None:
            outputs["prm_mix"] = {k: v for k, v in mix.items() if k != "path"}
        return StageResult(outputs, tokens, calls)

    async def train_prm(self, r: int, directory: Path) -> StageResult:
        from training.train.prm import PRMTrainConfig, train_prm

        marker = done_marker(self.dir, r, "label") or {}
        data = Path(marker.get("outputs", {}).get("prm_dataset") or
                    stage_dir(self.dir, r, "label") / "datasets" / f"prm_{self.cfg.label.prm_generators[0]}")
        config = PRMTrainConfig(dataset=data, base=self.prm(r - 1), out=directory / "run", **self.cfg.train_prm)
        result = await in_thread(train_prm, config)
        return StageResult({"model_dir": str(result.model_dir), "metrics": result.metrics})

    async def judge(self, r: int, directory: Path) -> StageResult:
        """Round r's PRM on the held-out planted set of ``judge`` (``ponder.loop.judge``):
        the PRM's checkpoint served alone, scored as the evaluation's searches score steps;
        ``judge.json`` holds the numbers the report shows."""
        from ponder.engine import open_engine
        from ponder.loop.judge import judge_planted

        assert self.cfg.judge is not None
        model = self.policy_model(r).model_copy(update={"checkpoint": str(self.prm(r)), "replicas": 1, "cluster": None})
        async with open_engine(model, RewardConfig(kind="generative_prm"), on_progress=self.on_progress,
                               warm=False) as engine:
            result = await judge_planted(engine.reward_model, self.cfg.judge)
        result["prm"] = str(self.prm(r))
        (directory / JUDGE_FILE).write_text(json.dumps(result, indent=1, default=str) + "\n")
        overall = result["overall"]
        return StageResult({"judge": str(directory / JUDGE_FILE), "step_auroc": overall["step_auroc"],
                            "first_error_accuracy": overall["first_error_accuracy"]})

    async def train_policy(self, r: int, directory: Path) -> StageResult:
        """Round r's policy from round r-1's by ``policy_recipe`` (prompted as it is served)."""
        recipe = self.cfg.policy_recipe
        fields = {"system_prompt": self.cfg.system_prompt, **self.cfg.train_policy}
        base, out = self.policy(r - 1), directory / "run"
        if recipe in ("grpo", "treepo", "rover"):
            from ponder.rl import train_policy_rl
            from training.rl import RLTrainConfig

            config = RLTrainConfig(recipe=recipe, base=base, out=out, tasks=self.cfg.train_tasks, **fields)
            model = ModelConfig(system_prompt=self.cfg.system_prompt, max_in_flight=self.cfg.max_in_flight)
            result = await in_thread(train_policy_rl, config, self.train, model)
            return StageResult({"model_dir": str(result.model_dir), "metrics": result.metrics})
        from training.train.policy import DPOTrainConfig, SFTTrainConfig, train_dpo, train_sft

        label = stage_dir(self.dir, r, "label")
        if recipe == "dpo":
            data = Path(done_marker(self.dir, r, "label")["outputs"]["dpo_dataset"])
            result = await in_thread(train_dpo, DPOTrainConfig(dataset=data, base=base, out=out, **fields))
        else:
            data = label / "datasets" / "sft"
            result = await in_thread(train_sft, SFTTrainConfig(dataset=data, base=base, out=out, **fields))
        return StageResult({"model_dir": str(result.model_dir), "metrics": result.metrics})

    async def evaluate(self, r: int, directory: Path) -> StageResult:
        from ponder.run import run_config, summarize

        ev = self.cfg.eval
        outputs: dict[str, Any] = {}
        tokens = calls = 0
        with self.serving(r, any(m in ev.prm_methods for m in ev.methods)) as (model, reward):
            for name, search in ev.methods.items():
                cfg = self.run_config(r, directory / name, model, tasks=self.cfg.eval_tasks, search=search,
                                      budget=ev.budget, reward=reward if name in ev.prm_methods else None)
                outcome = await run_config(cfg, tasks=self.held_out, on_progress=self._named(name))
                summary = summarize(outcome.rows, outcome.wall_seconds)
                outputs[name] = {"accuracy": summary["accuracy"], "problems": summary["problems"],
                                 "errors": summary["errors"], "generated_tokens": summary["generated_tokens"],
                                 "wall_seconds": round(outcome.wall_seconds, 1)}
                tokens += int(summary["generated_tokens"])
                calls += int(summary["calls"])
        return StageResult(outputs, tokens, calls)

    def stages(self, r: int) -> list[Stage]:
        def bind(fn: Callable[[int, Path], Any]) -> Callable[[Path], Any]:
            return lambda directory: fn(r, directory)

        judge = [Stage("judge", bind(self.judge))] if self.cfg.judge is not None else []
        if r == 0:
            return [*judge, Stage("eval", bind(self.evaluate))]
        return [Stage("label", bind(self.label)), Stage("train_prm", bind(self.train_prm)), *judge,
                Stage("train_policy", bind(self.train_policy)), Stage("eval", bind(self.evaluate))]


def _resolved_loop(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved loop.yaml under today's LoopConfig (fields added since take their defaults)."""
    return validated(LoopConfig, saved).model_dump(mode="json", exclude={"rounds"})


@contextlib.contextmanager
def loop_dir_lock(cfg: LoopConfig) -> Iterator[Path]:
    """Holds LOOP_DIR for one command; writes ``loop.yaml`` or checks a resume matches it."""
    directory = cfg.resolved_loop_dir
    directory.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(directory / ".lock"), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LoopDirError(f"{directory} is in use by another command") from None
    try:
        saved = directory / "loop.yaml"
        data = cfg.model_dump(mode="json", exclude={"rounds"})
        if saved.exists():
            changed = config_changes(yaml.safe_load(saved.read_text()), data, SERVING_FIELDS, resolve=_resolved_loop)
            if changed:
                raise LoopDirError(f"{directory} holds a loop with a different config ({', '.join(changed[:5])}); "
                                   "use another loop_dir")
        saved.write_text(yaml.safe_dump(data, sort_keys=False))
        yield directory
    finally:
        lock.release()


async def run_loop(cfg: LoopConfig, on_stage: Callable[[dict[str, Any]], None] | None = None,
                   loop: Loop | None = None, on_progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Runs (or resumes) every round; the report is rewritten after each round.

    ``rounds`` may grow between runs of the same loop (the rest of the config may not).
    ``on_progress`` is told what a stage's start-up is doing (servers, warm-ups, searches).
    """
    from ponder.loop.report import write_report

    with loop_dir_lock(cfg) as directory:
        loop = loop or Loop(cfg, on_progress=on_progress)
        return await run_rounds(directory, cfg.rounds, loop.stages, lambda r: write_report(directory), on_stage)
