"""Coq as a :class:`search.protocols.ProofEnv`: a pool of ``coqidetop`` workers and ``coqc`` checks.

Where a theorem lives: a built-in one (:mod:`verifiers.proof.theorems`) is ``Theorem NAME :
STATEMENT.`` after the trusted ``CoqConfig.preamble``; a user's lemma carries a
:class:`~verifiers.proof.theorems.CoqSource` (read by :mod:`verifiers.proof.vfile`): its
file's text before it as sentences, loaded as they are, then its own declaration verbatim.

Workers: each is one ``coqidetop`` process speaking Coq's XML protocol
(:mod:`verifiers.proof.coqide`) that holds a document, context sentences, declaration,
``Proof``, tactics, each with the state id Coq gave it. Moving to another proof state is an
``Edit_at`` the last shared sentence and ``Add`` of the rest, so lemmas of one file share
their common context too. A model's tactic reaches Coq only as ``Timeout N (TACTIC).`` after
:mod:`verifiers.proof.guard` accepted its text. The proof state is the answer to the
protocol's ``Goal`` call (foreground, background, shelved and given-up goal lists): proved
means all four are empty. What a tactic prints (``idtac``) arrives as a separate feedback
message and never counts. A sentence past the hard limit (Coq's own ``Timeout`` plus
``kill_grace_s``) kills the worker's process group and the pool starts a fresh worker; a
worker found dead (it exited while idle: a closed pipe, an end of file) is replaced and the
step retried once on a fresh one, else it is an error result, never an exception.

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

import dataclasses
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from search.protocols import PonderError, ProofCheck, ProofState, TacticResult, TacticStatus, Theorem
from verifiers.proof.coqide import Goals, IdeDied, IdeError, IdeProcess, IdeTimeout
from verifiers.proof.guard import TacticRefused, check_identifier, check_text, normalize_tactic
from verifiers.proof.theorems import SOURCE_KEY, CoqSource
from verifiers.proof.vfile import proof_block

DEFAULT_PREAMBLE = ("Require Import Arith.", "Require Import Bool.", "Require Import List.",
                    "Import ListNotations.", "Require Import Lia.")
PLACEHOLDER = "admit"
CLOSED = "Closed under the global context"
CHECK_LIB, CHECK_MODULE = "PonderCheck", "PonderProof"
_HEADING = re.compile(r"^[A-Z][A-Za-z/ ()-]*:$")
_ENTRY = re.compile(r"^([A-Za-z_][A-Za-z0-9_'.]*)(?: : .*)?$")


class CoqUnavailable(PonderError):
    """``coqidetop`` / ``coqc`` are not installed (``apt-get install coq``)."""


class CoqConfig(BaseModel):
    """Settings of :class:`CoqEnv`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    coqidetop: str = Field("", description="coqidetop executable; empty: coqidetop, else coqidetop.opt, on PATH.")
    coqc: str = Field("coqc", description="coqc executable (final checks).")
    coq_args: tuple[str, ...] = Field((), description="Extra arguments for coqidetop and coqc, e.g. a user "
                                                      "file's load path: ['-Q', 'theories', 'MyLib'].")
    num_workers: int = Field(2, ge=1, le=64, description="coqidetop worker processes.")
    tactic_timeout_s: float = Field(5.0, gt=0, description="Per-tactic limit (Coq's own Timeout) in seconds.")
    kill_grace_s: float = Field(2.0, gt=0, description="Seconds past the tactic limit before the worker is killed.")
    inner_timeout: bool = Field(True, description="Wrap tactics in Coq's Timeout (off: only the hard kill).")
    context_timeout_s: float = Field(300.0, gt=0, description="Limit for loading a theorem's context (its "
                                                              "file's text before it) into a worker, in seconds.")
    check_timeout_s: float = Field(120.0, gt=0, description="Limit for each coqc run of the final check in "
                                                            "seconds (process group killed past it).")
    preamble: tuple[str, ...] = Field(DEFAULT_PREAMBLE, description="Trusted sentences loaded before every "
                                                                    "built-in theorem (a file's lemmas use the file).")
    allowed_assumptions: tuple[str, ...] = Field((), description="Assumptions the final check accepts besides "
                                                 "those a lemma's file declares (a name or a qualified suffix, "
                                                 "e.g. Classical_Prop.classic).")


