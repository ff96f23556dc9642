"""Typed configuration schema.

The dataclasses below are registered in Hydra's ConfigStore as the schema of `conf/config.yaml`, so a
misspelt key or a value of the wrong type fails at composition time with the key's full name.
`load_config()` composes the real `conf/` tree without `@hydra.main`, for tests and notebooks.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from .errors import DistillError

CONF_DIR = Path(__file__).resolve().parent / "conf"  # shipped inside the package (package data)


def _stem(path) -> str:
    """A data set name from its file or folder (`reviews.csv` -> reviews), safe as a folder name."""
    name = Path(str(path)).expanduser().name
    name = Path(name).stem if "." in name else name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "data"


def _local_or_hub(local: str, hub_id: str) -> str:
    """A model preset's folder where the local copy is laid out (../shared/bin/fetch-models, DISTILL_MODELS),
    else the Hub id it stands for, which from_pretrained downloads when online."""
    return local if Path(os.path.expanduser(str(local))).is_dir() else hub_id


# Registered at import, so that worker processes that unpickle a config resolve them too.
OmegaConf.register_new_resolver("stem", _stem, replace=True)
OmegaConf.register_new_resolver("local_or_hub", _local_or_hub, replace=True)


class Choice(str, Enum):
    """A closed choice of the schema: a wrong value fails at composition, naming the allowed ones. It
    compares, hashes, prints and serialises (JSON, cache keys) as its plain string value."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


def choices(name: str, *values: str) -> type[Choice]:
    """A Choice whose member names are its values, also where a value is no Python name (`onnx-int8`):
    Hydra and OmegaConf accept a member by name."""
    return Choice(name, {v: v for v in values})


class Stage(Choice):
    recipe = "recipe"
    label = "label"
    train = "train"
    eval = "eval"
    predict = "predict"
    all = "all"
    publish = "publish"
    weak = "weak"
    prune = "prune"
    review = "review"


# keys of teachers.TEACHERS, and auto: the candidate most likely to be right (distill/weak/choice.py)
TeacherKind = choices("TeacherKind", "nli", "embedding", "onnx", "classifier", "auto")
StudentKind = choices("StudentKind", "finetune", "embedding_lr")
Trainer = choices("Trainer", "transformers", "txtai")
Targets = choices("Targets", "soft", "hard")
ThresholdFit = choices("ThresholdFit", "rate", "f1")
Variant = choices("Variant", "torch", "onnx", "onnx-int8")  # how a fine-tuned student runs
LabelModel = choices("LabelModel", "dawid_skene", "average", "majority_vote")
NoiseMode = choices("NoiseMode", "off", "flag", "drop", "downweight")
PriorFrom = choices("PriorFrom", "vote", "em")
TeacherVotes = choices("TeacherVotes", "hard", "soft")
EvalStudents = choices("EvalStudents", "this", "all")
PredictModel = choices("PredictModel", "student", "teacher")
Dtype = choices("Dtype", "auto", "float32", "float16", "bfloat16")
EmptyTexts = choices("EmptyTexts", "skip", "error")  # rows without text: skipped and counted, or refused


@dataclass
class PathsConfig:
    # Environment variables with defaults; relative paths are taken from the working directory.
    models: str = "${oc.env:DISTILL_MODELS,'~/.cache/distill-models'}"
    data: str = "${oc.env:DISTILL_DATA,'../shared/data'}"
    outputs: str = "${oc.env:DISTILL_OUTPUTS,'outputs'}"


@dataclass
class SourceConfig:
    """One file (or hub split) of a data set."""

    # a file or a `datasets` save_to_disk folder; a relative path is taken from the working directory, else
    # from paths.data (where the benchmark presets' files are); hub: the split name
    path: Optional[str] = None
    format: Optional[str] = None  # csv | tsv | jsonl | parquet | lines | datasets | hub; None: from the path
    labels_path: Optional[str] = None  # `lines` layout: one gold label per line, scoring only


