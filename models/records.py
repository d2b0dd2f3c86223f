"""The servers ponder recorded: ``$XDG_STATE_HOME/ponder/server.json``.

``ponder serve`` (one server, or ``--replicas N`` of them) and a server started for reuse write
a :class:`ServerRecord` here; later commands find them (:func:`models.server.server_statuses`,
:func:`models.managed.ensure_server`) and ``ponder serve --stop`` removes them. The file holds
one record, or ``{"replicas": [...]}``; it is replaced atomically, and an unreadable one is
treated as empty. Whether a recorded process still lives is :mod:`models.server`'s concern.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from pathlib import Path

from models.paths import state_dir

log = logging.getLogger(__name__)

STATE_FILE_NAME = "server.json"


@dataclasses.dataclass(frozen=True)
class ServerRecord:
    """A running server: what :func:`start_server` returns and the state file holds."""

    pid: int
    """Process id of the launcher; also its process group id."""
    port: int
    model: str
    """The served model name (what clients put in ``model``)."""
    checkpoint: str
    started_at: str
    """ISO-8601 UTC time the server became healthy."""
    host: str = "127.0.0.1"
    log_path: str = ""
    startup_seconds: float = 0.0

    @property
    def endpoint(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8000`` (no ``/v1``)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ServerRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})  # type: ignore[arg-type]



def state_file() -> Path:
    """``$XDG_STATE_HOME/ponder/server.json``."""
    return state_dir() / STATE_FILE_NAME


def write_record(rec: ServerRecord) -> None:
    """Records ``rec`` as the one recorded server (replacing any record)."""
    _write_records([rec])


def _write_records(recs: list[ServerRecord]) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data: object = recs[0].to_json() if len(recs) == 1 else {"replicas": [r.to_json() for r in recs]}
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def record_servers(recs: list[ServerRecord]) -> None:
    """Records ``recs`` as the recorded server's replicas (``ponder serve --replicas N``):
    later commands reuse them together, ``ponder serve --stop`` stops them all."""
    if not recs:
        raise ValueError("no server to record")
    _write_records(list(recs))


def replace_record(old: ServerRecord, new: ServerRecord) -> None:
    """Puts ``new`` where ``old`` was recorded (a restarted replica), or records it alone when
    ``old`` is no longer there."""
    recs = read_records()
    _write_records([new if r == old else r for r in recs] if old in recs else [new])


def read_records() -> list[ServerRecord]:
    try:
        data = json.loads(state_file().read_text(encoding="utf-8"))
        items = data["replicas"] if isinstance(data, dict) and "replicas" in data else [data]
        return [ServerRecord.from_json(d) for d in items]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, TypeError, KeyError) as e:
        log.warning("ignoring unreadable server record %s: %s", state_file(), e)
        return []


def clear_record(rec: ServerRecord | None = None) -> None:
    """Removes ``rec`` from the state file (the whole file when ``rec`` is None or the last)."""
    if rec is not None:
        recs = read_records()
        if rec not in recs:
            return
        rest = [r for r in recs if r != rec]
        if rest:
            _write_records(rest)
            return
    with contextlib.suppress(FileNotFoundError):
        state_file().unlink()


def recorded_servers() -> list[ServerRecord]:
    """The records in the state file (one server, or ``ponder serve --replicas N``'s), unchecked."""
    return read_records()
