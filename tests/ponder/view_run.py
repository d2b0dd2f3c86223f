"""Recorded runs for the viewer's tests: the real engine (``ponder.run.run_config``, run dir,
traces, labels) with a scripted policy and reward model, no server.

The policy writes two thinking steps, then an answer step ending in EOS; sample i of a request
answers ``40 + 2 = 42`` when i is even and 41 when odd, so every tree holds right and wrong
leaves. The question "crash" makes the policy raise (an errored problem). The reward model
scores a step 0.9 when it mentions 42, else 0.3.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path

from ponder import run
from ponder.config import parse_run_config
from ponder.engine import Engine
from ponder_fakes import CharTokenizer
from search.protocols import Generation, Problem, Sampling, StepProposal, StepScores, Usage
from search.scheduler import BoundedPolicy

SOLVED = {"right": ("What is 40 + 2?", "42"), "wrong": ("What is 3 + 4?", "7"), "also": ("What is 41 + 1?", "42")}


class StepPolicy:
    def __init__(self) -> None:
        self.calls = 0

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        self.calls += 1
        text = "".join(chr(t) for t in prefix)
        if "crash" in text:
            raise RuntimeError("scripted crash")
        done = text.split("<assistant>", 1)[-1].count("\n\n")
        props = []
        for i in range(sampling.n):
            if done < 2:
                step = f"Think {done + 1}.{i}: add the numbers.\n\n"
                finish = "stop"
            else:
                step, finish = f"The answer is {42 if i % 2 == 0 else 41}.", "eos"
            ids = tuple(ord(c) for c in step)
            props.append(StepProposal(step, ids, tuple(-0.05 * (1 + i) for _ in ids), finish,
                                      text_offsets=tuple(range(len(step)))))
        return Generation(tuple(props), Usage(prompt_tokens=len(prefix), cached_prompt_tokens=len(prefix) // 2,
                                              generated_tokens=sum(len(p.token_ids) for p in props), calls=1))


class StepReward:
    async def score(self, problem: Problem, paths: Sequence[Sequence[str]], first: Sequence[int] | None = None
                    ) -> StepScores:
        starts = first or [0] * len(paths)
        rows = tuple(tuple(0.9 if "42" in s else 0.3 for s in path[start:]) for path, start in zip(paths, starts))
        return StepScores(rows, Usage(reward_tokens=sum(len(r) for r in rows)))


def fake_engine():
    @contextlib.asynccontextmanager
    async def open_engine(model, reward=None, on_event=None, **options):  # on_progress, warm: no server here
        yield Engine(client=None, tokenizer=CharTokenizer(), policy=BoundedPolicy(StepPolicy(), 8),
                     reward_model=StepReward(), system_prompt=None)

    return open_engine


def write_tasks(path: Path, with_crash: bool = True) -> Path:
    """The problems as a JSONL task file (ids in an ``id`` field), so the viewer can load the golds."""
    rows = [{"id": pid, "question": q, "answer": gold} for pid, (q, gold) in SOLVED.items()]
    if with_crash:
        rows.append({"id": "crashes", "question": "crash", "answer": "0"})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def record_run(run_dir: Path, monkeypatch, *, mode: str = "solve", **search) -> Path:
    """A finished MCTS run of the scripted engine in ``run_dir`` (label mode: Math-Shepherd labels)."""
    import asyncio

    monkeypatch.setattr(run, "open_engine", fake_engine())
    tasks = write_tasks(run_dir.parent / f"{run_dir.name}-tasks.jsonl", with_crash=mode == "solve")
    cfg = {"name": f"view-{mode}", "mode": mode, "run_dir": str(run_dir),
           "tasks": {"source": "jsonl", "path": str(tasks), "id_field": "id"},
           "search": {"algorithm": "mcts", "num_simulations": 6, "num_children": 2, "value": "reward_model",
                      **search},
           "reward": {"kind": "self_eval"}, "steps": {"max_depth": 4}}
    if mode == "label":
        cfg["labels"] = [{"generator": "math_shepherd", "num_rollouts": 2}]
    asyncio.run(run.run_config(parse_run_config(cfg)))
    return run_dir


class TacticPolicy:
    """A prover's scripted policy: for any proof state, the distinct tactics of the reference proof
    of the theorem the prompt names (so each attempt finds the proof, and tries the others too)."""

    async def propose(self, prefix: Sequence[int], sampling: Sampling) -> Generation:
        import re

        from verifiers.proof.theorems import REWRITE

        statement = re.search(r"Theorem: (.*)\n", "".join(chr(t) for t in prefix)).group(1)
        proof = next(s.proof for s in REWRITE if s.statement == statement)
        props = tuple(StepProposal(t + ".", tuple(ord(c) for c in t), (-0.1,) * len(t), "stop")
                      for t in list(dict.fromkeys(proof))[: sampling.n])
        return Generation(props, Usage(prompt_tokens=len(prefix), generated_tokens=sum(len(p.token_ids) for p in props),
                                       calls=1))


def record_prove_run(run_dir: Path, theorems: Sequence[str] = ("rw_expand_sq", "rw_sym_expand")) -> Path:
    """A finished ``ponder prove`` run (two agents, the sympy rewrite environment, scripted tactics)
    in ``run_dir``, through the real ``prove_all``."""
    import asyncio
    import types

    from ponder.prove import ProveConfig, prove_all, select_theorems
    from search.prover.agents import BfsProverConfig
    from search.prover.bfs import ProverConfig
    from verifiers.proof.rewrite import RewriteEnv

    search = BfsProverConfig(num_agents=2, max_calls=8, prover=ProverConfig(expansion_width=4, max_expansions=4))
    cfg = ProveConfig(env="rewrite", theorems=list(theorems), search=search, run_dir=str(run_dir))
    env = RewriteEnv()
    try:
        engine_ = types.SimpleNamespace(policy=TacticPolicy(), tokenizer=CharTokenizer())
        asyncio.run(prove_all(cfg, engine_, env, select_theorems(cfg)))
    finally:
        env.close()
    return run_dir
