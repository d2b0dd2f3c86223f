"""Prover traces -> training rows (spec 04 §7): (state, tactic) SFT pairs along validated
proofs, and (state, proof tactic, errored tactic) preference triples (V1's DPO data).

A ``bfs_prover`` trace keeps in ``extra["cache"]`` the theorem's cache entry: the accepted
proof of every subgoal with per-tactic ``{state, tactic, seconds, logprob, tokens}`` and the
preference pairs found beside it. Only theorems whose full proof passed the final check
(``extra["status"] == "proved"``) give rows. V2's adaptive filter keeps tactics whose
perplexity exp(-mean token logprob) lies within ``z_band`` standard deviations of the mean
(both tails dropped; the cut-off is a parameter, the paper's was not available).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

from search.trace import SearchTrace
from training.export.formats import Rows

ALGORITHM = "bfs_prover"


def _proofs(trace: SearchTrace) -> list[dict]:
    if trace.algorithm != ALGORITHM or trace.extra.get("status") != "proved":
        return []
    return list(trace.extra.get("cache", {}).get("proofs", []))


def proof_sft_rows(traces: Iterable[SearchTrace], *, z_band: float | None = None) -> Rows:
    """``prompt`` = the proof state, ``completion`` = the tactic taken there on the validated proof."""
    out = Rows()
    candidates = []
    for trace in sorted(traces, key=lambda t: t.problem_id):
        for proof in _proofs(trace):
            for step in proof.get("steps", []):
                candidates.append((trace.problem_id, step))
    ppl = [math.exp(-s["logprob"]) for _, s in candidates]
    keep = [True] * len(candidates)
    if z_band is not None and len(ppl) >= 2:
        mean, std = statistics.fmean(ppl), statistics.pstdev(ppl)
        keep = [abs(p - mean) <= z_band * std for p in ppl]
    for (problem_id, step), ok in zip(candidates, keep):
        if ok:
            out.rows.append({"prompt": step["state"], "completion": step["tactic"], "problem_id": problem_id})
            out.step_chars.append(len(step["tactic"]))
            out.step_tokens.append(int(step.get("tokens", 0)))
    out.stats["dropped_by_perplexity_band"] = len(candidates) - sum(keep)
    out.notes.append("bfs_prover traces: (state, tactic) along final-checked proofs (spec 04 §7)")
    return out


def proof_pair_rows(traces: Iterable[SearchTrace]) -> Rows:
    """``prompt`` = state, ``chosen`` = the tactic on the validated proof, ``rejected`` = a
    tactic that errored from the same state; ``margin`` 1.0."""
    out, seen = Rows(), set()
    for trace in sorted(traces, key=lambda t: t.problem_id):
        for proof in _proofs(trace):
            for pair in proof.get("pairs", []):
                key = (trace.problem_id, pair["state"], pair["chosen"], pair["rejected"])
                if key in seen:
                    continue
                seen.add(key)
                out.rows.append({"prompt": pair["state"], "chosen": pair["chosen"], "rejected": pair["rejected"],
                                 "margin": 1.0, "problem_id": trace.problem_id})
                out.step_chars += [len(pair["chosen"]), len(pair["rejected"])]
    out.stats["mean_margin"] = 1.0 if out.rows else None
    out.notes.append("bfs_prover traces: proof tactic vs errored sibling tactic (V1 DPO, spec 04 §3)")
    return out
