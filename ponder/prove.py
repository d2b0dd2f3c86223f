"""`ponder prove`: theorems, a proof environment, prover agents on one engine, recorded like `ponder run`.

The theorems are a built-in set (``verifiers.proof.theorems``) or the lemmas of a user's Coq
file (``theorems: {file: F.v}``: those that end in ``Admitted.``, or the ones listed), each
proved in the file's own context (its Requires, definitions and earlier lemmas). Every theorem
runs as its own coroutine (at most ``max_concurrent_theorems`` at once) and all their agents'
tactic requests go to the engine's one ``BoundedPolicy``.

The run directory, its result lines and the summary are ``ponder run``'s
(``ponder.rundir.open_run``, ``ponder.run.result_row`` and ``summarize``): config.yaml,
results.jsonl (a line per finished theorem, ``usage`` with its wall seconds; a re-run skips
them and retries ``error`` lines), traces/NAME.json, events.jsonl, the lock. An
``EngineFault`` stops the run (the theorems in flight stay unfinished; a re-run resumes them).
From a file, ``proved.v`` in the run directory is a copy of it with the found proofs in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from ponder.config import ModelConfig, read_yaml, validated
from ponder.run import RunOutcome, result_row, summarize
from ponder.rundir import Recording, open_run
from search.protocols import (
    ConfigError,
    EngineFault,
    Interrupted,
    Problem,
    ProofEnv,
    Verdict,
    VerdictStatus,
)
from search.prover.agents import BfsProverConfig, ProveOutcome, gather_or_cancel, meter_record, prove_theorem
from search.prover.planner import PolicyPlanner
from search.trace import SearchResult
from verifiers.proof import EnvName, open_env
from verifiers.proof.theorems import TheoremSpec, theorem_set


class TheoremFile(BaseModel):
    """The lemmas of a user's Coq file to prove."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(description="A Coq .v file; each lemma is proved in its context (Requires, definitions, "
                      "the lemmas before it).")
    lemmas: list[str] = Field(default_factory=list, description="Lemmas to prove; empty: every one that ends in "
                              "`Admitted.`.")