@dataclass
class DataConfig:
    name: str = "${stem:${data.pool.path}}"  # in output folders; by default the pool file's name
    hub_id: Optional[str] = None  # Hugging Face dataset id, for `format: hub` sources
    hub_config: Optional[str] = None
    pool: SourceConfig = field(default_factory=SourceConfig)  # the unlabelled texts the teacher labels
    heldout: Optional[SourceConfig] = None  # scoring set; None: split off the pool with heldout_fraction
    text_columns: List[str] = field(default_factory=lambda: ["text"])  # joined with text_separator
    text_separator: str = ". "
    # gold labels, read only for scoring; null: no gold (every text is labelled, eval reports what is known
    # without gold). With gold in the pool file and no data.heldout, heldout_fraction of it is held out.
    label_column: Optional[str] = None
    encoding: str = "utf-8"  # of csv, tsv, jsonl and text files (e.g. latin-1, cp1252, utf-16)
    empty_texts: EmptyTexts = EmptyTexts.skip  # rows whose text is empty or blank
    column_names: Optional[List[str]] = None  # for csv/tsv files without a header row
    labels: List[str] = MISSING  # label names, in id order: what the teacher and student predict
    labels_from: Optional[str] = None  # or a text file of label names, one a line (fills data.labels)
    # gold value -> label name (e.g. "1": World); {} rather than null, as OmegaConf 2.3.1 cannot merge a dict into
    # a null Optional[Dict] (data.label_map={awful: negative} on the command line was an AttributeError)
    label_map: Optional[Dict[str, str]] = field(default_factory=dict)
    pool_size: Optional[int] = None  # sample this many pool texts (seeded); None: all
    pool_min_words: int = 0  # keep only pool texts of at least this many words (e.g. drop SST-2's short phrases)
    heldout_size: Optional[int] = None
    heldout_fraction: float = 0.2
    seed: int = 42
    ordinal: bool = False  # labels are ordered (e.g. 1-5 stars): eval adds off-by-one accuracy
    # a text may have several labels (or none of the others: data.none_label): gold is a label set, the teacher
    # scores each label on its own (teacher.multi_label follows), the student learns a sigmoid per label
    multi_label: bool = False
    label_separator: str = ","  # multi-label gold in one text column: "joy,love" (a JSONL/parquet list works too)
    # multi-label: the label that means "none of the others" (GoEmotions' neutral): in a predicted set exactly
    # when no other label is, whatever its own score (teacher.label_sets and the student's thresholds)
    none_label: Optional[str] = None


