"""A trained student as a Hugging Face Hub model repo: first a complete folder on disk, then one upload.

The folder holds the weights as safetensors, the tokenizer, config.json with the label names, the model
card (README.md, see distill.hub.card), the eval stage's plots and numbers. It is checked by loading it
with `transformers.pipeline` before anything is uploaded, and it stays on disk whatever the upload does.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Optional

from ..artifacts import classifier_teacher_of
from ..config import StudentKind
from ..errors import DistillError
from ..students.folder import META_FILE, RECORD_FILE, kind_of, reading
from .card import CardInputs, build_card, dataset_info, hub_id_of

log = logging.getLogger(__name__)

# Student-folder files that stay behind: pickles, training state, distill's own bookkeeping, the old card.
LEFT_BEHIND = ("training_args.bin", "trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth",
               "README.md", META_FILE, RECORD_FILE)
EVAL_FILE = "distill_eval.json"  # the eval stage's numbers, for machines (the card has them for people)
LOGIN_HINT = "set HF_TOKEN or run `hf auth login`"


def check_repo_id(repo_id: Optional[str]) -> str:
    """`ORG/NAME` as the Hub accepts it; anything else is a one-line DistillError."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not repo_id:
        raise DistillError("hub.repo_id is not set: `python -m distill stage=publish hub.repo_id=ORG/NAME` "
                           "(add hub.dry_run=true to only write the repo folder)")
    repo_id = str(repo_id)
    if repo_id.count("/") != 1:
        raise DistillError(f"hub.repo_id='{repo_id}' must be ORG/NAME (or USER/NAME), e.g. distill/minilm-sst2")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise DistillError(f"hub.repo_id='{repo_id}' is not a valid Hub repo id: {e}") from e
    return repo_id


def check_publishable(folder: Path) -> None:
    """Only what `pipeline("text-classification")` loads is published: a fine-tuned transformers student."""
    kind = kind_of(folder)
    if kind != StudentKind.finetune:
        raise DistillError(f"the student at {folder} is a student.kind={kind} model, which "
                           "pipeline('text-classification') cannot load; publish takes student.kind=finetune students")


def read_student(folder: Path, fallback_config: dict) -> dict:
    """How the student was made: its labels, the teacher/data/student/train configs, the training summary.

    `distill_train.json` (written by stage=train) is required; `distill_config.json` (the full resolved
    config of that run) is preferred over `fallback_config`, the config of this publish run."""
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise DistillError(f"{folder} has no distill_train.json: the card describes how a student was made, so "
                           "publish needs a folder that `python -m distill stage=train` wrote")
    meta = json.loads(meta_path.read_text())
    made_path = folder / RECORD_FILE
    assistant = None
    if made_path.is_file():
        record = json.loads(made_path.read_text())
        made = record["config"]
        assistant = classifier_teacher_of(record.get("labels_path"))
    else:
        log.warning("publish: %s has no distill_config.json; the card takes teacher and data from this run's "
                    "config", folder)
        made = fallback_config
    train = meta.get("train") or made["train"]
    weak = made.get("weak") if not train.get("labels_path") else None  # stage=weak labels, not one teacher
    return {"labels": meta.get("labels"), "teacher": made["teacher"], "data": made["data"], "weak": weak,
            "assistant": assistant,
            "student": meta.get("student") or made["student"], "train": train,
            "summary": {k: meta[k] for k in ("n_texts", "seconds", "train_loss", "label_distribution") if k in meta}}


def copy_model(student: Path, out: Path, labels: list) -> None:
    """Weights (as safetensors), config and tokenizer files into `out`; training leftovers stay behind."""
    for path in sorted(student.iterdir()):
        if path.is_file() and path.name not in LEFT_BEHIND and not path.name.endswith((".bin", ".pt", ".pth", ".tmp")):
            shutil.copyfile(path, out / path.name)
    if not list(out.glob("*.safetensors")):  # an old folder with pickled weights: convert them
        from transformers import AutoModelForSequenceClassification

        with reading(student):
            AutoModelForSequenceClassification.from_pretrained(student).save_pretrained(out)
    if not ((out / "tokenizer.json").is_file() or (out / "tokenizer_config.json").is_file()):
        raise DistillError(f"student folder {student} has no tokenizer files; re-run stage=train")
    config = json.loads((out / "config.json").read_text())
    names = [config.get("id2label", {}).get(str(i)) for i in range(len(labels))]
    if names != list(labels):
        raise DistillError(f"student {student} has the label map {config.get('id2label')}, its training used "
                           f"{list(labels)}; re-run stage=train")


def copy_images(eval_dir: Optional[Path], out: Path) -> list[str]:
    """The eval report's plots, copied under images/; their repo paths, for the card."""
    if eval_dir is None or not eval_dir.is_dir():
        return []
    pngs = sorted(eval_dir.glob("*.png"))
    if pngs:
        (out / "images").mkdir()
    for png in pngs:
        shutil.copyfile(png, out / "images" / png.name)
    return [f"images/{png.name}" for png in pngs]


def try_pipeline(folder: Path, text: str, labels: list) -> list:
    """Load the folder exactly as a user will (`pipeline("text-classification")`) and classify one text."""
    from transformers import pipeline

    try:
        classify = pipeline("text-classification", model=str(folder), device="cpu")
        output = classify(text)
    except (OSError, ValueError) as e:
        raise DistillError(f"the repo folder {folder} does not load with transformers.pipeline: {e}") from e
    if output[0]["label"] not in labels:
        raise DistillError(f"the repo folder {folder} predicts '{output[0]['label']}', not one of {labels}")
    return [{"label": o["label"], "score": round(float(o["score"]), 3)} for o in output]


