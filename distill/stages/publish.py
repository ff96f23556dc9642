"""Stage `publish`: the trained student as a Hugging Face Hub model repo.

Writes a complete, loadable repo folder (weights, tokenizer, label map, model card with the eval results)
under `<paths.outputs>/hub/<ORG>--<NAME>/`, then uploads it unless `hub.dry_run=true`. A student that
was never evaluated is still published, with a card that says so and no `model-index`; run stage=eval
first to put the numbers on the card. Without a token or a network the folder is kept and the one-line
error says how to upload it later.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from .. import artifacts
from ..errors import DistillError
from ..hub.repo import assemble, check_repo_id, read_student, upload

log = logging.getLogger(__name__)


def find_student(cfg: DictConfig) -> Path:
    path = Path(os.path.expanduser(cfg.hub.student_path)) if cfg.hub.student_path else artifacts.student_dir(cfg)
    spec = path / "distill_student.json"  # students that are not a transformers model (student.kind)
    if not (path / "config.json").is_file() and spec.is_file():
        kind = json.loads(spec.read_text()).get("kind")
        raise DistillError(f"the student at {path} is a student.kind={kind} model, which "
                           "pipeline('text-classification') cannot load; publish takes student.kind=finetune students")
    if not (path / "config.json").is_file():
        raise DistillError(f"no trained student at {path}: run `python -m distill stage=train` with the same "
                           "overrides first, or set hub.student_path")
    return path


def find_metrics(cfg: DictConfig, student: Path, data_name: str) -> Optional[Path]:
    """`hub.metrics_path`, else what stage=eval wrote for this student (its eval folder has the student
    folder's name); None when the student was never evaluated."""
    if cfg.hub.metrics_path:
        path = Path(os.path.expanduser(cfg.hub.metrics_path))
        if not path.is_file():
            raise DistillError(f"hub.metrics_path: {path} does not exist")
        return path
    if cfg.hub.student_path:
        path = artifacts.outputs_root(cfg) / "eval" / data_name / student.name / "metrics.json"
    else:
        path = artifacts.eval_dir(cfg) / "metrics.json"
    if path.is_file():
        return path
    # else an `eval.students=all` comparison that measured this folder among others (the newest one)
    found = [p for p in (artifacts.outputs_root(cfg) / "eval" / data_name).glob("*-all/metrics.json")
             if _measures(p, student)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _measures(metrics_path: Path, student: Path) -> bool:
    models = json.loads(metrics_path.read_text()).get("models", [])
    return any(Path(os.path.expanduser(str(m.get("model", "")))).resolve() == student.resolve() for m in models)


def repo_folder(cfg: DictConfig, repo_id: str) -> Path:
    if cfg.hub.out_dir:
        return Path(os.path.expanduser(cfg.hub.out_dir))
    return artifacts.outputs_root(cfg) / "hub" / repo_id.replace("/", "--")  # '--' never occurs in a repo id


def run(cfg: DictConfig) -> dict:
    repo_id = check_repo_id(cfg.hub.repo_id)
    student = find_student(cfg)
    made = read_student(student, OmegaConf.to_container(cfg, resolve=True))
    metrics_path = find_metrics(cfg, student, made["data"]["name"])
    metrics = json.loads(metrics_path.read_text()) if metrics_path else None
    if metrics is None:
        log.warning("publish: %s was never evaluated; the card says so and has no results. Run "
                    "`python -m distill stage=eval` with the same overrides first to add them", student)
    folder = assemble(student, repo_folder(cfg, repo_id), repo_id, made, metrics,
                      eval_dir=metrics_path.parent if metrics_path else None,
                      base_model=cfg.hub.base_model, license=cfg.hub.license)
    result = {"repo_id": repo_id, "folder": str(folder), "student_dir": str(student),
              "metrics_path": str(metrics_path) if metrics_path else None, "uploaded": False}
    if cfg.hub.dry_run:
        log.info("publish: dry run, nothing uploaded; the repo folder is at %s", folder)
        return result
    message = cfg.hub.commit_message or (f"Upload {made['student'].get('name')} student distilled from "
                                         f"{made['teacher'].get('name')} with distill")
    result.update(upload(folder, repo_id, private=cfg.hub.private, commit_message=message), uploaded=True)
    log.info("publish: uploaded %s -> %s", folder, result["url"])
    return result