@dataclass
class TeacherConfig:
    name: str = MISSING
    kind: TeacherKind = TeacherKind.nli  # key of distill.teachers.TEACHERS
    model: str = MISSING  # local folder or Hugging Face hub id
    hub_id: Optional[str] = None  # the Hub model a preset's local folder is a copy of (used when it is absent)
    template: str = "This example is {}."
    # Prompt ensemble: several templates, scores averaged over them (replaces `template` when set).
    templates: Optional[List[str]] = None
    # Per-label descriptions used instead of templates, several per label averaged
    # (e.g. positive: ["This review is positive.", "The movie was good."]).
    descriptions: Dict[str, List[str]] = field(default_factory=dict)
    # The same from a file, for many labels: YAML (label: [sentences] or label: sentence) or CSV/TSV with columns
    # label,description (a row a sentence). Merged under `descriptions`, which wins for a label both give.
    descriptions_file: Optional[str] = None
    # How a label reads in the template, for names written for code: card_arrival -> "card arrival",
    # CardArrival -> "card arrival", NEG -> "negative" by default (logged); a label given here reads as given.
    # Label names in every output stay as in data.labels.
    label_text: Dict[str, str] = field(default_factory=dict)
    multi_label: bool = False
    # multi-label: which labels make a text's set, from the teacher's probabilities (no gold): relative:R (at least
    # R times the text's top label), threshold:T, top:K, or rate:R (each label on for the R share of texts it
    # scores highest on; rate:auto = 1/K) (distill/evaluation/multilabel.py, rule_sets)
    label_sets: str = "relative:0.5"
    # nli/onnx: (text, hypothesis) pairs per forward pass; embedding, classifier: texts. null: the device's
    # own (distill.runtime.device.teacher_batch): 64 on a CPU, capped at 1,024 padded tokens; 512 on a GPU, capped at 32,768
    batch_size: Optional[int] = None
    max_tokens: Optional[int] = None  # nli: also cap each batch at this many padded tokens (short pairs, bigger batches)
    max_length: int = 512
    temperature: float = 0.05  # embedding teacher: softmax(cosine / temperature)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: Dtype = Dtype.auto
    # nli on a CPU: torch.compile the model (inductor's own GEMM kernels: bfloat16 on AMX where eager
    # bf16 is slow or crashes). auto: only for a labelling big enough to repay minutes of compiling
    # (distill/runtime/compiled.py) | true | false
    compile: str = "auto"
    # nli in reduced precision (bf16/fp16): a text whose two most probable labels are closer than this is
    # scored again in float32, so near ties get float32's label (0 turns it off; float32 needs no recheck)
    recheck_margin: float = 0.01
    # classifier teacher (a trained student folder): torch | onnx | onnx-int8; null is torch
    variant: Optional[Variant] = None
    # nli/onnx with many labels: `ranker` (a sentence encoder, over the same prompts) scores every label and the
    # NLI model only each text's top k; the other labels keep the ranker's share (distill/teachers/shortlist.py).
    # auto: k=8 from 16 labels on, off below | an int k | off
    shortlist: str = "auto"
    ranker: str = "${local_or_hub:${paths.models}/all-MiniLM-L6-v2,sentence-transformers/all-MiniLM-L6-v2}"
    # kind auto (teacher=auto): these teacher presets label a seeded sample of `sample` pool texts, a label model
    # estimates each one's accuracy from their agreement (no gold), and the most likely right one labels
    candidates: List[str] = field(default_factory=lambda: ["deberta-v3-nli", "mpnet", "minilm-embed"])
    sample: int = 200
    # a prompted single-label teacher over this many labels or more is compared with the candidates the same way
    # first, itself one of them, and the likelier right one labels (NLI over many labels is near random where a
    # sentence encoder is not); null: never
    auto_from: Optional[int] = 16
    # set by the comparison, never by hand: the choice.md it wrote, for the report (not part of any key)
    chosen_by: Optional[str] = None


@dataclass
class StudentConfig:
    name: str = MISSING
    hub_id: Optional[str] = None  # the Hub model a preset's local folder is a copy of (used when it is absent)
    kind: StudentKind = StudentKind.finetune  # finetune: the whole encoder + a new head | embedding_lr: frozen encoder + logistic regression
    model: str = MISSING  # local folder or hub id of an encoder
    max_length: int = 128
    lr_c: float = 1.0  # embedding_lr: the logistic regression's C (inverse L2 strength)
    # finetune: keep only the encoder's first N transformer layers (a smaller, faster student; see
    # distill/students/layers.py); null keeps them all
    layers: Optional[int] = None


class Engine(Choice):
    local = "local"  # this process
    ray = "ray"  # a Ray Data pipeline: an actor pool, one model copy per actor (see `ray:` and distill/ray_engine.py)


@dataclass
class LabelConfig:
    shard_size: int = 512  # texts per shard written to disk; a crash loses at most one shard
    engine: Engine = Engine.local
    # local engine: processes labelling at once, each with its own teacher and an equal share of the CPU
    # threads. On a CPU, 2+ single-thread processes beat one multi-thread process (see README, "Teachers and
    # prompts"); each holds a copy of the model in memory. 1: label in this process (always, on a GPU).
    workers: int = 1
    # keep every text's labels in <outputs>/label-cache, by teacher settings and label set: a text labelled
    # before (in any file, pool or sample) is not labelled again
    cache: bool = True


