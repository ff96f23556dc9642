"""report.py's plot styling: every model in the throughput plot can be told apart."""
from __future__ import annotations

from distill.report import COLORS, _bar_style


def entry(name, role="student", variant="torch"):
    return {"name": name, "role": role, "variant": variant}


def test_bars_give_each_student_a_colour_and_each_export_a_hatch():
    models = [entry("teacher-nli", "teacher")]
    for student in ("a (soft)", "b (soft)", "c (hard)"):
        models += [entry(student), entry(f"{student} onnx", variant="onnx"),
                   entry(f"{student} onnx-int8", variant="onnx-int8")]
    models += [entry(f"s{i}") for i in range(9)]  # more students than palette colours
    styles = [_bar_style(m, models) for m in models]
    assert styles[0] == (COLORS["teacher"], None)
    assert all(color != COLORS["teacher"] for color, _ in styles[1:])
    a, a_onnx, a_int8, b = styles[1:5]
    assert a[0] == a_onnx[0] == a_int8[0] != b[0]  # one student, one colour, whatever the export
    assert len({a[1], a_onnx[1], a_int8[1]}) == 3  # exports told apart by hatching
    torch_styles = [s for m, s in zip(models, styles) if m["role"] == "student" and m["variant"] == "torch"]
    assert len(set(torch_styles[:9])) == 9  # the first nine students all differ
