"""Experiment tracking: one Weights & Biases run per command, when `logger=wandb`.

`tracked(cfg, stage)` opens the run around a stage (or the three of stage=all) and finishes it;
`log_stage` records each stage's result in it: label counts and speed, the student folder as a model
artifact, the eval table and plots. The Trainer's per-step metrics reach the same run because
`report_to()` names wandb only while a run is open, and transformers' WandbCallback reuses `wandb.run`.

With `logger=none` (the default) wandb is never imported. `WANDB_MODE=offline` needs no network and no
key: runs land in `<paths.outputs>/wandb/` and `wandb sync` uploads them later.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterator, Optional

from omegaconf import DictConfig, OmegaConf

from .config import StudentKind
from .errors import DistillError, require
from .students.folder import kind_of

log = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled")
MODE_ALIASES = {"dryrun": "offline", "run": "online"}
NO_KEY = ("logger=wandb is online but no W&B API key is configured: run `wandb login`, set WANDB_API_KEY, "
          "or log offline with WANDB_MODE=offline (or logger.mode=offline) and upload later with `wandb sync`")


def report_to() -> list[str]:
    """The Trainer's `report_to`: ["wandb"] while a W&B run is open (it logs into that run), else []."""
    wandb = sys.modules.get("wandb")  # never imported here: logger=none must not load wandb
    return ["wandb"] if wandb is not None and getattr(wandb, "run", None) is not None else []


def _enabled(cfg: DictConfig) -> bool:
    logger = cfg.get("logger")
    kind = getattr(logger.kind, "value", logger.kind) if logger is not None else "none"
    return kind == "wandb"


def _import_wandb():
    return require("wandb", "logger=wandb", "wandb")[0]


def resolve_mode(mode: Optional[str]) -> str:
    """logger.mode, else WANDB_MODE, else online; checked, with W&B's old aliases mapped."""
    raw = mode or os.environ.get("WANDB_MODE") or "online"
    value = MODE_ALIASES.get(raw, raw)
    if value not in MODES:
        raise DistillError(f"W&B mode '{raw}' (logger.mode or WANDB_MODE) must be one of {', '.join(MODES)}")
    return value


def has_credentials(wandb) -> bool:
    """Whether W&B would find an API key (WANDB_API_KEY, ~/.netrc, settings) without prompting for one."""
    try:
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib.wbauth import authenticate
    except ImportError:  # another wandb layout: the documented places only
        return bool(os.environ.get("WANDB_API_KEY")) or "api.wandb.ai" in _read(Path.home() / ".netrc")
    host = wandb_setup.singleton().settings.base_url
    try:
        found = authenticate.authenticate_session(host=host, source="distill", prompt=False, update_session=False)
    except wandb.errors.Error as e:  # e.g. a malformed WANDB_API_KEY
        raise DistillError(f"W&B credentials: {e}") from None
    return found is not None


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


@dataclass(frozen=True)
class HydraJob:
    output_dir: Path  # the job's folder (config, log, result.json)
    overrides: list[str]
    num: Optional[int]  # the job number under -m
    multirun: bool


def hydra_job() -> Optional[HydraJob]:
    """The Hydra job this process runs, None outside `@hydra.main` (tests, notebooks)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return HydraJob(Path(hc.runtime.output_dir), list(hc.overrides.task), hc.job.get("num"),
                    hc.mode == RunMode.MULTIRUN)


def _sweep_job() -> tuple[Optional[str], Optional[int]]:
    """(sweep folder name, job number) under `-m`; (None, None) in a single run or outside Hydra."""
    job = hydra_job()
    return (job.output_dir.parent.name, job.num) if job is not None and job.multirun else (None, None)


def init_kwargs(cfg: DictConfig, stage: str, mode: str) -> dict:
    """wandb.init's arguments: project/entity/tags from logger.*, the sweep as the group, the config."""
    logger = cfg.logger
    sweep, job = _sweep_job()
    name = logger.name or "-".join(str(x) for x in (cfg.data.name, cfg.teacher.name, cfg.student.name,
                                                    cfg.train.targets))
    folder = Path(os.path.expanduser(logger.dir or cfg.paths.outputs))
    folder.mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps(OmegaConf.to_container(cfg, resolve=True), default=_plain))
    return dict(project=logger.project, entity=logger.entity, group=logger.group or sweep,
                name=f"{name}-job{job}" if job is not None and not logger.name else name,
                tags=list(logger.tags) or None, job_type=stage, config=config, mode=mode, dir=str(folder))


def _plain(value):
    return getattr(value, "value", str(value))  # enums (stage) by their value