@dataclass
class RayConfig:
    """Where and how `label.engine=ray` / `predict.engine=ray` run."""
    address: Optional[str] = None  # None: start a local Ray instance; "auto" or "ray://head:10001": a running cluster
    num_workers: int = 2  # actors in the pool, each holding one copy of the model
    cpus_per_worker: float = 1.0  # also the torch threads each actor uses (Ray sets OMP_NUM_THREADS)
    gpus_per_worker: Optional[float] = None  # None: 1 when the cluster has GPUs, else 0
    batch_size: Optional[int] = None  # rows per map_batches call; None: label.shard_size / predict chunk rows
    num_cpus: Optional[int] = None  # local instance only: its logical CPUs (None: all, and at least the pool's + 1)
    object_store_mb: Optional[int] = None  # local instance only: object store size (None: Ray's default)
    runtime_env: Optional[Dict[str, Any]] = None  # passed to ray.init, e.g. {pip: [...]} for a cluster


@dataclass
class TrainConfig:
    trainer: Trainer = Trainer.transformers  # transformers (soft or hard) | txtai (txtai's HFTrainer, hard targets)
    targets: Targets = Targets.soft  # soft: teacher probabilities; hard: teacher argmax
    temperature: float = 2.0  # soft targets and student logits are divided by T; loss scaled by T^2
    min_confidence: float = 0.0  # drop texts whose top teacher probability is below this
    confidence_weighting: bool = False  # weigh each text by the teacher's confidence in its label
    class_balance: bool = False  # reweight so each teacher class counts alike (rare classes up-weighted)
    # multi-label: each label's positives weigh (texts without it) / (texts with it) in its binary cross-entropy,
    # so a label the teacher gives 3% of texts is not learned as "never" (without it a student learns only the
    # label rates on GoEmotions: docs/multilabel.md)
    label_balance: bool = True
    # multi-label: how each label's decision threshold is fitted to the teacher's sets on the validation split:
    # rate (the student gives it to as many texts as the teacher) | f1 (the cut with the best F1 against them)
    thresholds: ThresholdFit = ThresholdFit.rate
    val_fraction: float = 0.1  # teacher-labelled validation split (no gold) for model selection; 0: none
    # Share of the labelled pool kept out of training altogether (at most 2,000 texts), which eval scores the
    # student on against the teacher when there is no gold. null: 0.1 without gold labels, 0 with them.
    holdout: Optional[float] = None
    early_stopping_patience: Optional[int] = None  # evaluations without a better validation agreement; null: off
    evals_per_epoch: int = 2  # validation (and checkpoint) points per epoch
    epochs: float = 6.0  # the best checkpoint on the validation split is kept (docs/benchmarks.md, "Defaults study")
    lr: float = 1e-4
    batch_size: int = 32
    grad_accum: int = 1  # gradient accumulation steps (effective batch = batch_size x grad_accum)
    group_by_length: bool = True  # batches of similar length: less padding
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    seed: int = 42
    device: str = "auto"
    resume: bool = True  # continue an interrupted training from its last checkpoint
    labels_path: Optional[str] = None  # a label-stage parquet; None: the one this config's label stage wrote
    overwrite: bool = False  # retrain even when this exact student was already trained
    # Fine-tuning stops after this many minutes (the best validation checkpoint so far is kept, as at the end); null: none
    max_minutes: Optional[float] = None


@dataclass
class EvalConfig:
    batch_sizes: List[int] = field(default_factory=lambda: [1, 32, 64])
    bench_texts: int = 128  # held-out texts timed at each batch size
    warmup_batches: int = 2
    repeats: int = 3  # timed passes over the bench texts at each batch size; the fastest counts (least disturbed)
    bench_seconds: Optional[float] = 30.0  # a further pass only while the passes fit in this (per model and batch size); null: always `repeats`
    teacher: bool = True  # score and time the teacher too
    student_path: Optional[str] = None  # a student folder; None: the one this config's train stage wrote
    students: EvalStudents = EvalStudents.this  # this: the configured student | all: every student trained on this data and teacher
    variants: List[Variant] = field(default_factory=lambda: [Variant("torch"), Variant("onnx"), Variant("onnx-int8")])  # of fine-tuned students
    plots: bool = True  # PNG plots in the report (needs matplotlib)


