"""NLI zero-shot teacher: each text is a premise, each label a hypothesis ("This example is {label}.").

The entailment logit of every (text, hypothesis) pair scores that label, as in transformers'
ZeroShotClassificationPipeline, but with our own inference loop: all N x K pairs are tokenized once,
sorted by length so a forward batch carries little padding, and the logits are put back in input order.

CPU threads are left to torch: its default (one per physical core, or OMP_NUM_THREADS when the user
set it) is already right for a process that does nothing else, and overriding it would fight the user.
"""
from __future__ import annotations

import copy
import functools
import logging
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification

from ..config import TeacherConfig
from ..errors import DistillError
from ..runtime import compiled, cpu_bf16, fast_deberta
from ..runtime.device import batches, resolve_device, resolve_dtype, teacher_batch
from ..runtime.models import load_model
from .base import Teacher, top_margin

log = logging.getLogger(__name__)


class NLITeacher(Teacher):
    # Precision moves the labels of a few near-tie texts (bf16 against float32 without the recheck: 0.3% of
    # SST-2, 1.5% of AG News), so an explicit dtype, compile or recheck_margin is another labelling.
    EXPLICIT_KEYS = ("dtype", "compile", "recheck_margin")
    """Zero-shot labels from an NLI cross-encoder (2-way entailment/not_entailment or 3-way MNLI).

    Single-label: softmax of the entailment logits over the K labels of a text.
    Multi-label (or a single label, as the pipeline does): per label, softmax over
    [contradiction, entailment] -> the entailment probability.
    """

    compilable = True  # teacher.compile applies (a torch model)

    def __init__(self, cfg: TeacherConfig, labels: list[str]):
        self.cfg = cfg
        self.name = cfg.name
        self.labels = list(labels)
        # A softmax over one label is always 1, so one label is scored entail-vs-contradict.
        self.multi_label = bool(cfg.multi_label) or len(self.labels) == 1
        self.hypotheses, owner = hypotheses_for(cfg, self.labels)
        self.owner = np.asarray(owner)  # [H]: the label each hypothesis speaks for
        # [H, K]: averages each label's hypotheses (one per label unless a prompt ensemble is set).
        self.pool_matrix = np.zeros((len(self.hypotheses), len(self.labels)), dtype=np.float32)
        self.pool_matrix[np.arange(len(owner)), owner] = 1.0
        self.pool_matrix /= self.pool_matrix.sum(axis=0, keepdims=True)
        self.device = resolve_device(cfg.device)
        self.compiled = self.compilable and compiled.enabled(cfg.compile, self.device)
        self.dtype = resolve_dtype(cfg.dtype, self.device, self.compiled)
        self.batch_size, self.max_tokens = teacher_batch(cfg.batch_size, cfg.max_tokens, self.device)
        # Reduced precision only (a torch model in bf16/fp16): near ties are scored again in float32.
        self.recheck_margin = recheck_margin(cfg.recheck_margin) if self.compilable and self.dtype != torch.float32 else 0.0
        self.rechecked = 0  # texts scored again in float32 so far
        self._exact = None  # the float32 model for them (built by _load when the recheck is on)
        self.tokenizer, self.config = self._load()
        label2id = dict(self.config.label2id)
        self.entailment_id = entailment_id(label2id, cfg.model)
        self.contradiction_id = contradiction_id(label2id, self.entailment_id, cfg.model) if self.multi_label else None
        self.truncated = 0  # texts longer than the model reads, whose end was cut (counted for the label meta)
        self.max_length = self._pair_max_length(cfg.max_length)
        self.input_names = list(self.tokenizer.model_input_names)
        log.info("teacher %s: %s (%d-way NLI, entailment=%d) on %s in %s%s", self.name, cfg.model,
                 self.config.num_labels, self.entailment_id, self.device, self.dtype,
                 ", compiled (the first batches of each length range compile: minutes)" if self.compiled else "")

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None,
                      progress: bool = False) -> np.ndarray:
        """Float32 [N, K] label probabilities, rows in input order; `batch_size` counts pairs."""
        texts = as_text_list(texts)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        batch_size = batch_size or self.batch_size
        features = self.encode(texts)
        self.truncated += count_truncated(features["input_ids"], len(self.hypotheses), self.max_length)
        logits = self._pair_logits(features, batch_size, progress)
        logits = logits.reshape(len(texts), len(self.hypotheses), -1)
        probs = self._scores(logits)
        return self._recheck(texts, logits, probs, batch_size, progress)

    def batch_size_for(self, n_texts: int) -> int:
        return n_texts * len(self.hypotheses)

    def predict_kept(self, texts: Sequence[str], keep: np.ndarray, batch_size: int | None = None,
                     progress: bool = False) -> np.ndarray:
        """[N, K] probabilities from only the (text, label) pairs that `keep` [N, K] marks (a shortlist):
        single-label, a softmax over each text's kept labels (0 elsewhere); multi-label, each kept label's
        own probability (NaN elsewhere). Near ties are not rechecked in float32 here."""
        texts = as_text_list(texts)
        rows, hyps = np.nonzero(keep[:, self.owner])  # text-major, as `encode`
        features = self.encode_pairs([texts[r] for r in rows], [self.hypotheses[h] for h in hyps])
        reached = np.fromiter((len(ids) >= self.max_length for ids in features["input_ids"]), bool, len(rows))
        self.truncated += len(np.unique(rows[reached]))
        pair = self._pair_logits(features, batch_size or self.batch_size, progress)
        logits = np.zeros((len(texts), len(self.hypotheses), pair.shape[1]), dtype=np.float32)
        logits[rows, hyps] = pair
        if self.multi_label:
            probs = self._scores(logits)
            probs[~keep] = np.nan
            return probs
        entailment = logits[..., self.entailment_id] @ self.pool_matrix
        entailment[~keep] = -np.inf
        return softmax(entailment)

    def describe(self) -> dict:
        return {"kind": "nli", "model": self.cfg.model, "template": self.cfg.template,
                "hypotheses": self.hypotheses,
                "multi_label": self.multi_label, "entailment_id": self.entailment_id,
                "num_model_labels": int(self.config.num_labels), "max_length": self.max_length,
                "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."),
                "compiled": self.compiled}

    def encode(self, texts: list[str]) -> dict:
        """Tokenize every (text, hypothesis) pair, text-major, unpadded; only the text is ever truncated."""
        premises = [text for text in texts for _ in self.hypotheses]
        return self.encode_pairs(premises, self.hypotheses * len(texts))

    def encode_pairs(self, premises: list[str], hypotheses: list[str]) -> dict:
        """Tokenize (premise, hypothesis) pairs, unpadded; only the premise is ever truncated."""
        enc = self.tokenizer(premises, hypotheses, truncation="only_first", max_length=self.max_length)
        return {name: enc[name] for name in self.input_names if name in enc}

    def _recheck(self, texts: list[str], logits: np.ndarray, probs: np.ndarray, batch_size: int,
                 progress: bool) -> np.ndarray:
        """`probs` with every near tie (top two labels closer than teacher.recheck_margin) scored again
        by the float32 model: reduced precision moves probabilities by up to ~0.03, which is enough to
        flip the label of a text the model barely decides, and only of such a text.

        Only the contenders are scored again: the pairs of every label within the margin of the top one
        (usually two of K). The others, at least the margin behind, keep their reduced-precision logits;
        `logits` [N, H, C] is updated in place."""
        if not self.recheck_margin or probs.shape[1] < 2:
            return probs
        near = np.flatnonzero(top_margin(probs) < self.recheck_margin)
        if not len(near):
            return probs
        contenders = probs[near] >= probs[near].max(axis=1, keepdims=True) - self.recheck_margin  # [n, K]
        rows, hyps = np.nonzero(contenders[:, self.owner])  # [n, H] -> the pairs to score again
        features = self.encode_pairs([texts[near[r]] for r in rows], [self.hypotheses[h] for h in hyps])
        exact = functools.partial(run_model, self._exact, self.device)
        logits[near[rows], hyps] = self._pair_logits(features, batch_size, progress, exact)
        probs[near] = self._scores(logits[near])
        self.rechecked += len(near)
        return probs

    def _pair_logits(self, features: dict, batch_size: int, progress: bool, forward=None) -> np.ndarray:
        """Model logits [P, C] for the P encoded pairs of `features`, forwarded longest first in
        dynamically padded batches (by `forward`, a padded batch -> logits; the teacher's own `_forward`
        when None)."""
        forward = forward or self._forward
        lengths = np.array([len(ids) for ids in features["input_ids"]])
        # Longest first: a batch too big for memory fails at once, not at the end of a long run.
        order = np.argsort(-lengths, kind="stable")
        logits = np.empty((len(order), self.config.num_labels), dtype=np.float32)
        with tqdm(total=len(order), desc=f"teacher {self.name}", unit="pair", disable=not progress,
                  leave=False) as bar:
            for rows in batches(order, lengths, batch_size, self.max_tokens):
                logits[rows] = forward(self._pad({k: [v[i] for i in rows] for k, v in features.items()}))
                bar.update(len(rows))
        return logits

    def _load(self):
        """(tokenizer, model config); a backend other than torch overrides this, `_pad` and `_forward`."""
        tokenizer, self.model, self._exact = load_nli_model(self.cfg.model, self.device, self.dtype,
                                                            float32_copy=bool(self.recheck_margin))
        # DeBERTa-v2/v3: same logits, about half the CPU time on short texts (see fast_deberta.py); the
        # last layer computes only the token the head reads. Compiled in bf16, attention products stay
        # bf16 where eager bf16 is fast on this CPU.
        bf16_products = self.compiled and self.dtype == torch.bfloat16 and cpu_bf16.verdict().use
        self.compact_layers = fast_deberta.install(self.model, bf16_products=bf16_products)
        fast_deberta.first_token_only(self.model)
        if self._exact is not None:
            fast_deberta.install(self._exact)
            fast_deberta.first_token_only(self._exact)
            log.info("teacher %s: near ties (label margin < %g) are scored again by a float32 copy", self.name,
                     self.recheck_margin)
        self.forward = compiled.CompiledModel(self.model) if self.compiled else self.model
        return tokenizer, self.model.config

    def _pad(self, features: dict):
        """Pad one batch of pairs to its own longest pair."""
        return self.tokenizer.pad(features, return_tensors="pt")

    def _forward(self, batch) -> np.ndarray:
        return run_model(self.forward, self.device, batch)

    def _scores(self, logits: np.ndarray) -> np.ndarray:
        """[N, H, C] logits of every hypothesis -> [N, K] label probabilities.

        Single-label: each label's entailment logits averaged over its hypotheses, softmax over labels
        (with one hypothesis per label, exactly the pipeline). Multi-label: each hypothesis scored
        entailment vs contradiction, probabilities averaged over a label's hypotheses.
        """
        if self.multi_label:
            pair = logits[..., [self.contradiction_id, self.entailment_id]]
            return (softmax(pair)[..., 1] @ self.pool_matrix).astype(np.float32)
        return softmax(logits[..., self.entailment_id] @ self.pool_matrix).astype(np.float32)

    def _pair_max_length(self, max_length: int) -> int:
        """teacher.max_length capped by the model, checked to leave room for every full hypothesis."""
        # Tokenizers saved without model_max_length claim ~1e30; the position table is the real limit.
        positions = getattr(self.config, "max_position_embeddings", None) or int(max_length)
        limit = min(int(max_length), self.tokenizer.model_max_length, positions)
        specials = self.tokenizer.num_special_tokens_to_add(pair=True)
        lengths = [len(ids) for ids in self.tokenizer(self.hypotheses, add_special_tokens=False)["input_ids"]]
        longest = max(lengths)
        if longest + specials >= limit:
            hypothesis = self.hypotheses[lengths.index(longest)]
            raise DistillError(f"teacher.max_length={limit} leaves no room for the text: the hypothesis "
                               f"'{hypothesis}' alone is {longest + specials} tokens; raise teacher.max_length "
                               f"or shorten teacher.template / the label names")
        return limit