class ProveConfig(BaseModel):
    """A `ponder prove` run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("prove", description="Run name; the default run_dir is runs/<name>.")
    env: EnvName = Field("auto", description="Proof environment: coq, rewrite, or auto (Coq when installed).")
    theorems: list[str] | TheoremFile = Field(
        default_factory=list, description="Names from the built-in set (empty: the whole set), or "
        "{file: F.v, lemmas: [...]}: a Coq file's lemmas.")
    limit: int | None = Field(None, ge=1, description="Prove at most this many theorems.")
    search: BfsProverConfig = Field(default_factory=BfsProverConfig, description="Agents, planner, budget.")
    cache: Literal["local", "ray"] = Field("local", description="Proof cache: in-process, or a Ray actor.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Policy server (default: the embedded model).")
    env_workers: int = Field(2, ge=1, le=64, description="Proof-assistant worker processes.")
    tactic_timeout_s: float = Field(5.0, gt=0, description="Per-tactic limit in seconds.")
    max_concurrent_theorems: int = Field(4, ge=1, description="Theorems searched at once.")
    run_dir: str | None = Field(None, description="Run directory; default runs/NAME.")

    @pydantic.model_validator(mode="after")
    def _a_file_is_coq(self) -> ProveConfig:
        if isinstance(self.theorems, TheoremFile):
            if self.env == "rewrite":
                raise ConfigError("env", self.env, "a .v file is proved in Coq: set env: coq (or auto)")
            if self.cache == "ray":
                raise ConfigError("cache", self.cache, "a file's lemmas use a local proof cache: set cache: local")
        return self

    @property
    def resolved_env(self) -> str:
        from verifiers.proof.coq import coq_available

        if isinstance(self.theorems, TheoremFile):
            return "coq"
        return ("coq" if coq_available() is None else "rewrite") if self.env == "auto" else self.env

    @property
    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir or f"runs/{self.name}")


OPTION_FIELDS: dict[str, str] = {
    "env": "env", "agents": "search.num_agents", "planner": "search.planner", "share": "search.share_cache",
    "max_calls": "search.max_calls", "limit": "limit", "cache": "cache", "run_dir": "run_dir", "seed": "search.seed",
    "name": "name",
}
"""`ponder prove` options -> the config fields they set (over the YAML's)."""

OPTION_DEFAULTS: dict[str, Any] = {"search": {"max_calls": 16, "seed": 0}}
"""What `ponder prove` without a config uses where the config's defaults differ."""


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        child = data.get(key)
        data[key] = child = dict(child) if isinstance(child, dict) else {}
        data = child
    data[last] = value


def load_prove_config(target: str | Path | None = None, options: dict[str, Any] | None = None) -> ProveConfig:
    """The config of a `ponder prove` invocation; raises ``ConfigError`` naming the field.

    ``target``: a YAML config (configs/prove.yaml), a Coq ``.v`` file (its Admitted lemmas),
    or None (the built-in set, run dir runs/prove-ENV). ``options`` (None values ignored) set
    the fields of ``OPTION_FIELDS`` over the target's; ``theorems`` (names) and ``endpoint``
    too: names select lemmas of a file or members of the built-in set.
    """
    given = {k: v for k, v in (options or {}).items() if v is not None and v != []}
    path = Path(target) if target is not None else None
    if path is None:
        env = given.get("env", "auto")
        data: dict[str, Any] = {**OPTION_DEFAULTS, "run_dir": f"runs/prove-{env}"}
    elif path.suffix == ".v":
        if not path.is_file():
            raise ConfigError("file", str(path), "file not found")
        data = {**OPTION_DEFAULTS, "name": f"prove-{path.stem}", "env": "coq", "theorems": {"file": str(path)}}
    else:
        data = read_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError("config", str(path), "the top level must be a mapping")
    for option, value in given.items():
        if option == "theorems":
            key = "theorems.lemmas" if isinstance(data.get("theorems"), dict) else "theorems"
            _set(data, key, list(value))
        elif option == "endpoint":
            _set(data, "model.endpoints", [value])
        elif option in OPTION_FIELDS:
            _set(data, OPTION_FIELDS[option], value)
        else:
            raise ConfigError(option, value, f"not a `ponder prove` option ({', '.join(OPTION_FIELDS)})")
    cfg = validated(ProveConfig, data)
    select_theorems(cfg)  # names that do not exist fail here, before anything starts
    return cfg


def select_theorems(cfg: ProveConfig) -> list[TheoremSpec]:
    """The theorems a config names, in order: members of the built-in set, or a file's lemmas
    (``verifiers.proof.vfile.read_vfile``: each with its file context). Raises a
    ``PonderError`` naming what is not there."""
    if isinstance(cfg.theorems, TheoremFile):
        from verifiers.proof.vfile import read_vfile

        specs = read_vfile(cfg.theorems.file, cfg.theorems.lemmas)
        if not specs:
            raise ConfigError("theorems.file", cfg.theorems.file, "no lemma there ends in `Admitted.`: name the "
                              "lemmas to prove in theorems.lemmas (--theorem)")
    else:
        specs = list(theorem_set(cfg.resolved_env))
        if cfg.theorems:
            known = {s.name: s for s in specs}
            missing = [n for n in cfg.theorems if n not in known]
            if missing:
                raise ConfigError("theorems", missing, f"not in the {cfg.resolved_env} set")
            specs = [known[n] for n in cfg.theorems]
    return specs[: cfg.limit] if cfg.limit else specs


def prove_row(spec: TheoremSpec, outcome: ProveOutcome | BaseException, result: SearchResult | None = None,
              engine_events: dict[str, int] | None = None) -> dict[str, Any]:
    """A theorem's result line: ``ponder run``'s row (``ponder.run.result_row``: answer = the
    proof's tactics, one a line; ``usage`` with wall seconds) with the prover's fields: status
    proved / unproved, the proof, the final check's message, tactic runs and their seconds."""
    problem = Problem(spec.name, spec.statement)
    extra: dict[str, Any] = {"grade": spec.grade, "statement": spec.statement}
    if isinstance(outcome, BaseException) or result is None:
        return {**result_row(problem, outcome, None, engine_events), **extra}
    verdict = Verdict(VerdictStatus.CORRECT if outcome.proved else VerdictStatus.INCORRECT, result.answer, outcome.check)
    m = meter_record(outcome.meter)
    return {**result_row(problem, result, verdict, engine_events), **extra,
            "status": "proved" if outcome.proved else "unproved", "proof": outcome.proof, "validation": outcome.check,
            "budget_exhausted": outcome.meter.exhausted(),
            "tactic_calls": m["tactic_calls"], "env_seconds": m["env_seconds"],
            "generation_seconds": m["generation_seconds"], "cache_hits": outcome.cache_hits,
            "attempts": len(outcome.attempts), "replans": outcome.entry.replans}


def summarize_prove(rows: list[dict[str, Any]], wall_seconds: float,
                    engine_stats: dict[str, int] | None = None) -> dict[str, Any]:
    """``ponder run``'s summary (``ponder.run.summarize``: problems, accuracy, errors, tokens,
    calls, wall) and the prover's totals: theorems proved, tactic runs, seconds in the
    environment and waiting on generation, cache hits."""
    ok = [r for r in rows if r.get("status") != "error"]
    return {**summarize(rows, wall_seconds, engine_stats),
            "proved": sum(bool(r["correct"]) for r in ok),
            "tactic_calls": sum(r.get("tactic_calls", 0) for r in ok),
            "env_seconds": round(sum(r.get("env_seconds", 0.0) for r in ok), 2),
            "generation_seconds": round(sum(r.get("generation_seconds", 0.0) for r in ok), 2),
            "cache_hits": sum(r.get("cache_hits", 0) for r in ok)}


def _cache_factory(cfg: ProveConfig, env_name: str) -> Callable | None:
    if cfg.cache == "local":
        return None
    from functools import partial

    from ponder.ray_cache import RayProofCache

    return lambda: RayProofCache(partial(open_env, env_name, num_workers=1, tactic_timeout_s=cfg.tactic_timeout_s))


def _config_record(cfg: ProveConfig) -> dict[str, Any]:
    return {**cfg.model_dump(mode="json"), "env": cfg.resolved_env}


def _resolved_record(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved prove config under today's ProveConfig (fields added since take their defaults)."""
    return _config_record(validated(ProveConfig, saved))


def _unfinished(specs: list[TheoremSpec], done: dict[str, dict[str, Any]]) -> list[TheoremSpec]:
    """Theorems without a finished row (one whose statement changed since, in an edited file, is redone)."""
    return [s for s in specs if s.name not in done or done[s.name].get("statement", s.statement) != s.statement]


async def _prove_into(rec: Recording, cfg: ProveConfig, engine: Any, env: ProofEnv, specs: list[TheoremSpec],
                      on_row: Callable[[dict[str, Any]], None] | None) -> int:
    """Proves the unfinished theorems of ``specs`` into ``rec``; returns how many were already done."""
    env_name = cfg.resolved_env
    todo = _unfinished(specs, rec.done)
    gate = asyncio.Semaphore(cfg.max_concurrent_theorems)
    factory = _cache_factory(cfg, env_name)
    seed = cfg.search.seed
    stats = getattr(engine, "stats", dict)
    index = {s.name: i for i, s in enumerate(specs)}

    async def one(spec: TheoremSpec) -> None:
        async with gate:
            i = index[spec.name]
            search = cfg.search if seed is None else cfg.search.model_copy(update={"seed": seed + 1000 * i})
            planner = PolicyPlanner(engine.policy, engine.tokenizer, env_name) if search.planner else None
            before = stats()
            try:
                outcome: ProveOutcome | Exception = await prove_theorem(
                    spec.theorem(), env, engine.policy, engine.tokenizer, search, cache_factory=factory,
                    planner=planner)
            except (EngineFault, Interrupted, asyncio.CancelledError):
                raise
            except Exception as err:  # noqa: BLE001 - a crashed search is an error row, retried on resume
                outcome = err
            during = {k: v - before.get(k, 0) for k, v in stats().items()} or None
            result = None
            if isinstance(outcome, ProveOutcome):
                if planner is not None:
                    outcome.plans.insert(0, {"planner_texts": planner.texts, "planner_calls": planner.calls,
                                             "planner_tokens": planner.generated_tokens})
                result = outcome.to_result()
            row = prove_row(spec, outcome, result, during)
            problem = Problem(spec.name, spec.statement)
            trace_fn = None if result is None else (lambda: result.to_trace(problem).model_dump(mode="json"))
            await rec.record(row, trace_fn)
            if on_row is not None:
                on_row(row)

    await rec.until_stopped(gather_or_cancel([one(s) for s in todo]), len(specs))
    return len(specs) - len(todo)


@dataclasses.dataclass
class ProveRun(RunOutcome):
    """What a prove run did: ``ponder run``'s outcome (the directory's rows of the selected
    theorems, errored ones included), the environment, and from a file the copy with the
    proofs in place (``proved_file``; None when nothing is proved)."""

    env: str = ""
    proved_file: Path | None = None


async def prove_all(cfg: ProveConfig, engine: Any, env: ProofEnv, specs: list[TheoremSpec],
                    on_row: Callable[[dict[str, Any]], None] | None = None) -> ProveRun:
    """Proves every unfinished theorem of ``specs`` into the config's run directory with an
    engine and an environment already open (``ponder bench prove`` runs several configs on
    one of each)."""
    start = time.perf_counter()
    async with open_run(cfg.resolved_run_dir, _config_record(cfg), resolve=_resolved_record) as rec:
        stats = getattr(engine, "stats", dict)
        rec.stats_fn = stats
        skipped = await _prove_into(rec, cfg, engine, env, specs, on_row)
        return _finish(cfg, specs, rec, skipped, time.perf_counter() - start,
                       getattr(engine.policy, "peak_in_flight", 0), stats())


def _finish(cfg: ProveConfig, specs: list[TheoremSpec], rec: Recording, skipped: int, wall: float, peak: int,
            stats: dict[str, int]) -> ProveRun:
    rows = rec.run_dir.rows()
    return ProveRun([rows[s.name] for s in specs if s.name in rows], skipped, wall, peak, stats,
                    cfg.resolved_env, write_proved_file(cfg, specs, rows))


@contextlib.contextmanager
def opened_env(cfg: ProveConfig) -> Iterator[ProofEnv]:
    """The config's proof environment, closed when the block ends."""
    env = open_env(cfg.resolved_env, num_workers=cfg.env_workers, tactic_timeout_s=cfg.tactic_timeout_s)
    try:
        yield env
    finally:
        getattr(env, "close", lambda: None)()


def write_proved_file(cfg: ProveConfig, specs: list[TheoremSpec], rows: dict[str, dict[str, Any]]) -> Path | None:
    """From a file: RUN_DIR/proved.v, the file with the proof of every lemma proved so far (this
    invocation or an earlier one) in place; None when the theorems are not from a file or none
    is proved."""
    if not isinstance(cfg.theorems, TheoremFile):
        return None
    from verifiers.proof.guard import normalize_tactic
    from verifiers.proof.vfile import write_proofs_file

    proofs = {s.name: [normalize_tactic(t) for t in rows[s.name]["proof"]] for s in specs
              if rows.get(s.name, {}).get("correct") and rows[s.name].get("statement") == s.statement}
    if not proofs:
        return None
    return write_proofs_file(cfg.theorems.file, cfg.resolved_run_dir / "proved.v", proofs, specs)


async def run_prove(cfg: ProveConfig, on_row: Callable[[dict[str, Any]], None] | None = None,
                    on_event: Callable[[dict[str, Any]], None] | None = None,
                    on_progress: Callable[[str], None] | None = None) -> ProveRun:
    """`ponder prove`: opens the run directory, the environment and the engine (its outages
    and restarts logged to events.jsonl and passed to ``on_event``; its start-up phases and
    warm-up to ``on_progress``), proves the selected theorems, closes them; from a file,
    writes ``proved.v``. The wall time counts from when the server is up and warm, as in
    ``ponder run``."""
    from ponder.engine import open_engine

    specs = select_theorems(cfg)
    async with open_run(cfg.resolved_run_dir, _config_record(cfg), on_event, resolve=_resolved_record) as rec:
        with opened_env(cfg) as env:
            async with open_engine(cfg.model, on_event=rec.event, on_progress=on_progress) as engine:
                rec.stats_fn = engine.stats
                start = time.perf_counter()
                skipped = await _prove_into(rec, cfg, engine, env, specs, on_row)
                wall, peak, stats = time.perf_counter() - start, engine.policy.peak_in_flight, engine.stats()
        return _finish(cfg, specs, rec, skipped, wall, peak, stats)