@dataclass
class HubConfig:
    """stage=publish: the student as a Hugging Face Hub model repo. The token comes from HF_TOKEN or the
    `hf auth login` cache, never from the config (Hydra writes the resolved config to disk)."""

    repo_id: Optional[str] = None  # ORG/NAME (or USER/NAME) on the Hub; required
    private: bool = False  # create the repo private (an existing repo keeps its visibility)
    dry_run: bool = False  # write the repo folder, never upload
    student_path: Optional[str] = None  # a student folder; None: the one this config's train stage wrote
    metrics_path: Optional[str] = None  # an eval metrics.json; None: the one eval wrote for that student
    out_dir: Optional[str] = None  # where the repo folder is written; None: <paths.outputs>/hub/<ORG>--<NAME>
    commit_message: Optional[str] = None  # None: "Upload <student> distilled from <teacher>"
    base_model: Optional[str] = None  # hub id of the student's base model for the card; None: inferred
    license: Optional[str] = None  # None: the base model's license when its local card names one


@dataclass
class WeakConfig:
    """stage=weak: several sources combined by one label model; presets in conf/weak/<data>.yaml."""

    name: str = MISSING
    # Source name -> overrides of the teacher preset conf/teacher/<name>.yaml (or of `preset: <other>`),
    # e.g. {mpnet: {descriptions: {...}}}. Each is labelled and cached like `stage=label teacher=<preset>`.
    teachers: Dict[str, Any] = field(default_factory=dict)
    keywords: Dict[str, List[str]] = field(default_factory=dict)  # label -> words: an LF that votes it or abstains
    regex: Dict[str, List[str]] = field(default_factory=dict)  # label -> regular expressions, one LF per label
    hook: Optional[str] = None  # module:function, texts -> a label name (or None: abstain) per text
    label_model: LabelModel = LabelModel.dawid_skene  # what the student learns from
    # Multi-label: the label sets of the combined per-label probabilities (each label's own binary label model),
    # in teacher.label_sets' terms; threshold:0.5 is the label model's own decision
    label_sets: str = "threshold:0.5"
    teacher_votes: TeacherVotes = TeacherVotes.hard  # hard: teachers vote their argmax | soft: their (calibrated) probabilities
    calibrate: bool = True  # temperature-scale each teacher to the other sources' consensus (no gold)
    class_prior: Optional[Dict[str, float]] = None  # label -> share, held fixed; None: estimated (prior_from)
    prior_from: PriorFrom = PriorFrom.vote  # vote: the sources' majority-vote class shares, held | em: re-estimated by EM
    smoothing: float = 1.0  # Dawid-Skene pseudo-counts in every confusion cell
    weights: Dict[str, float] = field(default_factory=dict)  # source -> weight (default 1; 0.5 each for two copies)
    noise: NoiseMode = NoiseMode.downweight  # what a likely wrong label's `weight` becomes
    # Features of the k-fold classifier: tfidf (the text: a view independent of the sources) and/or sources
    # (their votes: a classifier on those mostly relearns the label model and flags next to nothing).
    noise_features: List[str] = field(default_factory=lambda: ["tfidf"])
    folds: int = 5
    seed: int = 42


class LoggerKind(Choice):
    none = "none"
    wandb = "wandb"


@dataclass
class LoggerConfig:
    """Experiment tracking (conf/logger/): one W&B run per command with logger=wandb, see distill/tracking.py."""

    kind: LoggerKind = LoggerKind.none
    project: str = "distill"
    entity: Optional[str] = None  # W&B team or user; None: the key's default entity
    group: Optional[str] = None  # None: the sweep folder's name under `-m`, else no group
    name: Optional[str] = None  # None: <data>-<teacher>-<student>-<targets> (+ -job<N> in a sweep)
    tags: List[str] = field(default_factory=list)
    mode: Optional[str] = None  # online | offline | disabled; None: WANDB_MODE, else online
    log_model: bool = True  # the trained student folder as a W&B model artifact
    dir: Optional[str] = None  # where wandb/ is written; None: paths.outputs