# Direct children of a sequence classifier that turn the encoder's output into logits: DeBERTa's pooler
# and classifier, BERT/RoBERTa's classifier, BART's classification_head.
HEAD_MODULES = ("pooler", "classifier", "classification_head")


@torch.inference_mode()
def run_model(model, device: torch.device, batch) -> np.ndarray:
    """Float32 logits of one padded batch; cast before any softmax, so half precision costs no accuracy there."""
    return model(**batch.to(device)).logits.float().cpu().numpy()


def load_nli_model(ref: str, device: torch.device, dtype: torch.dtype, float32_copy: bool = False):
    """(tokenizer, eval-mode NLI classifier on `device` with the encoder in `dtype`, its float32 copy or None).

    In reduced precision the head (`HEAD_MODULES`) keeps its float32 weights and computes in float32:
    logits rounded to bfloat16 are only ~0.016 apart near 2-4, so nearly tied labels of a text would
    come out exactly tied, and an argmax of ties is decided by position, not by the model.
    `float32_copy` (reduced precision only): also the whole model in float32, copied from the weights
    already read, not read again, for the recheck of near ties (teacher.recheck_margin)."""
    if dtype == torch.float32:
        return (*load_model(ref, "teacher.model", AutoModelForSequenceClassification, device, dtype), None)
    tokenizer, model = load_model(ref, "teacher.model", AutoModelForSequenceClassification,
                                  torch.device("cpu"), torch.float32)
    exact = copy.deepcopy(model).to(device) if float32_copy else None
    heads = {name: module for name, module in model.named_children() if name in HEAD_MODULES}
    for name in heads:
        setattr(model, name, torch.nn.Identity())  # out of the way of the cast below
    model.to(dtype)
    for name, module in heads.items():
        setattr(model, name, Float32(module))
    return tokenizer, model.to(device), exact


