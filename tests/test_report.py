"""report.py's plot styling: every model in the throughput plot can be told apart."""
from __future__ import annotations

from distill.evaluation.report import COLORS, _bar_style


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


def test_scatter_labels_stay_inside_the_plot_and_do_not_overlap():
    """A crowded cluster (as ten students and their exports make) gets every label inside the axes, none
    covering another: measured on the rendered text, not on the layout's own estimate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from distill.evaluation.report import _label_points

    fig, ax = plt.subplots(figsize=(7.0, 7.0))
    points = [(8, 0.81, "teacher")] + [(40 + 6 * (i % 5), 0.805 + 0.002 * (i // 5) + 0.0004 * i,
                                        f"student-{i}-ffn768 (soft) onnx-int8") for i in range(15)]
    points += [(200, 0.84, "the fastest student, with a long name")]  # near the right edge
    ax.scatter([x for x, _, _ in points], [y for _, y, _ in points])
    ax.set_xscale("log")
    ax.set_xlim(5, 250)
    ax.set_ylim(0.80, 0.845)
    fig.tight_layout()
    notes = _label_points(ax, points)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # the text alone (an Annotation's own extent also spans its leader line)
    boxes = [Text.get_window_extent(n, renderer) for n in notes]
    frame = ax.get_window_extent(renderer)
    slack = 3  # pixels: the layout estimates text widths from the character count
    for box, (_, _, text) in zip(boxes, points):
        assert box.x0 >= frame.x0 - slack and box.x1 <= frame.x1 + slack, text
        assert box.y0 >= frame.y0 - slack and box.y1 <= frame.y1 + slack, text
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
            assert overlap_x <= slack or overlap_y <= slack, (a, b)
    plt.close(fig)


def test_short_names_keep_the_variant_and_what_tells_similar_models_apart():
    from distill.evaluation.report import _short

    a, b = (f"deberta-nli-6l-ffn768-drop{n}-assistant (soft) onnx-int8" for n in (1, 2))
    sa, sb = _short(a, 40), _short(b, 40)  # the width of the scatter's labels and the throughput legend
    assert len(sa) == 40 and sa != sb and sa.endswith(" (soft) onnx-int8") and "…" in sa
    assert _short("deberta-nli-6l-ffn768-drop1-assistant", 30) == "deberta-n…n768-drop1-assistant"
    assert _short("minilm (soft)", 28) == "minilm (soft)"
    assert len(_short("x" * 50 + " (soft) onnx-int8", 20)) == 20  # no room for the tail: the middle goes
