"""Reading problems and gold answers from JSONL files, with errors that point at the line.

Every problem with the file (missing, not UTF-8, bad JSON, a missing field, a value of
the wrong type, no gold answer where the format needs one, no records at all) raises
:class:`TaskFileError` naming the file, the line number, the field and the value. No
``json`` traceback ever reaches the user.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

from search.protocols import PonderError
from verifiers.extract import extract_boxed, extract_gsm8k

AnswerFormat = Literal["auto", "gsm8k", "math", "plain"]
_UNSET: Any = object()


class TaskFileError(PonderError):
    """A task file cannot be used. Names the file, line, field and value where known."""

    def __init__(self, path: str | Path, reason: str, *, line: int | None = None,
                 field: str | None = None, value: Any = _UNSET) -> None:
        self.path, self.reason, self.line, self.field = str(path), reason, line, field
        self.value = None if value is _UNSET else value
        where = f"{path}:{line}" if line is not None else f"{path}"
        what = f" field {field!r}" if field is not None else ""
        if value is not _UNSET:
            shown = repr(value)
            what += f" value {shown[:77] + '...' if len(shown) > 80 else shown}"
        super().__init__(f"{where}:{what}{':' if what else ''} {reason}")


@dataclasses.dataclass(frozen=True)
class JsonlRecord:
    """One problem read from a file: its id, question, gold answer and line number."""

    id: str
    question: str
    gold: str
    line: int


def gold_from_answer(raw: str, answer_format: AnswerFormat) -> str | None:
    """The final gold answer inside an answer field, by convention.

    Args:
        raw: the answer field's text.
        answer_format: ``gsm8k`` (after the last ``####``), ``math`` (the last
            ``\\boxed{...}`` of a solution), ``plain`` (the whole field), or ``auto``
            (gsm8k if ``####`` occurs, else math if ``\\boxed`` occurs, else plain).

    Returns:
        The gold answer, or None when the convention finds none.
    """
    if answer_format == "auto":
        answer_format = ("gsm8k" if "####" in raw
                         else "math" if "\\boxed" in raw or "\\fbox" in raw else "plain")
    if answer_format == "gsm8k":
        return extract_gsm8k(raw) if "####" in raw else None
    if answer_format == "math":
        return extract_boxed(raw)
    return raw.strip() or None


def _text_field(path: Path, line: int, record: dict[str, Any], field: str,
                numbers_ok: bool) -> str:
    if field not in record:
        raise TaskFileError(path, f"missing (keys present: {sorted(record)[:10]})",
                            line=line, field=field)
    value = record[field]
    if isinstance(value, str):
        if not value.strip():
            raise TaskFileError(path, "is empty", line=line, field=field, value=value)
        return value
    if numbers_ok and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    wanted = "a string or a number" if numbers_ok else "a string"
    raise TaskFileError(path, f"must be {wanted}, not {type(value).__name__}",
                        line=line, field=field, value=value)


def _parse_line(path: Path, line_no: int, raw: bytes) -> dict[str, Any] | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskFileError(path, f"not valid UTF-8 (byte {exc.start})", line=line_no) from None
    text = text.lstrip("\ufeff").strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskFileError(path, f"invalid JSON: {exc.msg} at column {exc.colno}",
                            line=line_no) from None
    except (ValueError, RecursionError) as exc:
        raise TaskFileError(path, f"invalid JSON: {type(exc).__name__}", line=line_no) from None
    if not isinstance(record, dict):
        raise TaskFileError(path, f"each line must be a JSON object, not {type(record).__name__}",
                            line=line_no)
    return record


DEFAULT_ID_FIELD = "id"
"""The field a line's id is read from when no ``id_field`` is configured (if the line has it)."""


def read_jsonl(path: str | Path, *, question_field: str = "question",
               answer_field: str = "answer", id_field: str | None = None,
               limit: int | None = None, answer_format: AnswerFormat = "auto"
               ) -> list[JsonlRecord]:
    """Reads problems from a JSONL file (one JSON object per line; blank lines skipped).

    Ids (strings or integers, unique) are the ``id_field`` value when ``id_field`` is given
    (every line must have it); else a line's ``id`` value when it has one (not null), else
    ``"<file stem>-<line number>"``.

    Raises:
        TaskFileError: anything wrong with the file, naming line, field and value.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(path, "no such file" if not path.exists() else "not a regular file")
    records: list[JsonlRecord] = []
    seen: dict[str, int] = {}
    try:
        with path.open("rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                if limit is not None and len(records) >= limit:
                    break
                record = _parse_line(path, line_no, raw)
                if record is None:
                    continue
                question = _text_field(path, line_no, record, question_field, numbers_ok=False)
                answer = _text_field(path, line_no, record, answer_field, numbers_ok=True)
                gold = gold_from_answer(answer, answer_format)
                if gold is None:
                    raise TaskFileError(path, f"no gold answer found by the {answer_format!r} "
                                        "convention", line=line_no, field=answer_field,
                                        value=answer)
                key = id_field if id_field is not None else DEFAULT_ID_FIELD
                if id_field is None and record.get(DEFAULT_ID_FIELD) is None:
                    pid = f"{path.stem}-{line_no}"
                else:
                    pid = _text_field(path, line_no, record, key, numbers_ok=True)
                    if isinstance(record[key], float):
                        raise TaskFileError(path, "ids must be strings or integers",
                                            line=line_no, field=key, value=record[key])
                if pid in seen:
                    raise TaskFileError(path, f"duplicate id (first on line {seen[pid]})",
                                        line=line_no, field=key, value=record.get(key, pid))
                seen[pid] = line_no
                records.append(JsonlRecord(pid, question, gold, line_no))
    except OSError as exc:
        raise TaskFileError(path, f"cannot read: {exc.strerror or exc}") from None
    if not records:
        raise TaskFileError(path, "contains no problems (empty file)")
    return records
