"""Faults and bad input end in a one-line error, never a traceback or a reused broken artifact (issue 32).

The whole matrix (scripts/fault_matrix.py: every case against every stage, about 15 minutes on tiny models)
is in the integration tier; its quick subset on stage=label, and the pieces it relies on, are in the fast tier.
"""
from __future__ import annotations

import errno
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from distill import __main__ as entry
from distill.__main__ import redeliver_interrupts, user_error
from distill.data import data_fingerprint
from distill.errors import DistillError
from distill.students.load import load_classifier

from conftest import build_tiny_bert, load_script

ROOT = Path(__file__).resolve().parents[1]


def fault_matrix():
    return load_script("fault_matrix")


def test_error_messages_are_one_line():
    assert str(DistillError("column 'a\nb' not in f.csv")) == "column 'a\\nb' not in f.csv"
    assert str(DistillError("columns: \x00\x01\t, café")) == "columns: \\x00\\x01\\t, café"


def test_a_full_disk_and_an_unwritable_folder_are_one_line(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device")
    assert user_error(full, "/data/out").startswith("no room to write a file under /data/out (No space left")
    # safetensors' Rust writer says it in its message, wrapped by what called it
    try:
        try:
            raise RuntimeError("Error while serializing: I/O error: File too large (os error 27)")
        except RuntimeError as e:
            raise ValueError("saving failed") from e
    except ValueError as e:
        assert user_error(e).startswith("no room to write a file")
    denied = PermissionError(errno.EACCES, "Permission denied", "/data/out/labels")
    assert user_error(denied, "/data/out") == ("cannot write /data/out/labels (Permission denied): set "
                                               "paths.outputs to a folder you can write to")
    elsewhere = FileNotFoundError(errno.ENOENT, "No such file or directory", "/models/x/config.json")
    assert user_error(elsewhere, "/data/out").startswith("cannot use /models/x/config.json (No such file")
    assert user_error(KeyError("a bug")) is None  # a bug keeps its traceback


def test_a_ctrl_c_inside_a_finalizer_still_stops_the_run(monkeypatch):
    """Python prints such a Ctrl-C as "Exception ignored in ..." and goes on; ours is delivered again."""
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)

    class Bar:  # as tqdm's __del__, closing a bar when the Ctrl-C comes
        def __del__(self):
            signal.raise_signal(signal.SIGINT)
            sum(range(1000))  # the handler runs here, inside the finalizer

    redeliver_interrupts()
    with pytest.raises(KeyboardInterrupt):
        Bar()
        time.sleep(5)


def test_a_ctrl_c_during_an_import_is_an_interruption(monkeypatch, capsys):
    """A Ctrl-C while a compiled module initialises comes back as ImportError: exit 130 and the line, as for
    any other Ctrl-C, not a traceback."""
    def import_interrupted():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise ImportError("initialization failed") from e

    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setattr(sys, "argv", ["distill", "stage=label"])
    monkeypatch.setattr(entry, "_main", import_interrupted)
    monkeypatch.setattr(entry.signal, "signal", lambda *a: None)
    with pytest.raises(SystemExit) as exit:
        entry.main()
    assert exit.value.code == 130
    assert capsys.readouterr().err.strip() == entry.INTERRUPTED


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_student_folder_is_named_with_the_fix(tmp_path, damage):
    folder = build_tiny_bert(tmp_path / "student", {0: "negative", 1: "positive"})
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00garbage" * 64)
    with pytest.raises(DistillError, match=r"the student in .*student cannot be read .*delete that folder and run "
                                           r"stage=train again"):
        load_classifier(folder, device="cpu")


def test_the_fingerprint_sees_an_edit_past_the_first_megabyte(tmp_path):
    from test_data import data_cfg

    path = tmp_path / "big.csv"
    rows = "".join(f"a review number {i} of the film,1\n" for i in range(40_000))  # about 1.3 MB
    path.write_text("text,label\n" + rows)
    cfg = data_cfg(pool={"path": "big.csv"}, heldout={"path": "big.csv"})
    before = data_fingerprint(cfg, tmp_path)["pool"]
    path.write_text("text,label\n" + rows.replace("number 39999", "NUMBER 39999"))  # same size, near the end
    assert data_fingerprint(cfg, tmp_path)["pool"] != before


def test_quick_matrix_on_stage_label(tmp_path):
    out = tmp_path / "fault_matrix.json"
    code = fault_matrix().main(["--quick", "--stages", "label", "--work", str(tmp_path / "work"), "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    failed = [f"{r['case']} / {r['stage']}: exit {r['exit_code']}: {r['line']} {r['notes']}" for r in rows
              if not r["passed"]]
    assert code == 0 and not failed, "\n".join(failed)
    assert {r["case"] for r in rows} >= {"empty file", "binary garbage", "not what its extension says", "one label",
                                         "unwritable output folder"}


@pytest.mark.integration
def test_full_matrix(tmp_path):
    out = tmp_path / "fault_matrix.json"
    code = fault_matrix().main(["--work", str(tmp_path / "work"), "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    failed = [f"{r['case']} / {r['stage']}: exit {r['exit_code']}: {r['line']} {r['notes']}" for r in rows
              if not r["passed"]]
    assert code == 0 and not failed, "\n".join(failed)
    assert len(rows) >= 70
