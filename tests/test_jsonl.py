"""Strict JSONL reading with one-line errors, and the resumable writer (kill -9 included)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from laser_rl.errors import LaserInputError
from laser_rl.jsonl import (
    PROBLEM_FIELDS,
    ResumableWriter,
    check_responses,
    load_records,
    read_jsonl,
    write_jsonl_atomic,
)

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"


def write_bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"problem": "a", "answer": "1"}\n{"problem": \n', r"in.jsonl:2: invalid JSON \(Expecting value at column"),
        (b'{"problem": "a", "answer": "1"}\n{"problem": "\xff"}\n', r"in.jsonl:2: not UTF-8 \(byte 0xff"),
        (b"[1, 2]\n", r"in.jsonl:1: expected a JSON object, got a list"),
        (b'{"answer": "1"}\n', r"in.jsonl:1: missing field 'problem'"),
        (
            b'{"problem": "a", "answer": [1]}\n',
            r"in.jsonl:1: field 'answer' must be a string or an integer or a number",
        ),
        (b'{"problem": "a", "answer": true}\n', r"in.jsonl:1: field 'answer' must be .*, got true or false"),
        (b"\n  \n", r"in.jsonl: no records"),
    ],
    ids=["invalid json", "not utf-8", "not an object", "missing field", "mistyped field", "bool", "empty"],
)
def test_read_jsonl_names_file_and_line(tmp_path, data, message):
    with pytest.raises(LaserInputError, match=message) as error:
        read_jsonl(write_bytes(tmp_path, data), PROBLEM_FIELDS)
    assert "\n" not in str(error.value)


def test_read_jsonl_skips_blank_lines_and_reports_missing_files(tmp_path):
    path = write_bytes(tmp_path, b'\n{"problem": "a", "answer": 3}\n\n{"problem": "b", "answer": "x", "id": 1}')
    assert read_jsonl(path, PROBLEM_FIELDS) == [
        {"problem": "a", "answer": 3},
        {"problem": "b", "answer": "x", "id": 1},
    ]
    with pytest.raises(LaserInputError, match="nope.jsonl: no such file"):
        read_jsonl(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"responses": []}, "field 'responses' is empty"),
        ({"responses": "text"}, "must be a list of strings"),
        ({"responses": ["a", 1]}, "must be a list of strings"),
        ({"responses": ["a", "b"], "finished": [True]}, "list of 2 booleans"),
        ({"responses": ["a", "b"], "finished": [True, False]}, None),
    ],
)
def test_check_responses(record, message):
    problem = check_responses(record)
    assert problem is None if message is None else message in problem


@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="the shared benchmarks are not here")
def test_benchmark_files_read_as_they_are():
    problems = load_records(str(BENCHMARKS / "math500.jsonl"), PROBLEM_FIELDS, limit=3)
    assert len(problems) == 3 and {"problem", "answer", "solution", "unique_id"} <= set(problems[0])


def test_load_records_from_a_local_dataset_folder(tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "test.jsonl").write_text("".join(json.dumps({"problem": f"p{i}", "answer": i}) + "\n" for i in range(5)))
    assert [r["problem"] for r in load_records(str(folder), PROBLEM_FIELDS, limit=2)] == ["p0", "p1"]
    with pytest.raises(LaserInputError, match="has no column 'solution'"):
        load_records(str(folder), {"solution": str})


def test_write_jsonl_atomic_leaves_no_temporary_file(tmp_path):
    write_jsonl_atomic(tmp_path / "out.jsonl", [{"a": "é"}, {"b": None}])
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == '{"a": "é"}\n{"b": null}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_resume_skips_done_records_and_drops_a_torn_line(tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt), ResumableWriter(out, {"seed": 1}) as writer:
        for index in (2, 0):
            writer.write(index, {"value": index})
        raise KeyboardInterrupt
    partial = tmp_path / "out.jsonl.partial"
    assert not out.exists()
    with partial.open("ab") as file:
        file.write(b'{"index": 1, "record": {"val')  # a kill in the middle of a write
    with ResumableWriter(out, {"seed": 1}) as writer:
        assert writer.records == {2: {"value": 2}, 0: {"value": 0}}
        for index in range(4):
            if index not in writer.records:
                writer.write(index, {"value": index})
        writer.finish()
    assert read_jsonl(out) == [{"value": i} for i in range(4)]
    assert not partial.exists()


def test_resume_refuses_other_settings_and_foreign_files(tmp_path):
    out = tmp_path / "out.jsonl"
    with ResumableWriter(out, {"seed": 1, "n": 2}) as writer:
        writer.write(0, {"value": 0})
    with pytest.raises(LaserInputError, match=r"out.jsonl.partial: .*other settings \(seed: 1 then, 2 now\)"):
        ResumableWriter(out, {"seed": 2, "n": 2}).__enter__()
    with (tmp_path / "out.jsonl.partial").open("a") as file:
        file.write("garbage\n{}\n")
    with pytest.raises(LaserInputError, match=r"out.jsonl.partial:3: corrupt line"):
        ResumableWriter(out, {"seed": 1, "n": 2}).__enter__()
    (tmp_path / "out.jsonl.partial").write_text("not a header\n")
    with pytest.raises(LaserInputError, match="not a partial file of laser"):
        ResumableWriter(out, {"seed": 1, "n": 2}).__enter__()


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from laser_rl.jsonl import ResumableWriter

    with ResumableWriter(sys.argv[1], {"total": 200}, sync_every_s=0.01) as writer:
        for index in range(200):
            if index not in writer.records:
                writer.write(index, {"value": index, "text": "x" * 2000})
                time.sleep(0.01)
        writer.finish()
    """
)


def test_kill_9_then_rerun_gives_exactly_the_uninterrupted_output(tmp_path):
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    process = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(out)])
    deadline = time.monotonic() + 60
    while (not partial.exists() or partial.read_bytes().count(b"\n") < 20) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists() and partial.exists()
    subprocess.run([sys.executable, "-c", WRITER_SCRIPT, str(out)], check=True)
    assert read_jsonl(out) == [{"value": i, "text": "x" * 2000} for i in range(200)]
    assert not partial.exists()
