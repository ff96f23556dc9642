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

from omegaconf import DictConfig, OmegaConf

from .. import artifacts
from ..hub.repo import assemble, check_publishable, check_repo_id, read_student, upload

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    repo_id = check_repo_id(cfg.hub.repo_id)
    student = artifacts.find_student(cfg, "hub.student_path")
    check_publishable(student)
    made = read_student(student, OmegaConf.to_container(cfg, resolve=True))
    metrics_path = artifacts.find_metrics(cfg, student, made["data"]["name"])
    metrics = json.loads(metrics_path.read_text()) if metrics_path else None
    if metrics is None:
        log.warning("publish: %s was never evaluated; the card says so and has no results. Run "
                    "`python -m distill stage=eval` with the same overrides first to add them", student)
    folder = assemble(student, artifacts.repo_folder(cfg, repo_id), repo_id, made, metrics,
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