def base_license(student_model: Optional[str]) -> Optional[str]:
    """The license named in a local base model's own card, if it has one."""
    from huggingface_hub import metadata_load

    card = Path(os.path.expanduser(str(student_model or ""))) / "README.md"
    try:
        return (metadata_load(card) or {}).get("license") if card.is_file() else None
    except (OSError, ValueError):
        return None


def public_metrics(metrics: dict) -> dict:
    """metrics.json without local paths: a model is named by its Hub id or folder name."""
    models = [{**e, "model": hub_id_of(e.get("model")) or Path(str(e.get("model", ""))).name}
              for e in metrics.get("models", [])]
    return {**metrics, "models": models}


def student_entry(metrics: Optional[dict], folder: Path) -> Optional[str]:
    """The name of this folder's entry in metrics.json (a student entry whose `model` is this folder)."""
    if not metrics:
        return None
    students = [e for e in metrics.get("models", []) if e.get("role") == "student"]
    for entry in students:
        if Path(os.path.expanduser(str(entry.get("model", "")))).resolve() == folder.resolve():
            return entry["name"]
    return students[0]["name"] if students else None


def assemble(student: Path, out: Path, repo_id: str, made: dict, metrics: Optional[dict] = None,
             eval_dir: Optional[Path] = None, base_model: Optional[str] = None,
             license: Optional[str] = None) -> Path:
    """Write the complete repo folder at `out` (replacing an earlier one only once the new one is whole)."""
    labels = list(made["labels"])
    if metrics and list(metrics.get("labels", labels)) != labels:
        raise DistillError(f"the eval metrics are for labels {metrics.get('labels')}, the student predicts "
                           f"{labels}; re-run stage=eval for this student or set hub.metrics_path")
    if out.exists() and any(out.iterdir()) and not written_by_publish(out):
        raise DistillError(f"{out} exists and is not a repo folder that stage=publish wrote; choose an empty or "
                           "new hub.out_dir")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        copy_model(student, tmp, labels)
        images = copy_images(eval_dir, tmp)
        text = dataset_info(made["data"])["example"] or "This is an example."
        with reading(student):  # its weights, copied: a damaged file fails here, named, before any upload
            tried = try_pipeline(tmp, text, labels)
        inputs = CardInputs(
            repo_id=repo_id, labels=labels, teacher=made["teacher"], data=made["data"], student=made["student"],
            train=made["train"], summary=made["summary"], weak=made.get("weak"), assistant=made.get("assistant"),
            metrics=metrics,
            student_entry=student_entry(metrics, student), images=images,
            example=(text, tried), base_model=base_model,
            license=license or base_license(made["student"].get("model")))
        build_card(inputs).save(tmp / "README.md")
        if metrics:
            (tmp / EVAL_FILE).write_text(json.dumps(public_metrics(metrics), indent=2) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def written_by_publish(folder: Path) -> bool:
    """A folder this module wrote (its card carries the `distill` tag), so it may be replaced."""
    from huggingface_hub import metadata_load

    try:
        return "distill" in ((metadata_load(folder / "README.md") or {}).get("tags") or [])
    except (OSError, ValueError):
        return False


def is_network_error(err: BaseException) -> bool:
    """Connection refused, DNS, timeouts: OSError, or an error of the HTTP client huggingface_hub uses."""
    clients = ("httpx", "httpx2", "requests", "urllib3")
    return isinstance(err, OSError) or any(c.__module__.split(".")[0] in clients for c in type(err).__mro__)


def upload(folder: Path, repo_id: str, private: bool = False, commit_message: Optional[str] = None) -> dict:
    """Create the repo if needed and upload the folder in one go. Every failure is a one-line DistillError
    that says the folder is complete and how to upload it later."""
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HfHubHTTPError

    later = (f"the repo folder is complete at {folder}; upload it later with "
             f"`hf upload {repo_id} {folder} .{' --private' if private else ''}`")
    token = get_token()
    if not token:
        raise DistillError(f"no Hugging Face token to upload with: {LOGIN_HINT}, then run this again; {later}")
    if constants.is_offline_mode():
        raise DistillError(f"HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it and run this again; {later}")
    # HF_ENDPOINT is read here, not only when huggingface_hub was imported, so it can be set late.
    endpoint = os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")
    api = HfApi(endpoint=endpoint, token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                                   commit_message=commit_message or "Upload distilled student")
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        why = {401: f"the Hub refused the token (401): {LOGIN_HINT} with a write token",
               403: f"this token may not write to {repo_id} (403): use a write token of a member of its namespace"}
        first = str(e).strip().splitlines()[0]
        raise DistillError(f"upload to {repo_id} failed: {why.get(status, first)}; {later}") from e
    except ValueError as e:  # the Hub rejected the card's metadata
        raise DistillError(f"upload to {repo_id} failed: {' '.join(str(e).split())}; {later}") from e
    except Exception as e:
        if not is_network_error(e):
            raise
        raise DistillError(f"could not reach {endpoint} ({type(e).__name__}: {e}); {later}") from e
    return {"url": str(url), "commit_url": commit.commit_url, "commit": commit.oid}
