"""A review queue as Label Studio tasks, and Label Studio's JSON export read back as answers.

Label Studio (`pip install label-studio`, runs locally on SQLite) shows each text with the teacher's and
the student's labels as pre-annotations (`predictions`, one per model, the teacher's first); a person
accepts or changes the choice. Import `round-N.labelstudio.json` into a project made with the labelling
config in `labelstudio.xml` (both written by stage=review); export the project as JSON and pass that file as
`review.answers=export.json`. Each task's latest annotation that was not cancelled is its answer; a task
with none is skipped, like an empty `gold` cell.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pandas as pd

from ..errors import DistillError

CONTROL, OBJECT = "label", "text"  # the Choices control's name and the Text object's name


def labeling_config(labels: list[str]) -> str:
    choices = "\n".join(f"    <Choice value={quoteattr(label)}/>" for label in labels)
    return (f"<View>\n  <Header value=\"$why\"/>\n  <Text name=\"{OBJECT}\" value=\"$text\"/>\n"
            f"  <Choices name=\"{CONTROL}\" toName=\"{OBJECT}\" choice=\"single\" showInline=\"true\">\n{choices}\n"
            f"  </Choices>\n</View>\n")


def _choice(label: str) -> dict:
    return {"from_name": CONTROL, "to_name": OBJECT, "type": "choices", "value": {"choices": [label]}}


def _plain(value):
    """A JSON value from a queue cell (numpy numbers, NaN as null)."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def to_tasks(queue: pd.DataFrame) -> list[dict]:
    """One task a queue row: every column but `gold` as data, the models' labels as predictions."""
    tasks = []
    for row in queue.to_dict("records"):
        data = {k: _plain(v) for k, v in row.items() if k != "gold"}
        predictions = [{"model_version": model, "score": _plain(row[f"{model}_prob"]),
                        "result": [_choice(row[f"{model}_label"])]}
                       for model in ("teacher", "student") if row.get(f"{model}_label") is not None]
        tasks.append({"data": data, "predictions": predictions})
    return tasks


def write_tasks(queue: pd.DataFrame, labels: list[str], path: Path) -> Path:
    """round-N.labelstudio.json, and labelstudio.xml (the labelling config) beside it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_tasks(queue), ensure_ascii=False, indent=1))
    tmp.replace(path)
    (path.parent / "labelstudio.xml").write_text(labeling_config(labels))
    return path


def _answer(task: dict) -> str:
    """The label of a task's latest annotation that was not cancelled ('' when there is none)."""
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    done.sort(key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))
    for annotation in reversed(done):
        for result in annotation.get("result") or []:
            choices = (result.get("value") or {}).get("choices")
            if result.get("from_name") == CONTROL and choices:
                return str(choices[0])
    return ""


def read_export(path: Path) -> pd.DataFrame:
    """`text`, `gold` and `part` of a Label Studio JSON export (the full JSON, or JSON-MIN)."""
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DistillError(f"review.answers: {path} is not a readable JSON file ({e})") from e
    if not isinstance(tasks, list):
        raise DistillError(f"review.answers: {path} is not a Label Studio JSON export (a list of tasks)")
    rows = []
    for n, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise DistillError(f"review.answers: {path}, task {n + 1} is not an object")
        data = task.get("data", task)  # JSON-MIN puts the data and the answer at the top level
        gold = _answer(task) if "annotations" in task else (task.get(CONTROL) or "")
        rows.append({"text": data.get("text"), "gold": gold, "part": data.get("part")})
    return pd.DataFrame(rows, columns=["text", "gold", "part"])