@dataclass
class PredictConfig:
    model: PredictModel = PredictModel.student  # student (this config's, or predict.student_path) | teacher
    student_path: Optional[str] = None  # a student folder; None: the one this config's train stage wrote
    variant: Variant = Variant.torch  # of the student
    output: Optional[str] = None  # None: <paths.outputs>/predictions/<input name>.predictions.<same format>
    text_column: Optional[str] = None  # None: data.text_columns, joined by data.text_separator
    batch_size: int = 64
    threshold: Optional[float] = None  # binary tasks: predict positive_label when its probability >= threshold
    positive_label: Optional[str] = None  # None: the second label (e.g. positive, spam)
    top_k: Optional[int] = None  # multi-label: each row's K most probable labels, instead of the thresholds
    # set predict.threshold from the reviewed random sample (stage=review): the lowest threshold whose precision
    # reaches target_precision, or the highest whose recall reaches target_recall (binary tasks)
    target_precision: Optional[float] = None
    target_recall: Optional[float] = None
    device: str = "auto"
    engine: Engine = Engine.local


@dataclass
class ReviewConfig:
    """stage=review: a queue of texts for a person to label (a CSV to fill in), and where the answers are read
    from. The random part is what accuracy estimates rest on; the chosen part (texts worth checking) joins
    training with its gold label and is reported apart, never mixed into the estimate."""
    size: int = 200  # texts in one round's queue (random + chosen)
    random: int = 100  # of them, a seeded random sample of texts no student trained on
    seed: int = 0
    # auto: the filled `gold` cells of this data set's review rounds (outputs/review/<data>/round-*.csv) |
    # a CSV / TSV / JSONL / parquet file or a folder of them | null: ignore answers
    answers: Optional[str] = "auto"
    gold_weight: float = 1.0  # training weight of a reviewed (chosen) text's gold label, against 1 for a teacher label


@dataclass
class PruneConfig:
    # stage=prune: cut a trained student's feed-forward blocks to this many units a layer (the most important
    # to its loss on the teacher's labels; distill/students/pruning.py) and fine-tune it again
    ffn_size: Optional[int] = None
    # and/or remove this many whole transformer layers, one at a time the one the loss misses least
    drop_layers: int = 0
    texts: int = 640  # label-file texts the units' and layers' importance is measured on
    epochs: float = 3.0  # fine-tuning after the cut (the train settings otherwise)
    lr: float = 5e-5
    # fine-tune the cut student on this label file instead of its own teacher's (e.g. a teacher assistant's
    # labels of a larger pool: teacher=assistant, see conf/teacher/assistant.yaml); null: the same labels
    labels_path: Optional[str] = None


RecipeStage = choices("RecipeStage", "train", "label", "prune")


@dataclass
class RecipeStep:
    """One step of a recipe: a stage run on the run's own config with these overrides."""

    name: str = MISSING
    stage: RecipeStage = MISSING
    # Hydra overrides for this step, e.g. [student=deberta-nli, train.epochs=6]; `{<step>}` is what that earlier
    # step made: a student folder (train, prune) or a label file (label)
    overrides: List[str] = field(default_factory=list)


@dataclass
class RecipeConfig:
    """A chain of steps that makes a student (conf/recipe/): stage=all runs it after labelling, each step
    cached like the stage it is, and eval compares the teacher with every student the steps made."""

    name: str = MISSING
    description: str = ""
    steps: List[RecipeStep] = field(default_factory=list)


