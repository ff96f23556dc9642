"""Sweeps (`python -m distill -m ...`): every job's result, a summary of all jobs, a number to optimise.

- `finish_job` writes the job's stage result as `result.json` into its Hydra output folder, and returns
  the number named by `objective` (e.g. `eval.student_accuracy`) when one is set: what an optimising
  sweeper such as hparams_search=optuna reads.
- `SweepSummary`, a Hydra callback registered in conf/config.yaml, reads those files when the multirun
  ends and writes `summary.md` and `summary.json` into the sweep folder, and prints the table.

Imported by Hydra at start-up for every command: keep it light (no torch, no pandas).
"""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .artifacts import write_json
from .errors import DistillError
from .tracking import hydra_job

RESULT_FILE = "result.json"
# (column, key in the result): shown when at least one job has a value
METRICS = (
    ("student acc", "eval.models.student.accuracy"),
    ("student F1", "eval.models.student.macro_f1"),
    ("agreement", "eval.models.student.agreement_with_teacher"),
    ("teacher acc", "eval.models.teacher.accuracy"),
    ("train loss", "train.train_loss"),
    ("train s", "train.seconds"),
    ("texts", "train.n_texts"),
    ("labels cached", "label.cached"),
)

# preset group -> {preset: (the Hydra plugin's module, the distill extra that installs it)}
PLUGINS = {
    "hparams_search": {"optuna": ("hydra_plugins.hydra_optuna_sweeper", "optuna")},
    "launcher": {"joblib": ("hydra_plugins.hydra_joblib_launcher", "ray"),
                 "ray": ("hydra_plugins.hydra_ray_launcher", "ray")},
}


def lookup(result: Any, key: str) -> Any:
    """The value at a dotted key; in a list of models, a part picks the entry by role or name."""
    node = result
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list):
            node = next((e for e in node if isinstance(e, dict) and part in (e.get("role"), e.get("name"))), None)
        else:
            return None
        if node is None:
            return None
    return node


def by_stage(stage: str, result: dict) -> dict:
    """Results keyed by stage, whatever ran: stage=all already is, a single stage is wrapped."""
    return result if stage == "all" else {stage: result}


def objective_value(key: str, results: dict) -> float:
    value = lookup(results, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        found = ", ".join(f"{stage}.{k}" for stage, r in results.items() if isinstance(r, dict)
                          for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        raise DistillError(f"objective '{key}' is not a number in this run's result (numbers here: {found}); "
                           f"e.g. objective=eval.student_accuracy with stage=all")
    return float(value)


def finish_job(cfg: DictConfig, stage: str, result: dict) -> Any:
    """Write `result.json` into the Hydra job folder; return the objective (a float) when one is set."""
    results = by_stage(stage, result)
    objective = objective_value(cfg.objective, results) if cfg.get("objective") else None
    job = hydra_job()
    if job is not None:
        record = {"job": job.num, "stage": stage, "overrides": job.overrides, "result": results,
                  "objective": {"key": cfg.objective, "value": objective} if objective is not None else None}
        write_json(job.output_dir / RESULT_FILE, record)
    return objective if objective is not None else result


def summarize(sweep_dir: Path) -> Optional[str]:
    """summary.json + summary.md of every job's result.json under `sweep_dir`; the markdown, or None."""
    records = []
    for path in sorted(Path(sweep_dir).glob(f"*/{RESULT_FILE}"), key=lambda p: _job_order(p.parent.name)):
        records.append(json.loads(path.read_text()))
    if not records:
        return None
    common = [o for o in records[0]["overrides"] if all(o in r["overrides"] for r in records)]
    columns = [(name, key) for name, key in METRICS if any(lookup(r["result"], key) is not None for r in records)]
    objective = next((r["objective"]["key"] for r in records if r.get("objective")), None)
    rows = []
    for r in records:
        row = {"job": r["job"], "overrides": [o for o in r["overrides"] if o not in common]}
        row.update({name: lookup(r["result"], key) for name, key in columns})
        if objective:
            row[objective] = (r.get("objective") or {}).get("value")
        rows.append(row)
    best = max((row for row in rows if objective and row.get(objective) is not None),
               key=lambda row: row[objective], default=None)
    summary = {"sweep_dir": str(sweep_dir), "common_overrides": common, "objective": objective,
               "best_job": best["job"] if best else None, "jobs": rows,
               "results": {str(r["job"]): r for r in records}}
    write_json(Path(sweep_dir) / "summary.json", summary)
    text = render(rows, common, objective, best, sweep_dir)
    (Path(sweep_dir) / "summary.md").write_text(text)
    return text


def _job_order(name: str):
    return (0, int(name)) if name.isdigit() else (1, name)


def render(rows: list[dict], common: list[str], objective: Optional[str], best: Optional[dict],
           sweep_dir: Path) -> str:
    header = list(rows[0])
    lines = [f"### sweep {Path(sweep_dir).name}: {len(rows)} jobs", "",
             f"common overrides: `{' '.join(common)}`" if common else "no common overrides", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [" ".join(row["overrides"]) or "-" if k == "overrides" else _fmt(row[k]) for k in header]
        lines.append("| " + " | ".join(cells) + " |")
    if best:
        lines += ["", f"best {objective}: {_fmt(best[objective])} (job {best['job']}: "
                      f"`{' '.join(best['overrides']) or '-'}`)"]
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


class SweepSummary(Callback):
    """Hydra callback: after `-m`, summarise every job of the sweep (see `summarize`)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        text = summarize(Path(config.hydra.sweep.dir))
        if text:
            print("\n" + text + f"\n(summary.md and summary.json in {config.hydra.sweep.dir})")


def missing_plugin(argv: list[str]) -> Optional[str]:
    """A one-line error when `hparams_search=<preset>` or `launcher=<preset>` needs a Hydra plugin that is
    not installed."""
    for arg in argv:
        key, _, value = arg.partition("=")
        group = key.lstrip("+~")
        if value in PLUGINS.get(group, {}):
            module, extra = PLUGINS[group][value]
            if _missing(module):
                kind = "sweeper" if group == "hparams_search" else "launcher"
                return f"{group}={value} needs the Hydra {value} {kind} plugin: pip install 'distill[{extra}]'"
    return None


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:
        return True
