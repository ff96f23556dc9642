"""The evaluation report a person reads in 30 seconds: report.md with the table and its PNG plots.

    confusion.png           one confusion matrix per model (rows: gold, or the teacher's label when there is
                            no gold; columns: predicted; row-normalised colour, counts in the cells)
    throughput.png          samples/s of every model at each batch size (log scale)
    accuracy_vs_speed.png   accuracy (or, without gold, agreement with the teacher) against samples/s at the
                            largest batch size: up and to the right is better
    confidence.png          how sure each model is: its top probability, as a histogram
    label_shares.png        how often each model picks each label

Without gold labels (metrics["gold"] false) every quality number is against the teacher's labels, on texts
the students never trained on, and says so.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

from .intervals import describe_difference
from .metrics import fmt, markdown_table

log = logging.getLogger(__name__)
COLORS = {"teacher": "#c0392b", "student": "#2471a3"}
# throughput bars: one colour per student (never the teacher's red), one hatch per export of it
STUDENT_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                   "#17becf"]
HATCHES = {"torch": None, "onnx": "///", "onnx-int8": "..."}


def write_report(out: Path, metrics: dict, table: str, plots: bool = True) -> tuple[Path, list[Path]]:
    """Write report.md (and the PNGs unless `plots` is false or matplotlib is missing); return their paths."""
    out = Path(out)
    pngs = _plots(out, metrics) if plots else []
    lines = [f"# {metrics['data']}: teacher vs students", "", _headline(metrics), "", table.strip(), ""]
    if metrics.get("teacher_choice"):
        lines += [metrics["teacher_choice"], ""]
    for png in pngs:
        lines += [f"![{png.stem.replace('_', ' ')}]({png.name})", ""]
    lines += ["## Per class" + ("" if _gold(metrics) else " (against the teacher's labels)"), "", _per_class(metrics), ""]
    if _gold(metrics):
        lines += ["Accuracy and F1 are against the held-out gold labels (read only for scoring). Agreement is the "
                  "share of texts on which a model picks the teacher's label. ECE: expected calibration error of "
                  "the top label (15 bins; 0 is perfectly calibrated).", ""]
    else:
        lines += [f"There are no gold labels, so nothing here says how often a model is right. What is known: how "
                  f"closely each student follows its teacher on {metrics['n_heldout']} labelled texts it never "
                  f"trained on (a seeded share of the pool, train.holdout), how calibrated it is against the "
                  f"teacher's labels (ECE vs teacher), how sure the teacher is over the "
                  f"{metrics.get('n_pool', 'labelled')} pool texts, and how often each picks each label. Name a "
                  f"column of gold labels (data.label_column) to add accuracy.", ""]
    lines += ["Speeds are from one run on one machine: compare ratios more than absolute numbers.", ""]
    if metrics.get("machine"):  # int8 and bf16 results move with the CPU's instruction sets, not only speeds
        lines += [f"Measured on {metrics['machine']['cpu_summary']}, {metrics['machine']['cores']} cores"
                  + (f", GPU {metrics['machine']['gpu']}" if metrics['machine'].get('gpu') else "") + ".", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report, pngs


def _gold(metrics: dict) -> bool:
    return metrics.get("gold", True)


def _quality(metrics: dict) -> tuple[str, str]:
    """(the entry key that says how good a model is, its name in prose)."""
    if metrics.get("multi_label"):
        return ("micro_f1", "micro-F1") if _gold(metrics) else \
            ("agreement_with_teacher", "agreement with the teacher's label sets (micro-F1)")
    return ("accuracy", "accuracy") if _gold(metrics) else ("agreement_with_teacher", "agreement with the teacher")


def _headline(metrics: dict) -> str:
    models = metrics["models"]
    teacher = next((m for m in models if m["role"] == "teacher"), None)
    students = [m for m in models if m["role"] == "student"]
    if not students:
        return ""
    key, what = _quality(metrics)
    best = max(students, key=lambda m: m.get(key) or 0)
    text = f"Best student: **{best['name']}**, {what} {best[key]:.4f}"
    if teacher and _gold(metrics):
        versus = describe_difference(best["vs_teacher"]) if best.get("vs_teacher") else \
            f"{100 * (best[key] - teacher[key]):+.1f} points"
        text += f" (teacher {teacher['name']}: {teacher[key]:.4f}; {versus})"
    if teacher:
        ratios = {bs: r for bs, r in (best.get("speedup_vs_teacher") or {}).items() if r}
        if ratios:
            bs = max(ratios, key=int)
            text += f", {ratios[bs]:.1f}x the teacher's samples/s at batch {bs}"
    fastest = max(students, key=lambda m: m["samples_per_s"].get(str(max(metrics["batch_sizes"]))) or 0)
    if fastest is not best:
        text += f". Fastest: **{fastest['name']}** ({what} {fastest[key]:.4f})"
    if teacher and not _gold(metrics) and teacher.get("confidence"):  # single-label: how sure the teacher is
        conf = teacher["confidence"]
        text += (f". The teacher's mean confidence over the pool is {conf.get('mean', 0):.2f}; "
                 f"{100 * conf.get('share_below_0.6', 0):.0f}% of its labels are below 0.6")
    return text + "."


def _per_label(metrics: dict) -> str:
    """Multi-label: a row a label (there are often many): each model's F1 and the gold support."""
    models = [m for m in metrics["models"] if "per_class" in m]
    header = ["label", "gold texts"] + [f"{m['name']} F1" for m in models] + [f"{m['name']} share" for m in models]
    rows = [[label, models[0]["per_class"][label]["support"] if models else None]
            + [m["per_class"][label]["f1"] for m in models]
            + [f"{100 * (m.get('label_shares') or {}).get(label, 0):.1f}%" for m in models]
            for label in metrics["labels"]]
    return markdown_table(header, rows)


