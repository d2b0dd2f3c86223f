"""Coq as a :class:`search.protocols.ProofEnv`: a pool of ``coqidetop`` workers and ``coqc`` checks.

Where a theorem lives: a built-in one (:mod:`verifiers.proof.theorems`) is ``Theorem NAME :
STATEMENT.`` after the trusted ``CoqConfig.preamble``; a user's lemma carries a
:class:`~verifiers.proof.theorems.CoqSource` (read by :mod:`verifiers.proof.vfile`): its
file's text before it as sentences, loaded as they are, then its own declaration verbatim.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Sequence

from search.protocols import PonderError, ProofCheck, ProofState, TacticResult, TacticStatus, Theorem
from verifiers.proof.coq.check import check_proof
from verifiers.proof.coq.config import CoqConfig, CoqUnavailable, coq_available
from verifiers.proof.coq.worker import SentenceFailed, Worker
from verifiers.proof.coq.ide import IdeDied, IdeError, IdeTimeout
from verifiers.proof.guard import TacticRefused, check_identifier, check_text, normalize_tactic
from verifiers.proof.theorems import SOURCE_KEY, CoqSource
from verifiers.proof.vfile import proof_block

PLACEHOLDER = "admit"



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



class CoqEnv:
    """Coq through a pool of coqidetop workers (:mod:`verifiers.proof.coq.worker`), final checks by
    :func:`verifiers.proof.coq.check.check_proof`."""

    name = "coq"
    placeholder = PLACEHOLDER

    def __init__(self, config: CoqConfig | None = None) -> None:
        self.config = config or CoqConfig()
        reason = coq_available(self.config)
        if reason:
            raise CoqUnavailable(reason)
        self._idle = [Worker(self.config) for _ in range(self.config.num_workers)]
        self._cond = threading.Condition()
        self._theorems: dict[str, Theorem] = {}
        self.restarts = 0
        """Workers killed and replaced (a hard timeout, or found dead)."""

    # ---- the pool ----
    def _take(self, sentences: Sequence[str]) -> Worker:
        with self._cond:
            while not self._idle:
                self._cond.wait()
            best = max(self._idle, key=lambda w: w.common_prefix(sentences))
            self._idle.remove(best)
            return best

    def _give(self, worker: Worker) -> None:
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
            except SentenceFailed as failed:
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
        return verdict(*check_proof(source, doc.path, doc.allowed, self.config))