@contextmanager
def tracked(cfg: DictConfig, stage: str) -> Iterator[object]:
    """Open a W&B run for this command (logger=wandb), finish it after; yields the run or None."""
    if not _enabled(cfg):
        yield None
        return
    wandb = _import_wandb()
    mode = resolve_mode(cfg.logger.mode)
    if mode == "online" and not has_credentials(wandb):
        raise DistillError(NO_KEY)
    try:
        run = wandb.init(**init_kwargs(cfg, stage, mode))
    except wandb.errors.Error as e:
        raise DistillError(f"W&B could not start a run ({mode}): {e}") from None
    if mode == "offline":
        folder = Path(run.dir).parent  # run.dir is its files/ folder
        log.info("W&B run logged offline in %s: `wandb sync %s` uploads it", folder, folder)
    try:
        yield run
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()


def log_stage(stage: str, cfg: DictConfig, result: dict) -> dict:
    """Record a stage's result in the open W&B run (nothing with logger=none); returns the result."""
    if not _enabled(cfg) or not isinstance(result, dict):
        return result
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None)
    if run is None:
        return result
    LOGGERS.get(stage, _log_scalars)(wandb, run, stage, cfg, result)
    return result


def _scalars(prefix: str, values: dict) -> dict:
    """Numbers and booleans of a dict, one level of nested dicts flattened (`prefix/key@sub`)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update({f"{prefix}/{key}@{k}": v for k, v in value.items() if _is_scalar(v)})
        elif _is_scalar(value):
            out[f"{prefix}/{key}"] = value
    return out


def _is_scalar(value) -> bool:
    return isinstance(value, (bool, int, float)) and not (isinstance(value, float) and math.isnan(value))


def _log_scalars(wandb, run, stage: str, cfg: DictConfig, result: dict) -> None:
    run.log(_scalars(stage, result))


def _log_label(wandb, run, stage: str, cfg: DictConfig, result: dict) -> None:
    counts = result.get("label_counts") or {}
    run.log({**_scalars(stage, {k: v for k, v in result.items() if k != "label_counts"}),
             **{f"{stage}/count/{label}": n for label, n in counts.items()}})


def _log_train(wandb, run, stage: str, cfg: DictConfig, result: dict) -> None:
    run.log(_scalars(stage, result))
    folder = Path(result.get("student_dir") or "")
    if not cfg.logger.log_model or kind_of(folder) != StudentKind.finetune:
        return
    # top-level files only: a resumable run's checkpoints/ are not part of the student
    name = _slug(f"{cfg.data.name}-{folder.name}")
    meta = {k: v for k, v in result.items() if _is_scalar(v) or isinstance(v, str)}
    artifact = wandb.Artifact(name, type="model", metadata={**meta, "labels": list(cfg.data.labels)})
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        artifact.add_file(str(path), name=path.name)
    run.log_artifact(artifact)


def _log_eval(wandb, run, stage: str, cfg: DictConfig, result: dict) -> None:
    models = result.get("models") or []
    logged, seen = {}, set()
    for entry in models:
        # the first model of a role by its role (eval/student/accuracy); later ones (e.g. an ONNX export) by name
        role = entry.get("role") or "model"
        key = role if role not in seen else f"{role}_{_slug(entry.get('name'))}"
        seen.add(role)
        logged.update(_scalars(f"{stage}/{key}", {k: v for k, v in entry.items() if k not in ("name", "role")}))
    if models:
        logged[f"{stage}/models"] = models_table(wandb, models)
    for plot in result.get("plots") or []:
        if Path(plot).is_file():
            logged[f"{stage}/plots/{Path(plot).stem}"] = wandb.Image(str(plot))
    run.log(logged)
    report = result.get("report")
    if report and Path(report).is_file():
        run.save(str(report), base_path=str(Path(report).parent), policy="now")


def _slug(name) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-")


def models_table(wandb, models: list[dict]):
    """One row per scored model; nested dicts (samples_per_s) become `key@sub` columns."""
    rows = [_flatten(m) for m in models]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return wandb.Table(columns=columns, data=[[_cell(row.get(c)) for c in columns] for row in rows])


def _cell(value):
    """A table cell W&B can type: a config choice (an Enum) as its plain string."""
    return value.value if isinstance(value, Enum) else value


def _flatten(entry: dict) -> dict:
    out = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            out.update({f"{key}@{k}": _cell(v) for k, v in value.items()})
        else:
            out[key] = _cell(value)
    return out


def _cell(value):
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value, default=str)


LOGGERS = {"label": _log_label, "train": _log_train, "eval": _log_eval}
