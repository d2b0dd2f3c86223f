"""The final check of a proof: ``coqc`` and ``Print Assumptions``.

Final check, in two processes, the model's text only in the first:

1. ``coqc`` compiles the context, the declaration, the proof (each tactic ``(TACTIC).``, as
   :func:`verifiers.proof.vfile.proof_block` writes it) and ``Qed.`` into a ``.vo`` in a
   temporary directory. A non-zero exit rejects.
2. A second ``coqc`` on a file of ours alone, ``Require`` of that ``.vo`` and ``Print
   Assumptions`` of the theorem. Nothing the model wrote runs there, so nothing it printed
   can be read as the verdict. Its output must be exactly ``Closed under the global
   context``, or list only assumptions the user's file declared before the lemma
   (``CoqSource.allowed``) or ``CoqConfig.allowed_assumptions`` names.

Both runs are bounded by ``check_timeout_s``; on timeout the process group is killed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Sequence

from verifiers.proof.coq.config import CoqConfig

CLOSED = "Closed under the global context"
CHECK_LIB, CHECK_MODULE = "PonderCheck", "PonderProof"
_HEADING = re.compile(r"^[A-Z][A-Za-z/ ()-]*:$")
_ENTRY = re.compile(r"^([A-Za-z_][A-Za-z0-9_'.]*)(?: : .*)?$")


def run_bounded(argv: Sequence[str], timeout: float) -> tuple[int | None, str]:
    """(exit code, stdout + stderr) of ``argv`` in its own process group; (None, output so
    far) when it ran past ``timeout`` seconds, the whole group killed."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
        return None, out or ""


def read_assumptions(output: str) -> list[str]:
    """The names ``Print Assumptions`` listed ([] when closed under the global context).
    Raises ValueError on output that is not a list of assumptions."""
    text = output.strip()
    if text == CLOSED:
        return []
    names = []
    for line in text.splitlines():
        if not line.strip() or line[0].isspace():
            continue  # a type continued on the next line
        if _HEADING.match(line):
            continue
        m = _ENTRY.match(line)
        if m is None:
            raise ValueError(f"unexpected line in Print Assumptions output: {line[:200]!r}")
        names.append(m.group(1))
    if not names:
        raise ValueError(f"no assumption list in Print Assumptions output: {text[:300]!r}")
    return names


def _relative(name: str) -> str:
    for prefix in (f"{CHECK_LIB}.", f"{CHECK_MODULE}."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def check_proof(source: str, path: str, allowed: Sequence[str], config: CoqConfig) -> tuple[bool, str]:
    """The final check of one proof (see the module docstring): ``source`` is the whole file
    (context, declaration, proof block, closers), ``path`` the theorem's name in it, ``allowed``
    the assumptions its file declared before it. Returns (accepted, detail)."""
    limit = config.check_timeout_s
    with tempfile.TemporaryDirectory(prefix="ponder-coq-") as tmp:
        proof, query = os.path.join(tmp, f"{CHECK_MODULE}.v"), os.path.join(tmp, "Query.v")
        with open(proof, "w") as f:
            f.write(source)
        load = ["-Q", tmp, CHECK_LIB]
        code, out = run_bounded([config.coqc, *config.coq_args, *load, "-q", proof], limit)
        if code is None:
            return False, f"coqc ran past {limit:g} s (check_timeout_s) and was killed"
        if code != 0:
            return False, f"coqc rejected the proof: {out.strip()[-500:]}"
        with open(query, "w") as f:  # no model text in this file or this process
            qualified = f"{CHECK_LIB}.{CHECK_MODULE}"
            f.write(f"Require {qualified}.\nPrint Assumptions {qualified}.{path}.\n")
        code, out = run_bounded([config.coqc, *config.coq_args, *load, "-q", query], limit)
    if code is None:
        return False, f"Print Assumptions ran past {limit:g} s (check_timeout_s) and was killed"
    if code != 0:
        return False, f"Print Assumptions failed: {out.strip()[-500:]}"
    try:
        names = [_relative(n) for n in read_assumptions(out)]
    except ValueError as err:
        return False, f"not closed under the global context: {err}"
    if not names:
        return True, CLOSED
    declared = set(allowed)
    extra = config.allowed_assumptions
    bad = [n for n in names if n not in declared and not any(n == a or n.endswith("." + a) for a in extra)]
    if bad:
        return False, (f"not closed under the global context: it relies on {', '.join(bad)}, "
                       "which the theorem's file does not declare (list a library axiom in "
                       "allowed_assumptions to accept it)")
    return True, f"closed under the file's own assumptions: {', '.join(names)}"
