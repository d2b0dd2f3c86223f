"""Coq as a :class:`search.protocols.ProofEnv`: a pool of ``coqtop`` workers and ``coqc`` replays.

Each worker is one ``coqtop -emacs`` process that keeps a proof open and remembers the state
number Coq gives every sentence, so moving to another state of the same theorem is a
``BackTo`` plus the missing tactics. A model tactic is sent as ``Timeout N (TACTIC).``
(:mod:`verifiers.proof.guard` checks the text first); a sentence that runs past the hard
timeout kills the worker's process group and the pool starts a fresh worker. The final
check writes the whole proof to a file, compiles it with ``coqc`` in a fresh process and
accepts it only when ``Print Assumptions`` says it is closed under the global context.
"""

from __future__ import annotations

import math
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from search.protocols import PonderError, ProofCheck, ProofState, TacticResult, TacticStatus, Theorem
from verifiers.proof.guard import TacticRefused, check_identifier, check_text, normalize_tactic

DEFAULT_PREAMBLE = ("Require Import Arith.", "Require Import Bool.", "Require Import List.",
                    "Import ListNotations.", "Require Import Lia.")
PLACEHOLDER = "admit"
CLOSED = "Closed under the global context"
_PROMPT = re.compile(r"<prompt>.*? < (\d+) \|.*?</prompt>", re.S)
_ID = re.compile(r" \(ID \d+\)")
_HEADER = re.compile(r"^(\d+) goals?\b.*$", re.M)
_ERROR = re.compile(r"^Error:", re.M)


class CoqUnavailable(PonderError):
    """``coqtop`` / ``coqc`` are not installed (``apt-get install coq``)."""


