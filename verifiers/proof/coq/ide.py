"""A client of Coq's XML protocol (``coqidetop -main-channel stdfds``, the one CoqIDE speaks).

Why this and not ``coqtop``'s printed text: a tactic can print anything (``idtac`` of
hypotheses named ``No more goals`` prints exactly that), and coqtop mixes what tactics print
with the goals it prints. Here what a tactic prints arrives as a ``<feedback>`` message whose
text is XML-escaped inside its own element, while the goals are the answer to a separate
``Goal`` call: a ``<goals>`` element with the foreground, background, shelved and given-up
goals as lists. Proof state is read from those lists only, never from message text.

Calls used (Coq 8.16, protocol of ``ide/coqide/protocol/xmlprotocol.ml``): ``Init``,
``Add`` (parse one sentence after a state, gives the new state id), ``Goal`` (executes up to
the tip, gives the goals or the error), ``Edit_at`` (drops the states after one).
"""

from __future__ import annotations

import dataclasses
import os
import re
import select
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence

SEPARATOR = "============================"
_ENTITY_TAIL = re.compile(rb"&[A-Za-z0-9#]*$")


class IdeTimeout(Exception):
    """No answer within the limit (the caller kills the process)."""


class IdeDied(Exception):
    """The process exited or closed its pipes (its last output is the message)."""


class IdeError(Exception):
    """Coq answered a call with ``fail``: ``message`` is its error, ``state`` the last good state."""

    def __init__(self, message: str, state: int | None) -> None:
        super().__init__(message)
        self.message, self.state = message, state


@dataclasses.dataclass(frozen=True)
class Goals:
    """The goals of the open proof, each rendered as coqtop prints one: hypotheses, the
    separator line, the conclusion."""

    foreground: tuple[str, ...]
    background: tuple[str, ...]
    shelved: tuple[str, ...]
    given_up: tuple[str, ...]

    @property
    def open(self) -> tuple[str, ...]:
        """Every goal still to prove, the focused ones first."""
        return (*self.foreground, *self.background, *self.shelved)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def richpp_text(element: ET.Element | None) -> str:
    """The plain text of a pretty-printed element (markup dropped, non-breaking spaces as spaces)."""
    return "" if element is None else "".join(element.itertext()).replace("\xa0", " ")


def _goal(element: ET.Element) -> str:
    hyps_list = element.find("list")
    hyps = [richpp_text(h) for h in hyps_list] if hyps_list is not None else []
    concl = richpp_text(element.find("richpp"))
    return "\n".join((*hyps, SEPARATOR, concl))


def parse_goals(value: ET.Element) -> Goals | None:
    """The goals in a ``Goal`` call's answer; None when no proof is open."""
    option = value.find("option")
    if option is None or option.get("val") != "some":
        return None
    goals = option.find("goals")
    if goals is None:
        raise IdeDied(f"unexpected Goal answer: {ET.tostring(value, encoding='unicode')[:300]}")
    fg, bg, shelved, given_up = (list(x) for x in goals.findall("list"))
    background = [_goal(g) for pair in bg for side in pair.findall("list") for g in side]
    return Goals(tuple(_goal(g) for g in fg), tuple(background), tuple(_goal(g) for g in shelved),
                 tuple(_goal(g) for g in given_up))


class IdeProcess:
    """One ``coqidetop`` process in its own process group; blocking calls with deadlines."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.proc = subprocess.Popen([*argv, "-main-channel", "stdfds", "-async-proofs", "off"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._parser = self._new_parser()
        self._depth = 0
        self._root: ET.Element | None = None
        self._pending = b""
        self._done: list[ET.Element] = []
        self.messages: list[str] = []
        """Text of the feedback messages since the last call (what tactics printed, warnings)."""
        self.errors: list[tuple[int, str]] = []
        """(state id, text) of the error messages since the last call: Coq reports an error in
        a proof already closed by ``Qed`` / ``Admitted`` only this way and goes on."""

    @staticmethod
    def _new_parser() -> ET.XMLPullParser:
        parser = ET.XMLPullParser(events=("start", "end"))
        parser.feed(b"<stream>")
        return parser

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass

    # ---- transport ----
    def _feed(self, chunk: bytes) -> None:
        data = self._pending + chunk
        tail = _ENTITY_TAIL.search(data)  # an entity cut by the read: keep it for the next chunk
        self._pending = data[tail.start():] if tail else b""
        data = data[:tail.start()] if tail else data
        self._parser.feed(data.replace(b"&nbsp;", b"&#160;"))
        for event, element in self._parser.read_events():
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self._root = element
            else:
                self._depth -= 1
                if self._depth == 1:
                    self._done.append(element)
                    if self._root is not None:
                        self._root.remove(element)  # the stream never ends: keep the tree small

    def call(self, xml: str, timeout: float) -> ET.Element:
        """Sends one ``<call>`` and returns its ``<value>`` element; collects feedback messages."""
        self.messages, self.errors = [], []
        if self.proc.poll() is not None:
            raise IdeDied(f"coqidetop exited (code {self.proc.returncode})")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(xml.encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            raise IdeDied(f"coqidetop is gone ({type(err).__name__})") from None
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + timeout
        while True:
            while self._done:
                element = self._done.pop(0)
                if element.tag == "value":
                    return element
                if element.tag == "feedback":
                    content = element.find("feedback_content")
                    if content is not None and content.get("val") == "message":
                        text = " ".join(richpp_text(content.find("message/richpp")).split())
                        self.messages.append(text)
                        level, state = content.find("message/message_level"), element.find("state_id")
                        if level is not None and level.get("val") == "error":
                            self.errors.append((int(state.get("val", "0")) if state is not None else 0, text))
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise IdeTimeout()
            chunk = os.read(fd, 65536)
            if not chunk:
                raise IdeDied(f"coqidetop exited (code {self.proc.wait()})")
            try:
                self._feed(chunk)
            except ET.ParseError as err:
                raise IdeDied(f"unreadable answer from coqidetop: {err}") from None

    @staticmethod
    def _check(value: ET.Element) -> ET.Element:
        if value.get("val") != "good":
            state = value.find("state_id")
            raise IdeError(" ".join(richpp_text(value.find("richpp")).split()) or "Coq failed",
                           int(state.get("val", "0")) if state is not None else None)
        return value

    # ---- calls ----
    def init(self, timeout: float) -> int:
        value = self._check(self.call('<call val="Init"><option val="none"/></call>', timeout))
        return int(value.find("state_id").get("val"))  # type: ignore[union-attr]

    def add(self, sentence: str, state: int, timeout: float) -> int:
        """Parses ``sentence`` after ``state``; the new state's id (nothing runs yet)."""
        xml = (f'<call val="Add"><pair><pair><pair><pair><string>{escape(sentence)}</string><int>-1</int></pair>'
               f'<pair><state_id val="{state}"/><bool val="false"/></pair></pair><int>0</int></pair>'
               '<pair><int>0</int><int>0</int></pair></pair></call>')
        value = self._check(self.call(xml, timeout))
        return int(value.find("pair/state_id").get("val"))  # type: ignore[union-attr]

    def goals(self, timeout: float) -> Goals | None:
        """Runs every added sentence, then the goals (None outside a proof)."""
        return parse_goals(self._check(self.call('<call val="Goal"><unit/></call>', timeout)))

    def edit_at(self, state: int, timeout: float) -> None:
        """Drops every state after ``state``."""
        self._check(self.call(f'<call val="Edit_at"><state_id val="{state}"/></call>', timeout))
