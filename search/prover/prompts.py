"""What the policy sees when asked for a tactic or a plan, and how its reply becomes one."""

from __future__ import annotations

import re

from search.protocols import ProofState

HINTS = {
    "coq": "Useful tactics: intros, simpl, reflexivity, induction n, destruct b, rewrite H, apply H, auto, lia.",
    "rewrite": ("Tactics: ring_nf (expand the left side, once per goal), reflexivity, symmetry, "
                "rewrite A = B (an identity on part of a side), rewrite h, assert (h : A = B)."),
}


def tactic_prompt(env_name: str, state: ProofState, *, focus: bool = True, statement: str = "") -> str:
    """The user turn asking for the next tactic: the (first) goal, and the environment's hints.

    With ``focus`` only the first goal is shown (V2's focus mode, spec 04 §4 step 2).
    """
    goal = state.goals[0] if focus and state.goals else state.text
    lines = [f"Prove the goal in {'Coq' if env_name == 'coq' else 'the ' + env_name + ' prover'}. "
             "Reply with exactly one tactic on one line.", HINTS.get(env_name, ""), "", "Goal:", goal, "", "Tactic:"]
    if statement:
        lines[2:2] = ["", f"Theorem: {statement}"]
    return "\n".join(lines)


def plan_prompt(env_name: str, statement: str, proven: list[tuple[str, str]], stuck: tuple[str, str] | None) -> str:
    """The planner's user turn (spec 04 §4): intermediate subgoals as ``assert (name : statement).``
    lines without proofs; when replanning, the proven ones are given to be kept verbatim."""
    lines = [f"Theorem: {statement}",
             "Write a plan of intermediate steps, one per line, each as `assert (hN : statement).` "
             "with no proof. Use as many small steps as possible; the last step should make the "
             "theorem easy."]
    if proven:
        lines += ["Already proven (keep them, do not repeat them):",
                  *(f"assert ({n} : {s})." for n, s in proven)]
    if stuck is not None:
        lines.append(f"This step could not be proven; correct or decompose it: assert ({stuck[0]} : {stuck[1]}).")
    lines.append("Plan:")
    return "\n".join(lines)


_PLAN_LINE = re.compile(r"assert\s*\(\s*([A-Za-z_][A-Za-z0-9_']*)\s*:\s*(.+?)\)\s*\.?\s*$")


def parse_plan(text: str) -> list[tuple[str, str]]:
    """Every ``assert (name : statement).`` line of ``text``, in order."""
    out = []
    for line in text.splitlines():
        m = _PLAN_LINE.search(line.strip().strip("`"))
        if m:
            out.append((m.group(1), m.group(2).strip()))
    return out


def parse_tactic(text: str) -> str:
    """The tactic in a sampled reply: the first sentence of its first non-empty line, without
    backticks, a leading ``Tactic:`` or the period ("" when there is none). A reply holding a
    code fence is read inside its first fence, whatever language tag opens it (```` ```coq ````),
    so a tag never becomes the tactic."""
    lines = text.splitlines()
    opening = next((i for i, line in enumerate(lines) if line.strip().startswith("```")), None)
    if opening is not None:
        lines = lines[opening + 1:]
    for line in lines:
        if line.strip().startswith("```"):
            break  # the fence closed before any code
        line = line.strip().strip("`").strip()
        if line.lower().startswith("tactic:"):
            line = line[len("tactic:"):].strip()
        if line:
            sentence = re.split(r"\.(?:\s|$)", line.replace("`", "") + " ", maxsplit=1)[0]
            return sentence.strip()  # the first sentence, inline-code backticks dropped
    return ""