class CoqConfig(BaseModel):
    """Settings of :class:`CoqEnv`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    coqtop: str = Field("coqtop", description="coqtop executable.")
    coqc: str = Field("coqc", description="coqc executable (final checks).")
    num_workers: int = Field(2, ge=1, le=64, description="coqtop worker processes.")
    tactic_timeout_s: float = Field(5.0, gt=0, description="Per-tactic limit (Coq's own Timeout) in seconds.")
    kill_grace_s: float = Field(2.0, gt=0, description="Seconds past the tactic limit before the worker is killed.")
    inner_timeout: bool = Field(True, description="Wrap tactics in Coq's Timeout (off: only the hard kill).")
    check_timeout_s: float = Field(60.0, gt=0, description="Limit for one final coqc check in seconds.")
    preamble: tuple[str, ...] = Field(DEFAULT_PREAMBLE, description="Trusted sentences loaded before every theorem.")


def coq_available(config: CoqConfig | None = None) -> str | None:
    """None when Coq can run here, else why not."""
    cfg = config or CoqConfig()
    missing = [exe for exe in (cfg.coqtop, cfg.coqc) if shutil.which(exe) is None]
    return f"{', '.join(missing)} not found (install Coq: apt-get install -y coq)" if missing else None


class _HardTimeout(Exception):
    pass


def parse_goals(out: str) -> tuple[str, ...] | None:
    """The goals coqtop printed after a sentence: () when proved, None when it printed none."""
    if "No more goals" in out or "No more subgoals" in out:
        return ()
    header = _HEADER.search(out)
    if header is None:
        return None
    body = _ID.sub("", out[header.end():]).strip("\n")
    parts = re.split(r"\n\ngoal \d+ is:\n", "\n" + body)
    return tuple(textwrap.dedent(p).strip() for p in parts if p.strip())


class _Worker:
    """One coqtop process, the theorem open in it, and the state number after each sentence."""

    def __init__(self, config: CoqConfig) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.theorem: str | None = None
        self.sentences: list[str] = []
        self.states: list[int] = []
        self.outputs: list[str] = []
        self.base = 0

    def start(self) -> None:
        self.proc = subprocess.Popen([self.config.coqtop, "-emacs", "-quiet"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        _, self.base = self._read(30.0)
        for sentence in self.config.preamble:
            out, self.base = self.send(sentence, 60.0)
            if _ERROR.search(out):
                raise PonderError(f"coq preamble {sentence!r} failed: {out.strip()}")
        self.theorem, self.sentences, self.states, self.outputs = None, [], [], []

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.proc = None

    def _read(self, timeout: float) -> tuple[str, int]:
        assert self.proc is not None and self.proc.stdout is not None
        fd, buf, deadline = self.proc.stdout.fileno(), b"", time.monotonic() + timeout
        while b"</prompt>" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _HardTimeout()
            chunk = os.read(fd, 65536)
            if not chunk:
                raise PonderError(f"coqtop exited (code {self.proc.wait()}): {buf.decode(errors='replace')[-300:]}")
            buf += chunk
        buf += self._drain(0.02)
        text = buf.decode(errors="replace")
        prompts = list(_PROMPT.finditer(text))
        state = int(prompts[-1].group(1)) if prompts else -1
        return _PROMPT.sub("", text), state

    def _drain(self, wait: float) -> bytes:
        """Whatever coqtop already wrote (late warnings, a second prompt), so replies never shift."""
        assert self.proc is not None and self.proc.stdout is not None
        fd, out = self.proc.stdout.fileno(), b""
        while select.select([fd], [], [], wait)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
        return out

    def send(self, sentence: str, timeout: float) -> tuple[str, int]:
        assert self.proc is not None and self.proc.stdin is not None
        self._drain(0.0)
        self.proc.stdin.write((sentence + "\n").encode())
        self.proc.stdin.flush()
        return self._read(timeout)

    def common_prefix(self, theorem: str, sentences: Sequence[str]) -> int:
        if theorem != self.theorem:
            return -1
        k = 0
        while k < min(len(sentences), len(self.sentences)) and sentences[k] == self.sentences[k]:
            k += 1
        return k

    def goto(self, theorem: Theorem, sentences: Sequence[str], timeout: float) -> tuple[str, int | None]:
        """Puts the worker in the state after ``sentences``; returns coqtop's last output and
        the index of the sentence that failed (None: all passed)."""
        if self.proc is None:
            self.start()
        k = self.common_prefix(theorem.name, sentences)
        if k < 0:
            self.send(f"BackTo {self.base}.", timeout)
            out, state = self.send(f"Theorem {theorem.name} : {theorem.statement}.", timeout)
            self.theorem, self.sentences, self.states, self.outputs = theorem.name, [], [state], [out]
            if _ERROR.search(out):
                self.theorem = None
                return out, -1
            k = 0
        if k < len(self.sentences):
            self.send(f"BackTo {self.states[k]}.", timeout)
            del self.sentences[k:], self.states[k + 1:], self.outputs[k + 1:]
        for i, sentence in enumerate(sentences[k:], start=k):
            out, state = self.send(sentence, timeout)
            if _ERROR.search(out):
                return out, i
            self.sentences.append(sentence)
            self.states.append(state)
            self.outputs.append(out)
        if parse_goals(self.outputs[-1]) is None:  # coqtop prints nothing when the goals did not change
            self.outputs[-1] = self.send("Show.", timeout)[0]
        return self.outputs[-1], None


class CoqEnv:
    """Coq through a pool of coqtop workers (see the module docstring)."""

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
        """Workers killed and replaced after a hard timeout."""

    # ---- the pool ----
    def _take(self, theorem: str, sentences: Sequence[str]) -> _Worker:
        with self._cond:
            while not self._idle:
                self._cond.wait()
            best = max(self._idle, key=lambda w: w.common_prefix(theorem, sentences))
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

    def _sentence(self, tactic: str, allow_placeholder: bool) -> str:
        if allow_placeholder and tactic == PLACEHOLDER:
            return f"{PLACEHOLDER}."
        return self._wrap(normalize_tactic(tactic))

    def _run(self, theorem: Theorem, tactics: Sequence[str], *, allow_placeholder: bool = False,
             timeout_s: float | None = None) -> TacticResult:
        start = time.perf_counter()
        try:
            sentences = [self._sentence(t, allow_placeholder) for t in tactics]
        except TacticRefused as err:
            return TacticResult(TacticStatus.ERROR, error=f"refused: {err}", seconds=time.perf_counter() - start)
        limit = (timeout_s or self.config.tactic_timeout_s) + self.config.kill_grace_s
        worker = self._take(theorem.name, sentences)
        try:
            out, failed = worker.goto(theorem, sentences, limit)
        except _HardTimeout:
            worker.kill()
            self.restarts += 1
            return TacticResult(TacticStatus.ERROR, error=f"timeout: no answer within {limit:g} s; worker replaced",
                                seconds=time.perf_counter() - start)
        except BaseException:
            worker.kill()
            raise
        finally:
            self._give(worker)
        seconds = time.perf_counter() - start
        if failed is not None:
            message = out[_ERROR.search(out).start():].strip() if _ERROR.search(out) else out.strip()
            return TacticResult(TacticStatus.ERROR, error=message, seconds=seconds)
        goals = parse_goals(out)
        if goals is None:
            return TacticResult(TacticStatus.ERROR, error=f"no goals printed: {out.strip()[:300]}", seconds=seconds)
        state = ProofState(theorem.name, goals, tuple(normalize_tactic(t) if t != PLACEHOLDER else t for t in tactics))
        return TacticResult(TacticStatus.PROVED if not goals else TacticStatus.OPEN, state, seconds=seconds)

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

    @staticmethod
    def source(theorem: Theorem, body: str) -> str:
        """The vernacular of one checked proof: statement, tactics, Qed, Print Assumptions."""
        return "\n".join((f"Theorem {theorem.name} : {theorem.statement}.", "Proof.", body, "Qed.",
                          f"Print Assumptions {theorem.name}.", ""))

    def check(self, theorem: Theorem, tactics: Sequence[str]) -> ProofCheck:
        start = time.perf_counter()
        try:
            body = "\n".join(f"({normalize_tactic(t)})." for t in tactics)
            check_identifier(theorem.name)
        except TacticRefused as err:
            return ProofCheck(False, f"refused: {err}", time.perf_counter() - start)
        source = "\n".join((*self.config.preamble, self.source(theorem, body)))
        with tempfile.TemporaryDirectory(prefix="ponder-coq-") as tmp:
            path = os.path.join(tmp, "Check.v")
            with open(path, "w") as f:
                f.write(source)
            try:
                done = subprocess.run([self.config.coqc, "-q", path], cwd=tmp, capture_output=True, text=True,
                                      timeout=self.config.check_timeout_s)
            except subprocess.TimeoutExpired:
                return ProofCheck(False, f"coqc ran past {self.config.check_timeout_s:g} s",
                                  time.perf_counter() - start)
        out = (done.stdout + done.stderr).strip()
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            return ProofCheck(False, f"coqc rejected the proof: {out[-500:]}", seconds)
        if CLOSED not in out:
            return ProofCheck(False, f"not closed under the global context: {out[-500:]}", seconds)
        return ProofCheck(True, CLOSED, seconds)

