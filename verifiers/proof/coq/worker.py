"""One ``coqidetop`` worker and its document.

Workers: each is one ``coqidetop`` process speaking Coq's XML protocol
(:mod:`verifiers.proof.coq.ide`) that holds a document, context sentences, declaration,
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
"""

from __future__ import annotations

from collections.abc import Sequence

from verifiers.proof.coq.config import CoqConfig, CoqUnavailable, coq_available, coqidetop_path
from verifiers.proof.coq.ide import Goals, IdeError, IdeProcess


class SentenceFailed(Exception):
    """A sentence Coq rejected: its index in the sentences sent (context, declaration, tactics)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index, self.message = index, message


class Worker:
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
        """Adds ``sentences[len(doc):upto]`` and runs them; raises :class:`SentenceFailed` at the first error."""
        assert self.ide is not None
        parse_error: SentenceFailed | None = None
        first_new = len(self.doc)
        for i in range(len(self.doc), upto):
            try:
                self.doc.append((sentences[i], self.ide.add(sentences[i], self._tip(), 30.0)))
            except IdeError as err:
                parse_error = SentenceFailed(i, err.message)
                break
        try:
            goals = self.ide.goals(timeout)
        except IdeError as err:
            good = next((k + 1 for k, (_, sid) in enumerate(self.doc) if sid == err.state), 0)
            self._back(good)
            raise SentenceFailed(good, err.message) from None
        new_states = {sid: k for k, (_, sid) in enumerate(self.doc) if k >= first_new}
        errors = [(new_states[sid], message) for sid, message in self.ide.errors if sid in new_states]
        if errors:  # an error Coq reported and went past (inside a proof already closed)
            bad, message = min(errors)
            self._back(bad)
            raise SentenceFailed(bad, message)
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
        Raises :class:`SentenceFailed` with the index (in prefix + tactics) of the sentence that failed."""
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
