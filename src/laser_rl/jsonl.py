"""JSON Lines in and out: strict reading with one-line errors, and a resumable, atomic writer."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from laser_rl.errors import LaserInputError

FieldType = type | tuple[type, ...]
# A benchmark problem as the authors distribute them (../shared/benchmarks/*.jsonl): other fields are kept.
PROBLEM_FIELDS: dict[str, FieldType] = {"problem": str, "answer": (str, int, float)}

_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def read_jsonl(
    path: str | Path,
    required: Mapping[str, FieldType] | None = None,
    check: Callable[[dict], str | None] | None = None,
) -> list[dict]:
    """The records of a JSONL file, one JSON object a line (blank lines are skipped).

    Args:
        path: the file.
        required: fields every record must have, with their allowed types.
        check: a further test of one record, returning what is wrong with it or None.

    Raises:
        LaserInputError: naming the file and line, for a missing file, bytes that are not UTF-8,
            invalid JSON, a line that is not an object, a missing or mistyped field, a failed
            `check`, or a file without records.
    """
    path = Path(path)
    try:
        raw_lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        raise LaserInputError(f"{path}: no such file") from None
    except OSError as error:
        raise LaserInputError(f"{path}: cannot read ({error.strerror})") from None
    records = []
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            byte = f"0x{raw[error.start]:02x} at column {error.start + 1}"
            raise LaserInputError(f"{where}: not UTF-8 (byte {byte})") from None
        except json.JSONDecodeError as error:
            raise LaserInputError(f"{where}: invalid JSON ({error.msg} at column {error.colno})") from None
        problem = _record_problem(record, required or {}) or (check(record) if check else None)
        if problem:
            raise LaserInputError(f"{where}: {problem}")
        records.append(record)
    if not records:
        raise LaserInputError(f"{path}: no records")
    return records


def _record_problem(record: Any, required: Mapping[str, FieldType]) -> str | None:
    if not isinstance(record, dict):
        return f"expected a JSON object, got {_json_name(record)}"
    for name, types in required.items():
        if name not in record:
            return f"missing field '{name}'"
        if not _has_type(record[name], types):
            allowed = " or ".join(_JSON_NAMES[t] for t in (types if isinstance(types, tuple) else (types,)))
            return f"field '{name}' must be {allowed}, got {_json_name(record[name])}"
    return None


def _has_type(value: Any, types: FieldType) -> bool:
    allowed = types if isinstance(types, tuple) else (types,)
    return isinstance(value, allowed) and (not isinstance(value, bool) or bool in allowed)  # JSON true is no number


def _json_name(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def check_responses(record: dict) -> str | None:
    """What is wrong with a record's `responses` (a non-empty list of strings), optional `finished`
    (booleans, one per response) and optional `response_token_ids` (the sampled ids), or None."""
    responses = record.get("responses")
    if not isinstance(responses, list) or not all(isinstance(response, str) for response in responses):
        return "field 'responses' must be a list of strings"
    if not responses:
        return "field 'responses' is empty"
    finished = record.get("finished")
    if finished is not None and (
        not isinstance(finished, list)
        or len(finished) != len(responses)
        or not all(isinstance(flag, bool) for flag in finished)
    ):
        return f"field 'finished' must be a list of {len(responses)} booleans, one per response"
    token_ids = record.get("response_token_ids")
    if token_ids is not None and (
        not isinstance(token_ids, list)
        or len(token_ids) != len(responses)
        or not all(isinstance(ids, list) and all(type(i) is int for i in ids) for ids in token_ids)
    ):
        return f"field 'response_token_ids' must be a list of {len(responses)} lists of token ids, one per response"
    return None


def load_records(
    source: str,
    required: Mapping[str, FieldType],
    check: Callable[[dict], str | None] | None = None,
    split: str = "test",
    limit: int | None = None,
) -> list[dict]:
    """Records from a JSONL file, or else from a `datasets` dataset (a Hub name or a local folder).

    Args:
        source: a .jsonl file, or what `datasets.load_dataset` accepts.
        required, check: as for `read_jsonl`; for a dataset, its columns and rows.
        split: the dataset split (not used for a file).
        limit: keep only the first `limit` records.
    """
    path = Path(source)
    if path.is_file() or path.suffix in (".jsonl", ".json"):
        return read_jsonl(path, required, check)[:limit]
    import datasets

    try:
        dataset = datasets.load_dataset(source, split=split)
    except Exception as error:  # datasets raises many kinds; all mean "cannot use this source"
        raise LaserInputError(f"{source}: cannot load it as a file or dataset ({error})", "data") from None
    missing = [name for name in required if name not in dataset.column_names]
    if missing:
        raise LaserInputError(f"{source}: split '{split}' has no column '{missing[0]}'", "data")
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    records = list(dataset)
    for number, record in enumerate(records):
        problem = _record_problem(record, required) or (check(record) if check else None)
        if problem:
            raise LaserInputError(f"{source}: row {number}: {problem}", "data")
    if not records:
        raise LaserInputError(f"{source}: split '{split}' is empty", "data")
    return records


def fingerprint(records: Iterable[dict]) -> str:
    """A short hash of records' content, to tell whether a resumed run reads the same input."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()[:16]


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write` on a temporary file next to `path`, sync it, then rename it over `path`: a kill at
    any moment leaves either the old file or the whole new one, never half of it."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_text_atomically(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically (see `write_atomically`)."""
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))


def write_jsonl_atomic(path: str | Path, records: Iterable[dict]) -> None:
    """Write records to `path` as JSON Lines, atomically (see `write_atomically`)."""

    def write(file: BinaryIO) -> None:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")

    write_atomically(path, write)


class ResumableWriter:
    """Writes a command's output records to OUT through OUT.partial, so that it can be resumed.

    OUT.partial starts with a header line holding the command's settings, then has one line per
    record, {"index": i, "record": {...}}, appended and flushed as records come (and fsync'd every
    `sync_every_s` seconds). Opened again with the same settings, it loads the records already
    written, dropping a torn last line left by a kill mid-write, so the command skips them; other
    settings are refused. `finish` writes OUT atomically, ordered by index and without the
    bookkeeping, and removes OUT.partial. Used as a context manager.
    """

    def __init__(self, path: str | Path, settings: Mapping[str, Any], sync_every_s: float = 10.0) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.settings = json.loads(json.dumps(settings))  # as it reads back from the header
        self.sync_every_s = sync_every_s
        self.records: dict[int, dict] = {}

    def __enter__(self) -> ResumableWriter:
        if not self._resume():
            self.partial.write_text(json.dumps({"laser_settings": self.settings}) + "\n", encoding="utf-8")
        self._file = self.partial.open("ab")
        self._last_sync = time.monotonic()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._file.closed:
            self._sync()
            self._file.close()

    def write(self, index: int, record: dict) -> None:
        """Append the record of input `index`."""
        self._file.write(json.dumps({"index": index, "record": record}, ensure_ascii=False).encode() + b"\n")
        self._file.flush()  # survives a killed process; fsync below also survives a crashed machine
        if time.monotonic() - self._last_sync >= self.sync_every_s:
            self._sync()
        self.records[index] = record

    def finish(self) -> None:
        """Write OUT, ordered by index, and remove OUT.partial."""
        self._sync()
        self._file.close()
        write_jsonl_atomic(self.path, (self.records[index] for index in sorted(self.records)))
        self.partial.unlink()

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._last_sync = time.monotonic()

    def _resume(self) -> bool:
        """Load OUT.partial if it holds a complete header; False when there is nothing to resume."""
        if not self.partial.exists():
            return False
        data = self.partial.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]  # a line without its newline was torn by a kill
        lines = complete.splitlines()
        if not lines:
            return False
        try:
            stored = json.loads(lines[0])["laser_settings"]
        except (ValueError, TypeError, KeyError):
            message = "not a partial file of laser; delete it or choose another output"
            raise LaserInputError(f"{self.partial}: {message}") from None
        self._check_settings(stored)
        for number, line in enumerate(lines[1:], start=2):
            try:
                entry = json.loads(line)
                self.records[entry["index"]] = entry["record"]
            except (ValueError, TypeError, KeyError):
                message = "corrupt line; delete the file to start over"
                raise LaserInputError(f"{self.partial}:{number}: {message}") from None
        if len(complete) < len(data):
            with self.partial.open("r+b") as file:
                file.truncate(len(complete))
        return True

    def _check_settings(self, stored: dict) -> None:
        for key in sorted(set(stored) | set(self.settings)):
            if stored.get(key) != self.settings.get(key):
                raise LaserInputError(
                    f"{self.partial}: an interrupted run with other settings ({key}: {stored.get(key)!r} then, "
                    f"{self.settings.get(key)!r} now); rerun it with its settings, or delete the file to start over"
                )