def _per_class(metrics: dict) -> str:
    if metrics.get("multi_label"):
        return _per_label(metrics)
    labels = metrics["labels"]
    key = "per_class" if _gold(metrics) else "per_class_vs_teacher"
    header = ["model"] + [f"{label} P / R / F1" for label in labels] + ["label shares"]
    rows = [[m["name"]] + [" / ".join(fmt(m[key][label][k], 2) for k in ("precision", "recall", "f1"))
                           for label in labels]
            + [", ".join(f"{label} {100 * share:.0f}%" for label, share in (m.get("label_shares") or {}).items())]
            for m in metrics["models"] if key in m]
    return markdown_table(header, rows)


def _plots(out: Path, metrics: dict) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("report: matplotlib is not installed, so the report has no plots (pip install 'distill[plots]')")
        return []
    if metrics.get("multi_label"):
        paths = [_label_f1(out, metrics, plt), _set_confusions(out, metrics, plt), _throughput(out, metrics, plt),
                 _accuracy_vs_speed(out, metrics, plt)]
        return [p for p in paths if p is not None]
    paths = [_confusions(out, metrics, plt), _throughput(out, metrics, plt), _accuracy_vs_speed(out, metrics, plt),
             _confidence(out, metrics, plt), _label_shares(out, metrics, plt)]
    return [p for p in paths if p is not None]