@dataclass
class Config:
    stage: Stage = Stage.all
    input: Optional[str] = None  # stage=predict: a CSV / TSV / JSONL / parquet file of new texts
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = MISSING
    teacher: TeacherConfig = MISSING
    student: StudentConfig = MISSING
    label: LabelConfig = field(default_factory=LabelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    weak: Optional[WeakConfig] = None  # weak=<preset>: train/eval use stage=weak's combined labels
    recipe: Optional[RecipeConfig] = None  # recipe=fast|balanced|best (conf/recipe/): the steps that make the student
    # the overrides this config was composed from (filled in when composed): a recipe's steps compose theirs on top
    command: List[str] = field(default_factory=list)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    # A number in the result that a sweeper optimises, e.g. eval.student_accuracy (see distill/sweep.py);
    # when set, the command returns it (hparams_search=optuna sets it).
    objective: Optional[str] = None
    debug: bool = False  # show full tracebacks instead of one-line errors


PROJECT_FILE = "distill.yaml"  # settings every distill command run in its folder starts from (`distill init`)


def project_file() -> Optional[Path]:
    """The project file in use: $DISTILL_PROJECT, else ./distill.yaml when there is one."""
    named = os.environ.get("DISTILL_PROJECT")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise DistillError(f"DISTILL_PROJECT={named}: no such file")
        return path
    here = Path(PROJECT_FILE)
    return here if here.is_file() else None


def _project_node() -> dict:
    path = project_file()
    if path is None:
        return {}
    try:
        node = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as e:  # a YAML syntax error
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DistillError(f"{path} is not valid YAML ({first})") from e
    if not isinstance(node, dict):
        raise DistillError(f"{path} must hold settings (key: value lines), not {type(node).__name__}")
    return node


def register_configs() -> None:
    cs = ConfigStore.instance()
    # the project file (or nothing), composed after the defaults and before experiment presets and the
    # command line, which win over it
    cs.store(group="project", name="local", node=_project_node(), package="_global_")
    cs.store(name="distill_schema", node=Config)
    cs.store(group="data", name="schema", node=DataConfig)
    cs.store(group="teacher", name="schema", node=TeacherConfig)
    cs.store(group="student", name="schema", node=StudentConfig)
    cs.store(group="logger", name="schema", node=LoggerConfig)


def data_preset(data: str) -> str:
    """The override that picks a shared data set by name: its experiment preset (teacher and settings for that
    set) when there is one, else its data preset."""
    return f"experiment={data}" if (CONF_DIR / "experiment" / f"{data}.yaml").is_file() else f"data={data}"


def load_config(overrides: Optional[List[str]] = None) -> DictConfig:
    """Compose `conf/config.yaml` with Hydra overrides, outside of `@hydra.main`."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = list(overrides or [])
    if GlobalHydra.instance().is_initialized():  # inside `python -m distill`: its search path (--config-dir too)
        return settle(compose(config_name="config", overrides=overrides), overrides)
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return settle(compose(config_name="config", overrides=overrides), overrides)


def settle(cfg: DictConfig, overrides: Optional[List[str]] = None) -> DictConfig:
    """What composition leaves to work out: the overrides it was composed from (`command`), and
    data.labels from data.labels_from (one label name a line)."""
    if overrides is not None and "command" in cfg:
        cfg.command = [o for o in overrides if not o.startswith(("stage=", "command="))]
    data = cfg.get("data")
    if data is None or not data.get("labels_from"):
        return cfg
    path = Path(str(data.labels_from)).expanduser()
    if not path.is_file():
        raise DistillError(f"data.labels_from: {path} not found (in {Path.cwd()})")
    names = [line.strip() for line in path.read_text(encoding=data.encoding).splitlines() if line.strip()]
    if not OmegaConf.is_missing(data, "labels") and list(data.labels) != names:
        raise DistillError(f"data.labels {list(data.labels)} and data.labels_from ({path}: {names}) disagree; "
                           f"give one of them")
    data.labels = names
    return cfg


def multi_label(cfg: DictConfig) -> bool:
    """Is this run multi-label: data.multi_label, or a teacher asked to score each label on its own."""
    data, teacher = cfg.get("data"), cfg.get("teacher")
    return bool(data is not None and data.get("multi_label")) or bool(teacher is not None and teacher.get("multi_label"))


def none_index(cfg: DictConfig) -> Optional[int]:
    """data.none_label's index in data.labels (None when unset); a one-line error when it is not one of the
    labels or the run is single-label."""
    name = cfg.data.get("none_label")
    if name is None:
        return None
    labels = list(cfg.data.labels)
    if name not in labels:
        raise DistillError(f"data.none_label={name} is not one of data.labels {labels}")
    if not multi_label(cfg):
        raise DistillError(f"data.none_label={name} is for multi-label runs (data.multi_label=true); a single-label "
                           f"run predicts '{name}' like any other label")
    return labels.index(name)


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