class Float32(torch.nn.Module):
    """`module` run in float32 on a float32 copy of its input, whatever dtype the model around it has."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module.float()

    def forward(self, x, *args, **kwargs):
        return self.module(x.float(), *args, **kwargs)

    def __getattr__(self, name):  # e.g. DeBERTa reads pooler.output_dim
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("module"), name)


def entailment_id(label2id: dict, model: str) -> int:
    """The output whose label name starts with "entail"; label order differs between NLI models."""
    for name, index in label2id.items():
        if name.lower().startswith("entail"):
            return int(index)
    raise DistillError(f"teacher.model '{model}' has no entailment output (its labels: {sorted(label2id)}); "
                       f"an NLI teacher needs an NLI model with a label named 'entailment'")


def contradiction_id(label2id: dict, entail: int, model: str) -> int:
    """2-way: the output that is not entailment; 3-way: the one whose name starts with "contra"."""
    if len(label2id) == 2:
        return next(int(i) for i in label2id.values() if int(i) != entail)
    for name, index in label2id.items():
        if name.lower().startswith("contra"):
            return int(index)
    raise DistillError(f"teacher.model '{model}' has no contradiction output (its labels: {sorted(label2id)}), "
                       f"which teacher.multi_label=true needs; use multi_label=false")


def make_hypotheses(template: str, labels: list[str]) -> list[str]:
    """One hypothesis per label; a template that does not take the label is a config error."""
    hint = "use {} where the label goes, e.g. 'This example is {}.'"
    try:
        takes_label = "<label>" in template.format("<label>")
    except (IndexError, KeyError, ValueError) as e:
        raise DistillError(f"teacher.template '{template}' could not be filled with a label ({e!r}); {hint}") from e
    if not takes_label:
        raise DistillError(f"teacher.template '{template}' has no {{}} for the label; {hint}")
    return [template.format(label) for label in labels]


ABBREVIATIONS = {"neg": "negative", "pos": "positive", "neu": "neutral", "neut": "neutral"}


def readable(label: str) -> str:
    """How a label name written for code reads in a sentence: `card_arrival` -> "card arrival",
    `CardArrival` -> "card arrival", `BILLING` -> "billing", `NEG` -> "negative"; `ATM_support` keeps its
    acronym; anything else (`Sci/Tech`, `not spam`) as it is."""
    name = label.strip()
    if name.lower() in ABBREVIATIONS:
        return ABBREVIATIONS[name.lower()]
    if re.fullmatch(r"[A-Za-z0-9]+(?:[_.]+[A-Za-z0-9]+)+", name):  # snake_case, dotted.names
        words = re.split(r"[_.]+", name)
    elif re.fullmatch(r"[A-Za-z][a-z0-9]*(?:[A-Z][a-z0-9]+)+", name):  # camelCase, PascalCase
        words = re.findall(r"[A-Z]?[a-z0-9]+", name)
    elif name.isalpha() and name.isupper() and len(name) > 3:  # SHOUTED
        return name.lower()
    else:
        return label
    shouted = name.isupper()
    return " ".join(w if (w.isupper() and len(w) <= 4 and not shouted) else w.lower() for w in words)


def label_texts(cfg: TeacherConfig, labels: list[str]) -> list[str]:
    """Each label as the template names it: `teacher.label_text` where given, else `readable` of its name."""
    given = dict(getattr(cfg, "label_text", None) or {})
    unknown = sorted(set(given) - set(labels))
    if unknown:
        raise DistillError(f"teacher.label_text names labels that are not in data.labels: {unknown} "
                           f"(the labels: {labels})")
    return [str(given[label]) if label in given else readable(label) for label in labels]


def descriptions_of(cfg: TeacherConfig) -> dict[str, list[str]]:
    """`teacher.descriptions`, over those of `teacher.descriptions_file` (YAML, CSV or TSV)."""
    described: dict[str, list[str]] = {}
    path = getattr(cfg, "descriptions_file", None)
    if path:
        described = read_descriptions(Path(os.path.expanduser(str(path))))
    return {**described, **{k: list(v) for k, v in dict(cfg.descriptions or {}).items()}}


def read_descriptions(path: Path) -> dict[str, list[str]]:
    """label -> sentences from a YAML mapping (label: [sentences] or label: sentence) or a CSV/TSV file
    with columns label,description (one row a sentence)."""
    where = f"teacher.descriptions_file={path}"
    if not path.is_file():
        raise DistillError(f"{where}: no such file")
    out: dict[str, list[str]] = {}
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            mark = getattr(e, "problem_mark", None)
            said = f"line {mark.line + 1}: {e.problem}" if mark is not None else str(e).splitlines()[0]
            raise DistillError(f"{where} is not readable YAML ({said})") from e
        if not isinstance(data, dict):
            raise DistillError(f"{where} must map each label to a sentence or a list of sentences")
        for label, value in data.items():
            sentences = [value] if isinstance(value, str) else value
            if not isinstance(sentences, list) or not all(isinstance(x, str) and x.strip() for x in sentences):
                raise DistillError(f"{where}: label '{label}' must have a sentence or a list of sentences")
            out[str(label)] = list(sentences)
        return out
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DistillError(f"{where} is not a readable table ({str(e).splitlines()[0]})") from e
    if not {"label", "description"} <= set(frame.columns):
        raise DistillError(f"{where} needs columns label and description (has {list(frame.columns)})")
    for line, (label, text) in enumerate(zip(frame["label"], frame["description"]), start=2):
        if not label.strip() or not text.strip():
            raise DistillError(f"{where}, line {line}: a row needs both a label and a description")
        out.setdefault(label.strip(), []).append(text.strip())
    return out


@functools.lru_cache(maxsize=64)
def _log_once(line: str) -> None:
    """An INFO line said once a process (the prompts are worked out by several steps of one labelling)."""
    log.info("%s", line)


def hypotheses_for(cfg: TeacherConfig, labels: list[str]) -> tuple[list[str], list[int]]:
    """Every hypothesis and the index of the label it speaks for.

    `teacher.descriptions` (label -> sentences, and those of `teacher.descriptions_file`) win over
    `teacher.templates` (a prompt ensemble), which win over the single `teacher.template`; a template names
    each label by `label_texts`.
    """
    described = descriptions_of(cfg)
    if described:
        unknown = sorted(set(described) - set(labels))
        missing = [label for label in labels if not described.get(label)]
        if unknown or missing:
            raise DistillError(f"teacher.descriptions must give at least one sentence for every label "
                               f"{labels}; missing: {missing}, unknown: {unknown}")
        pairs = [(text, k) for k, label in enumerate(labels) for text in described[label]]
    else:
        templates = list(cfg.templates) if cfg.templates else [cfg.template]
        names = label_texts(cfg, labels)
        renamed = [f"{label} -> '{name}'" for label, name in zip(labels, names) if name != label]
        if renamed:
            said = ", ".join(renamed[:8]) + (f", ... ({len(renamed) - 8} more)" if len(renamed) > 8 else "")
            _log_once(f"the prompts name {len(renamed)} labels as: {said} (teacher.label_text changes this)")
        pairs = [(h, k) for template in templates for k, h in enumerate(make_hypotheses(template, names))]
    return [h for h, _ in pairs], [k for _, k in pairs]


def count_truncated(input_ids: list, pairs_per_text: int, max_length: int) -> int:
    """Texts whose (text, hypothesis) pairs, text-major, reached the length limit: their end was cut."""
    lengths = np.fromiter((len(ids) for ids in input_ids), dtype=np.int64, count=len(input_ids))
    return int((lengths.reshape(-1, pairs_per_text).max(axis=1) >= max_length).sum())


def recheck_margin(value) -> float:
    """teacher.recheck_margin checked: a probability gap in [0, 1)."""
    margin = float(value or 0.0)
    if not 0.0 <= margin < 1.0:
        raise DistillError(f"teacher.recheck_margin={value} is not a probability gap in [0, 1); 0 turns "
                           f"the float32 recheck of near ties off")
    return margin


def as_text_list(texts: Sequence[str]) -> list[str]:
    """A list of str; one str is one text, and a non-text (NaN from a CSV, None) is named, not tokenized."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DistillError(f"teacher input {i} is {type(text).__name__} ({text!r}), not text; "
                               f"drop or fill empty rows in the data")
    return texts


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float32, shifted by the max so large logits do not overflow."""
    x = x.astype(np.float32)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def decide_compile(teacher_cfg: DictConfig, labels: list[str], n_texts: int | None) -> DictConfig:
    """teacher_cfg with teacher.compile=auto settled for labelling `n_texts` texts (NLI teachers only)."""
    if teacher_cfg.kind != "nli" or n_texts is None or compiled.setting(teacher_cfg.compile) != "auto":
        return teacher_cfg
    n_pairs = n_texts * len(hypotheses_for(teacher_cfg, labels)[0])
    settled = copy.deepcopy(teacher_cfg)
    settled.compile = str(compiled.worth_compiling("auto", resolve_device(teacher_cfg.device), n_pairs)).lower()
    return settled