def coqidetop_path(config: CoqConfig) -> str | None:
    if config.coqidetop:
        return shutil.which(config.coqidetop)
    return shutil.which("coqidetop") or shutil.which("coqidetop.opt")


def coq_available(config: CoqConfig | None = None) -> str | None:
    """None when Coq can run here, else why not."""
    cfg = config or CoqConfig()
    missing = [exe for exe, path in ((cfg.coqidetop or "coqidetop", coqidetop_path(cfg)),
                                     (cfg.coqc, shutil.which(cfg.coqc))) if path is None]
    return f"{', '.join(missing)} not found (install Coq: apt-get install -y coq)" if missing else None


@dataclasses.dataclass(frozen=True)
class _Doc:
    """A theorem as Coq sees it: trusted sentences before the proof, and how to check it."""

    context: tuple[str, ...]
    header: str
    opener: str
    closers: tuple[str, ...]
    path: str
    allowed: tuple[str, ...]
    tactics: tuple[str, ...] = ()

    @property
    def prefix(self) -> tuple[str, ...]:
        return (*self.context, self.header, self.opener)


def _document(theorem: Theorem, config: CoqConfig) -> _Doc:
    src = theorem.metadata.get(SOURCE_KEY)
    if isinstance(src, CoqSource):
        return _Doc(src.context, src.header, src.opener, src.closers, src.path or theorem.name, src.allowed,
                    src.tactics)
    return _Doc(config.preamble, f"Theorem {check_identifier(theorem.name)} : {theorem.statement}.", "Proof.", (),
                theorem.name, ())


class _Failed(Exception):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index, self.message = index, message


class _Worker:
    """One coqidetop process and its document: (sentence, state id) pairs from the root."""

    def __init__(self, config: CoqConfig) -> None:
        self.config = config
        self.ide: IdeProcess | None = None
        self.root = 0
        self.doc: list[tuple[str, int]] = []

    @property
    def proc(self):  # the process, for tests that watch a worker being replaced
        return self.ide.proc if self.ide is not None else None

    def start(self) -> None:
        exe = coqidetop_path(self.config)
        if exe is None:
            raise CoqUnavailable(coq_available(self.config) or "coqidetop not found")
        self.ide = IdeProcess([exe, *self.config.coq_args])
        self.root, self.doc = self.ide.init(60.0), []

    def kill(self) -> None:
        if self.ide is not None:
            self.ide.kill()
        self.ide, self.doc = None, []

    def common_prefix(self, sentences: Sequence[str]) -> int:
        if self.ide is None or not self.ide.alive():
            return -1
        k = 0
        while k < min(len(sentences), len(self.doc)) and sentences[k] == self.doc[k][0]:
            k += 1
        return k

    def _tip(self) -> int:
        return self.doc[-1][1] if self.doc else self.root

    def _extend(self, sentences: Sequence[str], upto: int, timeout: float) -> Goals | None:
        """Adds ``sentences[len(doc):upto]`` and runs them; raises :class:`_Failed` at the first error."""
        assert self.ide is not None
        parse_error: _Failed | None = None
        first_new = len(self.doc)
        for i in range(len(self.doc), upto):
            try:
                self.doc.append((sentences[i], self.ide.add(sentences[i], self._tip(), 30.0)))
            except IdeError as err:
                parse_error = _Failed(i, err.message)
                break
        try:
            goals = self.ide.goals(timeout)
        except IdeError as err:
            good = next((k + 1 for k, (_, sid) in enumerate(self.doc) if sid == err.state), 0)
            self._back(good)
            raise _Failed(good, err.message) from None
        new_states = {sid: k for k, (_, sid) in enumerate(self.doc) if k >= first_new}
        errors = [(new_states[sid], message) for sid, message in self.ide.errors if sid in new_states]
        if errors:  # an error Coq reported and went past (inside a proof already closed)
            bad, message = min(errors)
            self._back(bad)
            raise _Failed(bad, message)
        if parse_error is not None:
            raise parse_error
        return goals

    def _back(self, keep: int) -> None:
        """Keeps the first ``keep`` sentences of the document, drops the rest in Coq too."""
        assert self.ide is not None
        self.ide.edit_at(self.doc[keep - 1][1] if keep else self.root, 30.0)
        del self.doc[keep:]

    def goto(self, prefix: Sequence[str], tactics: Sequence[str], tactic_limit: float) -> Goals | None:
        """Puts the worker in the state after ``prefix`` (trusted) and ``tactics``; the goals there.
        Raises :class:`_Failed` with the index (in prefix + tactics) of the sentence that failed."""
        if self.ide is None or not self.ide.alive():
            self.kill()
            self.start()
        assert self.ide is not None
        sentences = (*prefix, *tactics)
        k = self.common_prefix(sentences)
        if k < len(self.doc):
            self._back(k)
        goals = None
        if len(self.doc) < len(prefix):
            goals = self._extend(sentences, len(prefix), self.config.context_timeout_s)
        if len(self.doc) < len(sentences) or goals is None:
            new = len(sentences) - len(self.doc)
            goals = self._extend(sentences, len(sentences), tactic_limit * max(1, new))
        return goals


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


