"""Typed configuration schema.

The dataclasses below are registered in Hydra's ConfigStore as the schema of `conf/config.yaml`, so a
misspelt key or a value of the wrong type fails at composition time with the key's full name.
`load_config()` composes the real `conf/` tree without `@hydra.main`, for tests and notebooks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class Stage(str, Enum):
    label = "label"
    train = "train"
    eval = "eval"
    all = "all"


@dataclass
class PathsConfig:
    # Environment variables with defaults; relative paths are taken from the working directory.
    models: str = "${oc.env:DISTILL_MODELS,'~/.cache/distill-models'}"
    data: str = "${oc.env:DISTILL_DATA,'../shared/data'}"
    outputs: str = "${oc.env:DISTILL_OUTPUTS,'outputs'}"


@dataclass
class SourceConfig:
    """One file (or hub split) of a data set."""

    path: Optional[str] = None  # relative to paths.data unless absolute; hub: the split name
    format: Optional[str] = None  # csv | tsv | jsonl | parquet | lines | hub; None: from the extension
    labels_path: Optional[str] = None  # `lines` layout: one gold label per line, scoring only


@dataclass
class DataConfig:
    name: str = MISSING
    hub_id: Optional[str] = None  # Hugging Face dataset id, for `format: hub` sources
    hub_config: Optional[str] = None
    pool: SourceConfig = field(default_factory=SourceConfig)  # the unlabelled texts the teacher labels
    heldout: Optional[SourceConfig] = None  # scoring set; None: split off the pool with heldout_fraction
    text_columns: List[str] = field(default_factory=lambda: ["text"])  # joined with text_separator
    text_separator: str = ". "
    label_column: Optional[str] = "label"  # gold labels, read only for scoring
    column_names: Optional[List[str]] = None  # for csv/tsv files without a header row
    labels: List[str] = MISSING  # label names, in id order: what the teacher and student predict
    label_map: Optional[Dict[str, str]] = None  # gold value -> label name (e.g. "1": World)
    pool_size: Optional[int] = None  # sample this many pool texts (seeded); None: all
    heldout_size: Optional[int] = None
    heldout_fraction: float = 0.2
    seed: int = 42


@dataclass
class TeacherConfig:
    name: str = MISSING
    kind: str = "nli"  # key of distill.teachers.TEACHERS: nli | embedding | onnx
    model: str = MISSING  # local folder or Hugging Face hub id
    template: str = "This example is {}."
    # Prompt ensemble: several templates, scores averaged over them (replaces `template` when set).
    templates: Optional[List[str]] = None
    # Per-label descriptions used instead of templates, several per label averaged
    # (e.g. positive: ["This review is positive.", "The movie was good."]).
    descriptions: Dict[str, List[str]] = field(default_factory=dict)
    multi_label: bool = False
    batch_size: int = 64  # nli/onnx: (text, hypothesis) pairs per forward pass; embedding: texts
    max_tokens: Optional[int] = None  # nli: also cap each batch at this many padded tokens (short pairs, bigger batches)
    max_length: int = 512
    temperature: float = 0.05  # embedding teacher: softmax(cosine / temperature)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16


@dataclass
class StudentConfig:
    name: str = MISSING
    model: str = MISSING  # local folder or hub id of an encoder
    max_length: int = 128


@dataclass
class LabelConfig:
    shard_size: int = 512  # texts per shard written to disk; a crash loses at most one shard


@dataclass
class TrainConfig:
    targets: str = "soft"  # soft: teacher probabilities; hard: teacher argmax
    temperature: float = 2.0  # soft targets and student logits are divided by T; loss scaled by T^2
    epochs: float = 3.0
    lr: float = 1e-4
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    seed: int = 42
    device: str = "auto"
    labels_path: Optional[str] = None  # a label-stage parquet; None: the one this config's label stage wrote
    overwrite: bool = False  # retrain even when this exact student was already trained


@dataclass
class EvalConfig:
    batch_sizes: List[int] = field(default_factory=lambda: [1, 32, 64])
    bench_texts: int = 128  # held-out texts timed at each batch size
    warmup_batches: int = 2
    teacher: bool = True  # score and time the teacher too
    student_path: Optional[str] = None  # a student folder; None: the one this config's train stage wrote


@dataclass
class Config:
    stage: Stage = Stage.all
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = MISSING
    teacher: TeacherConfig = MISSING
    student: StudentConfig = MISSING
    label: LabelConfig = field(default_factory=LabelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    debug: bool = False  # show full tracebacks instead of one-line errors


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="distill_schema", node=Config)
    cs.store(group="data", name="schema", node=DataConfig)
    cs.store(group="teacher", name="schema", node=TeacherConfig)
    cs.store(group="student", name="schema", node=StudentConfig)


def load_config(overrides: Optional[List[str]] = None) -> DictConfig:
    """Compose `conf/config.yaml` with Hydra overrides, outside of `@hydra.main`."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides or []))


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