def _label_f1(out: Path, metrics: dict, plt) -> Path | None:
    """Multi-label: each label's F1 for every model, labels sorted by gold support (the most common on top)."""
    import numpy as np

    models = [m for m in metrics["models"] if "per_class" in m]
    if not models:
        return None
    labels = sorted(metrics["labels"], key=lambda name: -models[0]["per_class"][name]["support"])
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.28 * len(labels) * max(1, len(models)) ** 0.5))
    height = 0.8 / len(models)
    y = np.arange(len(labels))
    for i, m in enumerate(models):
        colour, hatch = _bar_style(m, metrics["models"])
        ax.barh(y + i * height, [m["per_class"][name]["f1"] for name in labels], height, label=m["name"],
                color=colour, hatch=hatch, edgecolor="white")
    ax.set_yticks(y + height * (len(models) - 1) / 2)
    ax.set_yticklabels([f"{name} ({models[0]['per_class'][name]['support']})" for name in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 against the gold label sets")
    ax.set_title(f"{metrics['data']}: F1 of each label (gold texts in brackets)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out / "label_f1.png", plt)


def _set_confusions(out: Path, metrics: dict, plt) -> Path | None:
    """Multi-label: for the teacher and the best student, which labels each gold label's texts were given (a row
    is a gold label, its cells the share of its texts that got each predicted label; labels by gold support)."""
    import numpy as np

    models = [m for m in metrics["models"] if "set_confusion" in m]
    if not models:
        return None
    students = [m for m in models if m.get("role") == "student"]
    shown = [m for m in models if m.get("role") == "teacher"][:1]
    if students:
        shown.append(max(students, key=lambda m: m.get("micro_f1") or 0.0))
    support = np.array([shown[0]["per_class"][name]["support"] for name in metrics["labels"]], dtype=float)
    order = np.argsort(-support, kind="stable")
    labels = [metrics["labels"][i] for i in order]
    k = len(labels)
    size = 1.5 + 0.28 * k
    fig, axes = plt.subplots(1, len(shown), figsize=(len(shown) * size + 1.2, size + 0.6), squeeze=False,
                             layout="constrained")
    for ax, m in zip(axes.flat, shown):
        counts = np.asarray(m["set_confusion"], dtype=float)[np.ix_(order, order)]
        share = counts / np.maximum(support[order][:, None], 1)
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(k), [_short(name, 12) for name in labels], rotation=90, fontsize=7)
        ax.set_yticks(range(k), [f"{_short(name, 12)} ({int(support[i])})" for name, i in zip(labels, order)],
                      fontsize=7)
        ax.set_title(f"{_short(m['name'], 34)} · micro-F1 {m['micro_f1']:.3f}", fontsize=9)
        ax.set_xlabel("predicted label", fontsize=8)
        ax.set_ylabel("gold label (texts)", fontsize=8)
    fig.colorbar(image, ax=list(axes.flat), shrink=0.6, label="share of the gold label's texts")
    fig.suptitle(f"{metrics['data']}: which labels each gold label's texts got ({metrics['n_heldout']} held-out "
                 f"texts; the diagonal is each label's recall)", fontsize=10)  # constrained layout keeps it close
    fig.savefig(out / "label_confusion.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out / "label_confusion.png"


def _save(fig, path: Path, plt, top_inches: float = 0.0) -> Path:
    """Lay out and write `fig`; `top_inches` are kept free above the axes for a suptitle."""
    fig.tight_layout(rect=(0, 0, 1, 1 - top_inches / fig.get_figheight()))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


LABEL_RISE = 4.0  # points a point's label sits above it, unless another label is in the way


def _label_offsets(ax, points: list[tuple[float, float, str]], height: float = 11.0,
                   char_width: float = 4.6) -> list[tuple[float, float]]:
    """Offsets (points) for the labels of `points` (x, y, text): each label goes to the first free place
    near its point (right of it, rising by LABEL_RISE, or left of it; then a line lower or higher, further
    each time), free meaning that it covers no other label or point and stays inside the axes. Highest
    points are placed first. Where nothing is free, the place that covers the least is taken."""
    scale = 72 / ax.figure.dpi
    where = [ax.transData.transform((x, y)) * scale for x, y, _ in points]  # display position, in points
    (x0, y0), (x1, y1) = ax.transAxes.transform([(0, 0), (1, 1)]) * scale
    boxes: list[tuple[float, float, float, float]] = []  # (left, right, bottom, top) of labels placed
    dots = [(px - 4, px + 4, py - 4, py + 4) for px, py in where]  # the markers, which labels must not hide
    offsets = [(0.0, 0.0)] * len(points)

    def overlap(a, b) -> float:
        return max(0.0, min(a[1], b[1]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[2], b[2]))

    for i in sorted(range(len(points)), key=lambda i: -where[i][1]):
        px, py = where[i]
        width = char_width * len(points[i][2])
        best = None
        # nearest first: a line up or down, on the right and then on the left, before going further
        for step in range(12):
            dy = LABEL_RISE + height * ((step + 1) // 2) * (-1 if step % 2 else 1)
            for side in (6.0, -6.0 - width):
                box = (px + side, px + side + width, py + dy - height / 2, py + dy + height / 2)
                outside = (max(0.0, x0 - box[0]) + max(0.0, box[1] - x1)) * height + \
                    (max(0.0, y0 - box[2]) + max(0.0, box[3] - y1)) * width
                cost = outside + sum(overlap(box, b) for b in boxes) + \
                    sum(overlap(box, d) for j, d in enumerate(dots) if j != i)
                if best is None or cost < best[0] - 1e-9:
                    best = (cost, box, (side, dy))
            if best[0] == 0:
                break
        boxes.append(best[1])
        offsets[i] = best[2]
    return offsets


def _plain_ticks(axis) -> None:
    """Log-scale ticks as plain numbers (30, 100, 300), not 3x10^1."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _bar_style(m: dict, models: list[dict]) -> tuple[str, str | None]:
    """(colour, hatch) of a model's bars: the teacher red; each student (its torch model and its ONNX
    exports alike) a colour of its own; the exports told apart by hatching."""
    if m["role"] == "teacher":
        return COLORS["teacher"], None
    variant = m.get("variant") or "torch"
    bases = list(dict.fromkeys(_base_name(e) for e in models if e["role"] != "teacher"))
    return STUDENT_PALETTE[bases.index(_base_name(m)) % len(STUDENT_PALETTE)], HATCHES.get(variant)


def _base_name(m: dict) -> str:
    variant = m.get("variant") or "torch"
    return m["name"].removesuffix(f" {variant}") if variant != "torch" else m["name"]


def _short(name: str, width: int = 28) -> str:
    """`name` in at most `width` characters. A model's variant tail (" (soft) onnx-int8") is kept and the
    middle of the rest is cut: the start names the model family, the end the cut (drop1 vs drop2), the tail
    which of its runtimes it is, and all three tell the points of a plot apart."""
    if len(name) <= width:
        return name
    head, sep, tail = name.partition(" (")
    tail = sep + tail
    if width - len(tail) < 8:  # no room for the tail: cut the middle of the whole name
        head, tail = name, ""
    keep = width - len(tail) - 1
    front = keep // 3
    return head[:front] + "…" + head[len(head) - (keep - front):] + tail


def _confusions(out: Path, metrics: dict, plt) -> Path | None:
    import numpy as np

    key = "confusion" if _gold(metrics) else "confusion_vs_teacher"
    models = [m for m in metrics["models"] if key in m]
    if not models:
        return None
    quality, what = _quality(metrics)
    labels = metrics["labels"]
    k = len(labels)
    cols = min(3, len(models))
    rows = math.ceil(len(models) / cols)
    size = 1.2 + 0.7 * k
    fig, axes = plt.subplots(rows, cols, figsize=(max(cols * size + 0.5, 6.0), rows * size + 0.9), squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.axis("off")
    for ax, m in zip(axes.flat, models):
        counts = np.asarray(m[key], dtype=float)
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=9,
                        color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(k), [_short(label, 10) for label in labels], rotation=30 if k > 2 else 0, ha="right" if k > 2 else "center", fontsize=8)
        ax.set_yticks(range(k), [_short(label, 10) for label in labels], fontsize=8)
        head, sep, tail = m["name"].partition(" (")  # model / targets and variant, accuracy: two short lines
        short = "acc" if _gold(metrics) else "agree"
        ax.set_title(f"{_short(head, 30)}\n{(sep + tail).strip()}{' · ' if sep else ''}{short} {m[quality]:.3f}",
                     fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("gold" if _gold(metrics) else "teacher", fontsize=8)
    rows_are = "gold" if _gold(metrics) else "teacher's"
    texts = "held-out texts" if _gold(metrics) else "texts no student trained on, no gold"
    fig.suptitle(f"{metrics['data']}: confusion matrices\n({metrics['n_heldout']} {texts}; colour: share of the "
                 f"{rows_are} row)", fontsize=10)
    return _save(fig, out / "confusion.png", plt, top_inches=0.5)


def _throughput(out: Path, metrics: dict, plt) -> Path | None:
    import numpy as np

    models = [m for m in metrics["models"] if any(v for v in m["samples_per_s"].values())]
    if not models:
        return None
    sizes = metrics["batch_sizes"]
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(sizes) + 0.5 * len(models)), 4.2))
    for i, m in enumerate(models):
        values = [m["samples_per_s"].get(str(bs)) or 0 for bs in sizes]
        xs = np.arange(len(sizes)) + (i - (len(models) - 1) / 2) * width
        color, hatch = _bar_style(m, models)
        bars = ax.bar(xs, values, width, label=_short(m["name"], 40), color=color, hatch=hatch,
                      edgecolor="white" if hatch else None, linewidth=0)
        for bar, v in zip(bars, values):
            if v:
                ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(sizes)), [f"batch {bs}" for bs in sizes])
    ax.set_yscale("log")
    _plain_ticks(ax.yaxis)
    ax.set_ylabel("samples / second (log)")
    ax.set_title(f"{metrics['data']}: throughput by batch size")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, out / "throughput.png", plt)


def _accuracy_vs_speed(out: Path, metrics: dict, plt) -> Path | None:
    bs = str(max(metrics["batch_sizes"]))
    key, what = _quality(metrics)
    models = [m for m in metrics["models"] if m["samples_per_s"].get(bs) and m.get(key) is not None]
    if not models:
        return None
    # taller with more models, so their labels find room beside their points
    fig, ax = plt.subplots(figsize=(7.0, max(4.5, 1.5 + 0.3 * len(models))))
    points = []
    for m in models:
        x, y = m["samples_per_s"][bs], m[key]
        ax.scatter([x], [y], s=60, color=COLORS[m["role"]], marker="*" if m["role"] == "teacher" else "o", zorder=3)
        points.append((x, y, _short(m["name"], 40)))
    ax.set_xscale("log")
    _plain_ticks(ax.xaxis)
    ax.set_xlabel(f"samples / second at batch {bs} (log)")
    ax.set_ylabel("accuracy (held-out gold)" if _gold(metrics) else "agreement with the teacher (unseen texts)")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{metrics['data']}: {what} vs speed" + (" (teacher: red star)" if _gold(metrics) else ""))
    lo, hi = min(m[key] for m in models), max(m[key] for m in models)
    ax.set_ylim(lo - 0.05 * max(hi - lo, 0.1), hi + 0.05 * max(hi - lo, 0.1))
    xs = [m["samples_per_s"][bs] for m in models]
    ax.set_xlim(min(xs) / 1.6, max(xs) * 2.5)
    fig.tight_layout()
    _label_points(ax, points)
    return _save(fig, out / "accuracy_vs_speed.png", plt)


def _confidence(out: Path, metrics: dict, plt) -> Path | None:
    """Histogram of each model's top probability (teacher: over the labelled texts)."""
    import numpy as np

    models = [m for m in metrics["models"] if (m.get("confidence") or {}).get("histogram")
              and (m.get("variant") or "torch") == "torch"]
    if not models:
        return None
    edges = np.linspace(0.0, 1.0, len(models[0]["confidence"]["histogram"]) + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    for i, m in enumerate(models):
        counts = np.asarray(m["confidence"]["histogram"], dtype=float)
        share = counts / max(1.0, counts.sum())
        color = COLORS["teacher"] if m["role"] == "teacher" else STUDENT_PALETTE[i % len(STUDENT_PALETTE)]
        ax.step(centres, share, where="mid", color=color, linewidth=2 if m["role"] == "teacher" else 1.2,
                label=f"{_short(m['name'], 36)} (mean {m['confidence']['mean']:.2f})")
    ax.axvline(0.6, color="0.5", linestyle=":", linewidth=1)
    ax.set_xlim(min(0.5, edges[np.flatnonzero(sum(np.asarray(m["confidence"]["histogram"]) for m in models))[0]]), 1.0)
    ax.set_xlabel("top-label probability (how sure the model is)")
    ax.set_ylabel(f"share of texts (bins of {width:.2f})")
    ax.set_title(f"{metrics['data']}: confidence (dotted: 0.6, below it labels are worth checking)")
    ax.legend(fontsize=8)
    return _save(fig, out / "confidence.png", plt)


def _label_shares(out: Path, metrics: dict, plt) -> Path | None:
    """How often each model picks each label: a student far from its teacher's shares learned a bias."""
    import numpy as np

    models = [m for m in metrics["models"] if m.get("label_shares") and (m.get("variant") or "torch") == "torch"]
    if not models:
        return None
    labels = metrics["labels"]
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(labels) * len(models) + 2), 4.0))
    for i, m in enumerate(models):
        values = [m["label_shares"].get(label, 0.0) for label in labels]
        xs = np.arange(len(labels)) + (i - (len(models) - 1) / 2) * width
        color = COLORS["teacher"] if m["role"] == "teacher" else STUDENT_PALETTE[i % len(STUDENT_PALETTE)]
        ax.bar(xs, values, width, color=color, label=_short(m["name"], 36))
    ax.set_xticks(range(len(labels)), [_short(label, 14) for label in labels], rotation=30 if len(labels) > 4 else 0)
    ax.set_ylabel("share of texts given the label")
    ax.set_title(f"{metrics['data']}: label shares")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, out / "label_shares.png", plt)


def _label_points(ax, points: list[tuple[float, float, str]]) -> list:
    """Annotate each (x, y, text) point where `_label_offsets` found room, with a thin line to its point
    when the label is not right beside it; the annotations, in the order of `points`."""
    notes = []
    for (x, y, text), (dx, dy) in zip(points, _label_offsets(ax, points)):
        moved = abs(dy - LABEL_RISE) > 1 or dx < 0
        notes.append(ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=8,
                                 va="center", ha="left",
                                 arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6} if moved else None))
    return notes