class CoqEnv:
    """Coq through a pool of coqidetop workers (see the module docstring)."""

    name = "coq"
    placeholder = PLACEHOLDER

    def __init__(self, config: CoqConfig | None = None) -> None:
        self.config = config or CoqConfig()
        reason = coq_available(self.config)
        if reason:
            raise CoqUnavailable(reason)
        self._idle = [_Worker(self.config) for _ in range(self.config.num_workers)]
        self._cond = threading.Condition()
        self._theorems: dict[str, Theorem] = {}
        self.restarts = 0
        """Workers killed and replaced (a hard timeout, or found dead)."""

    # ---- the pool ----
    def _take(self, sentences: Sequence[str]) -> _Worker:
        with self._cond:
            while not self._idle:
                self._cond.wait()
            best = max(self._idle, key=lambda w: w.common_prefix(sentences))
            self._idle.remove(best)
            return best

    def _give(self, worker: _Worker) -> None:
        with self._cond:
            self._idle.append(worker)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            for w in self._idle:
                w.kill()

    def _wrap(self, tactic: str) -> str:
        if self.config.inner_timeout:
            return f"Timeout {math.ceil(self.config.tactic_timeout_s)} ({tactic})."
        return f"({tactic})."

    def _sentence(self, tactic: str, allow_placeholder: bool, doc: _Doc) -> str:
        if allow_placeholder and tactic == PLACEHOLDER:
            return f"{PLACEHOLDER}."
        return self._wrap(normalize_tactic(tactic, doc.tactics))

    def _run(self, theorem: Theorem, tactics: Sequence[str], *, allow_placeholder: bool = False,
             timeout_s: float | None = None) -> TacticResult:
        start = time.perf_counter()

        def error(message: str) -> TacticResult:
            return TacticResult(TacticStatus.ERROR, error=message, seconds=time.perf_counter() - start)

        try:
            doc = _document(theorem, self.config)
            sentences = [self._sentence(t, allow_placeholder, doc) for t in tactics]
        except TacticRefused as err:
            return error(f"refused: {err}")
        prefix = doc.prefix
        limit = (timeout_s or self.config.tactic_timeout_s) + self.config.kill_grace_s
        for attempt in (1, 2):
            worker = self._take((*prefix, *sentences))
            try:
                goals = worker.goto(prefix, sentences, limit)
                break
            except _Failed as failed:
                if failed.index < len(prefix):
                    return error(f"the theorem's context or statement failed in Coq at "
                                 f"{prefix[failed.index][:120]!r}: {failed.message}")
                return error(failed.message)
            except IdeTimeout:
                worker.kill()
                self.restarts += 1
                return error(f"timeout: no answer within {limit:g} s; worker replaced")
            except (IdeDied, IdeError) as err:  # died while idle, or an answer out of protocol
                worker.kill()
                self.restarts += 1
                if attempt == 2:
                    return error(f"coq worker died twice ({err}); worker replaced")
            except BaseException:
                worker.kill()
                raise
            finally:
                self._give(worker)
        if goals is None:
            return error("no proof is open after the theorem's statement (does it have a := body?)")
        if goals.given_up and not allow_placeholder:
            return error("refused: goals were given up (admitted)")
        state = ProofState(theorem.name, goals.open,
                           tuple(normalize_tactic(t, doc.tactics) if t != PLACEHOLDER else t for t in tactics))
        proved = not goals.open and not goals.given_up
        return TacticResult(TacticStatus.PROVED if proved else TacticStatus.OPEN, state,
                            seconds=time.perf_counter() - start)

    # ---- ProofEnv ----
    def start(self, theorem: Theorem) -> TacticResult:
        self._theorems[theorem.name] = theorem
        return self._run(theorem, ())

    def apply(self, state: ProofState, tactic: str, timeout_s: float | None = None) -> TacticResult:
        theorem = self._theorems.get(state.theorem)
        if theorem is None:
            raise PonderError(f"state of unknown theorem {state.theorem!r}: call start() first")
        return self._run(theorem, (*state.tactics, tactic), timeout_s=timeout_s)

    def run(self, theorem: Theorem, tactics: Sequence[str]) -> TacticResult:
        self._theorems[theorem.name] = theorem
        return self._run(theorem, tactics)

    def assert_tactic(self, name: str, statement: str) -> str:
        check_identifier(name)
        check_text(statement, "subgoal statement")
        return f"assert ({name} : {statement})"

    def check_plan(self, theorem: Theorem, subgoals: Sequence[tuple[str, str]]) -> TacticResult:
        self._theorems[theorem.name] = theorem
        try:
            tactics = [t for name, stmt in subgoals for t in (self.assert_tactic(name, stmt), PLACEHOLDER)]
        except TacticRefused as err:
            return TacticResult(TacticStatus.ERROR, error=f"refused: {err}")
        return self._run(theorem, tactics, allow_placeholder=True)

    def check_source(self, theorem: Theorem, tactics: Sequence[str]) -> str:
        """The file the final check compiles: context, declaration, proof block, closers.
        Raises :class:`TacticRefused` when a tactic is not admissible."""
        doc = _document(theorem, self.config)
        block = proof_block([normalize_tactic(t, doc.tactics) for t in tactics], doc.opener)
        return "\n".join((*doc.context, doc.header, block, *doc.closers, ""))

    def check(self, theorem: Theorem, tactics: Sequence[str]) -> ProofCheck:
        start = time.perf_counter()

        def verdict(accepted: bool, detail: str) -> ProofCheck:
            return ProofCheck(accepted, detail, time.perf_counter() - start)

        try:
            source = self.check_source(theorem, tactics)
        except TacticRefused as err:
            return verdict(False, f"refused: {err}")
        doc = _document(theorem, self.config)
        limit = self.config.check_timeout_s
        with tempfile.TemporaryDirectory(prefix="ponder-coq-") as tmp:
            proof, query = os.path.join(tmp, f"{CHECK_MODULE}.v"), os.path.join(tmp, "Query.v")
            with open(proof, "w") as f:
                f.write(source)
            load = ["-Q", tmp, CHECK_LIB]
            code, out = run_bounded([self.config.coqc, *self.config.coq_args, *load, "-q", proof], limit)
            if code is None:
                return verdict(False, f"coqc ran past {limit:g} s (check_timeout_s) and was killed")
            if code != 0:
                return verdict(False, f"coqc rejected the proof: {out.strip()[-500:]}")
            with open(query, "w") as f:  # no model text in this file or this process
                qualified = f"{CHECK_LIB}.{CHECK_MODULE}"
                f.write(f"Require {qualified}.\nPrint Assumptions {qualified}.{doc.path}.\n")
            code, out = run_bounded([self.config.coqc, *self.config.coq_args, *load, "-q", query], limit)
        if code is None:
            return verdict(False, f"Print Assumptions ran past {limit:g} s (check_timeout_s) and was killed")
        if code != 0:
            return verdict(False, f"Print Assumptions failed: {out.strip()[-500:]}")
        try:
            names = [_relative(n) for n in read_assumptions(out)]
        except ValueError as err:
            return verdict(False, f"not closed under the global context: {err}")
        if not names:
            return verdict(True, CLOSED)
        allowed = set(doc.allowed)
        extra = self.config.allowed_assumptions
        bad = [n for n in names if n not in allowed and not any(n == a or n.endswith("." + a) for a in extra)]
        if bad:
            return verdict(False, f"not closed under the global context: it relies on {', '.join(bad)}, "
                                  "which the theorem's file does not declare (list a library axiom in "
                                  "allowed_assumptions to accept it)")
        return verdict(True, f"closed under the file's own assumptions: {', '.join(names)}")
