"""The model card of a published student: Hub metadata and a README a person can read.

The metadata carries the eval stage's numbers as `model-index` (validated by `huggingface_hub.ModelCard`);
the text says what the model is, how it was made (teacher, data, settings, no gold labels), how well and
how fast it runs next to its teacher, how to use it, and where it falls short. Fields that a newer eval
stage adds to metrics.json (calibration, latency, per-class scores, plots) are shown when present.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..config import TrainConfig
from ..evaluation.intervals import describe_difference
from ..evaluation.metrics import fmt, markdown_table, readable

# Local models that ../shared/bin/fetch-models lays out, and the Hub repos they came from.
KNOWN_HUB_IDS = {
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "all-mpnet-base-v2": "sentence-transformers/all-mpnet-base-v2",
}

# The data presets in conf/data: their Hub id, a readable name, the split scored, language, an example.
KNOWN_DATASETS = {
    "sst2": {"id": "stanfordnlp/sst2", "pretty": "SST-2", "what": "movie-review sentences", "split": "validation",
             "language": "en", "example": "A gorgeous, witty and surprisingly moving film."},
    "ag_news": {"id": "fancyzhx/ag_news", "pretty": "AG News", "what": "news articles (title and description)",
                "split": "test", "language": "en",
                "example": "Stocks rallied on Wall Street after the central bank held interest rates steady."},
    "sms_spam": {"id": "ucirvine/sms_spam", "pretty": "SMS Spam Collection", "what": "SMS messages",
                 "split": "train", "language": "en",
                 "example": "WINNER! You have won a free prize, call now to claim it."},
    "tweeteval_emotion": {"id": "cardiffnlp/tweet_eval", "config": "emotion", "pretty": "TweetEval (emotion)",
                          "what": "tweets", "split": "test", "language": "en",
                          "example": "Can't wait for the weekend, this is going to be great!"},
}

# metrics.json entry keys rendered by name; any other numeric field becomes an extra column.
CORE_KEYS = {"name", "role", "model", "accuracy", "macro_f1", "agreement_with_teacher", "samples_per_s",
             "micro_f1", "label_shares", "set_confusion", "gold_cardinality"}
SPEED_HINTS = ("latency", "size", "param", "memory", "bytes", "_mb", "_ms", "seconds", "throughput")
PRETTY = {"map": "mAP", "subset_accuracy": "exact match", "hamming_loss": "Hamming loss",
          "cardinality": "labels a text", "ece": "ECE", "num_parameters": "parameters", "n_parameters": "parameters",
          "size_mb": "size (MB)", "size_on_disk_mb": "size on disk (MB)", "p50": "p50", "p95": "p95",
          "macro_f1": "macro-F1"}
TRAIN_HIDDEN = ("device", "labels_path", "overwrite", "resume")  # how it ran, not what it learned


@dataclass
class CardInputs:
    """Everything the card says, gathered by distill.hub.repo from the student folder and the eval stage."""

    repo_id: str
    labels: list
    teacher: dict  # the teacher config whose labels the student learned from
    data: dict  # the data config
    student: dict  # the student config (name, model, max_length, ...)
    train: dict  # the train config
    summary: dict = field(default_factory=dict)  # distill_train.json: n_texts, seconds, train_loss, ...
    weak: Optional[dict] = None  # the weak config when stage=weak's combined labels replaced the teacher
    # the trained classifier that labelled the student's texts (a teacher assistant, itself taught by `teacher`)
    assistant: Optional[dict] = None
    metrics: Optional[dict] = None  # the eval stage's metrics.json; None: not evaluated
    student_entry: Optional[str] = None  # name of this model's entry in metrics["models"]
    images: list = field(default_factory=list)  # plots copied into the repo, relative paths
    example: Optional[tuple] = None  # (text, pipeline output) measured on the assembled folder
    base_model: Optional[str] = None  # hub id; None: inferred from student.model
    license: Optional[str] = None


def hub_id_of(ref: Optional[str]) -> Optional[str]:
    """The Hub id of a model reference: itself when it is one, a known id for a local folder, else None."""
    if not ref:
        return None
    name = Path(os.path.expanduser(str(ref))).name
    local = str(ref).startswith(("/", "~", ".")) or str(ref).count("/") > 1 or Path(os.path.expanduser(ref)).exists()
    return KNOWN_HUB_IDS.get(name) if local else str(ref)


def model_link(ref: Optional[str]) -> str:
    """Markdown for a model: a Hub link, or the local folder's name with its architecture."""
    hub_id = hub_id_of(ref)
    if hub_id:
        return f"[{hub_id}](https://huggingface.co/{hub_id})"
    name = Path(os.path.expanduser(str(ref))).name
    config = Path(os.path.expanduser(str(ref))) / "config.json"
    try:
        c = json.loads(config.read_text())
        arch = (c.get("architectures") or [c.get("model_type", "transformer")])[0]
        shape = f"{c['num_hidden_layers']} layers, hidden size {c['hidden_size']}"
        return f"`{name}` (a local {arch}: {shape}; not on the Hub)"
    except (OSError, ValueError, KeyError):
        return f"`{name}` (a local model, not on the Hub)"


def model_name(ref: Optional[str]) -> str:
    """Short form of model_link: a Hub link, or the local folder's name."""
    return model_link(ref) if hub_id_of(ref) else f"`{Path(os.path.expanduser(str(ref))).name}`"


def dataset_info(data: dict) -> dict:
    """Hub id, readable name, config and scored split of the data set the student was made from."""
    known = KNOWN_DATASETS.get(data.get("name"), {})
    heldout = data.get("heldout") or {}
    hub_id = data.get("hub_id") or known.get("id")
    if heldout.get("format") == "hub":
        split = heldout.get("path")
    else:
        split = known.get("split") or (Path(heldout["path"]).stem if heldout.get("path") else "train")
    return {"id": hub_id, "name": data.get("name"), "pretty": known.get("pretty", data.get("name")),
            "what": known.get("what", f"texts like those of `{data.get('name')}`"),
            "config": data.get("hub_config") or known.get("config"), "split": split,
            "language": known.get("language"), "example": known.get("example")}


def pct(value, interval=None) -> str:
    """82.5%, or with its 95% interval: 82.5% (95% CI 79.8-84.9%)."""
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" + (f" (95% CI {100 * interval[0]:.1f}-{100 * interval[1]:.1f}%)" if interval else "")


def pretty(key: str) -> str:
    return PRETTY.get(key, key.replace("_", " "))


# ---------------------------------------------------------------- metrics.json, read leniently

def is_multi_label(inputs: CardInputs) -> bool:
    """A multi-label student: a sigmoid a label and a threshold a label (its eval, or its teacher, says so)."""
    return bool((inputs.metrics or {}).get("multi_label") or inputs.data.get("multi_label")
                or inputs.teacher.get("multi_label"))


def quality_name(inputs: CardInputs) -> str:
    """What the card calls the headline score: accuracy, or for label sets the micro-F1 (stored as accuracy too)."""
    return "micro-F1" if is_multi_label(inputs) else "accuracy"


def split_entries(metrics: Optional[dict], student_entry: Optional[str]):
    """(teacher entry or None, this model's entry or None, every entry in order)."""
    if not metrics:
        return None, None, []
    entries = list(metrics.get("models", []))
    teacher = next((e for e in entries if e.get("role") == "teacher"), None)
    student = next((e for e in entries if e.get("name") == student_entry), None)
    student = student or next((e for e in entries if e.get("role") == "student"), None)
    return teacher, student, entries


def extra_columns(entries: list) -> tuple[list, list]:
    """Numeric fields beyond the core ones (flattening {"p50": .., "p95": ..} dicts), split into
    (quality columns, speed/size columns); each column is a (header, getter) pair."""
    quality, speed, seen = [], [], set()
    for entry in entries:
        for key, value in entry.items():
            if key in CORE_KEYS:
                continue
            getters = []
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                getters = [(pretty(key), key, None)]
            elif isinstance(value, dict) and value and all(isinstance(v, (int, float)) for v in value.values()):
                getters = [(f"{pretty(key)} {pretty(str(k))}", key, k) for k in value]
            for header, k1, k2 in getters:
                if header in seen:
                    continue
                seen.add(header)
                raw = (lambda e, k1=k1, k2=k2: e.get(k1) if k2 is None else (e.get(k1) or {}).get(k2))
                get = (lambda e, raw=raw, k1=k1: readable(k1, raw(e)))
                (speed if any(h in k1.lower() for h in SPEED_HINTS) else quality).append((header, get))
    return quality, speed


def speedup(entry: dict, teacher: Optional[dict], bs: str) -> Optional[float]:
    try:
        return entry["samples_per_s"][bs] / teacher["samples_per_s"][bs]
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def headline_batch(metrics: dict) -> str:
    sizes = [str(b) for b in metrics.get("batch_sizes", [])]
    return "32" if "32" in sizes else (sizes[-1] if sizes else "1")


# ---------------------------------------------------------------- metadata

def eval_results(inputs: CardInputs) -> list[EvalResult]:
    """This model's scores as model-index entries (the teacher's numbers stay in the text)."""
    _, student, _ = split_entries(inputs.metrics, inputs.student_entry)
    if student is None:
        return []
    ds = dataset_info(inputs.data)
    common = dict(task_type="text-classification", task_name="Text Classification",
                  dataset_type=ds["id"] or ds["name"], dataset_name=ds["pretty"], dataset_config=ds["config"],
                  dataset_split=ds["split"])
    first = (EvalResult(metric_type="f1", metric_name="Micro-F1", metric_args={"average": "micro"},
                        metric_value=round(student["accuracy"], 4), **common) if is_multi_label(inputs) else
             EvalResult(metric_type="accuracy", metric_name="Accuracy", metric_value=round(student["accuracy"], 4),
                        **common))
    results = [first,
               EvalResult(metric_type="f1", metric_name="Macro-F1", metric_args={"average": "macro"},
                          metric_value=round(student["macro_f1"], 4), **common)]
    if student.get("agreement_with_teacher") is not None:
        results.append(EvalResult(metric_type="agreement", metric_name="Agreement with teacher",
                                  metric_value=round(student["agreement_with_teacher"], 4), **common))
    return results


def card_data(inputs: CardInputs) -> ModelCardData:
    ds = dataset_info(inputs.data)
    results = eval_results(inputs)
    base = inputs.base_model or hub_id_of(inputs.student.get("model"))
    return ModelCardData(
        language=ds["language"], license=inputs.license, library_name="transformers",
        pipeline_tag="text-classification", base_model=base, datasets=[ds["id"]] if ds["id"] else None,
        metrics=["accuracy", "f1"] if results else None,
        tags=["text-classification", "knowledge-distillation", "zero-shot-distillation", "distill"]
        + (["multi-label"] if is_multi_label(inputs) else []),
        model_name=inputs.repo_id.split("/")[-1] if results else None, eval_results=results or None)


# ---------------------------------------------------------------- text

def intro(inputs: CardInputs) -> str:
    ds = dataset_info(inputs.data)
    name = inputs.repo_id.split("/")[-1]
    n_texts = inputs.summary.get("n_texts")
    labels = ", ".join(f"`{label}`" for label in inputs.labels)
    text = (f"# {name}\n\n**{name}** sorts {ds['what']} ({ds['pretty']}) into {len(inputs.labels)} labels "
            f"({labels}). It is {model_link(inputs.base_model or inputs.student.get('model'))} fine-tuned on "
            f"{f'{n_texts:,} ' if n_texts else ''}texts {labeller(inputs)} labelled: **no human-labelled "
            "example was used for training.** It was made with [distill](#how-it-was-made), which labels "
            "unlabelled text with a large zero-shot model and distils it into a small, fast classifier.")
    if is_multi_label(inputs):
        text += ("\n\nIt is **multi-label**: a text gets every label whose sigmoid probability reaches that label's "
                 "threshold (`distill_thresholds` in `config.json`, fitted without gold on teacher-labelled "
                 "validation texts)"
                 + (f"; `{inputs.data['none_label']}` means none of the others" if inputs.data.get("none_label")
                    else "") + ".")
    teacher, student, _ = split_entries(inputs.metrics, inputs.student_entry)
    if student is None:
        return text + ("\n\n> This model has not been evaluated. `python -m distill stage=eval` with the same "
                       "settings measures it, and `stage=publish` then adds the results to this card.")
    bs = headline_batch(inputs.metrics)
    facts = [f"{pct(student['accuracy'], student.get('accuracy_ci'))} {quality_name(inputs)}"]
    if teacher:
        facts[0] += f" (teacher: {pct(teacher['accuracy'])})"
    if student.get("vs_teacher"):
        facts[0] += f"; {describe_difference(student['vs_teacher'])}"
    if student.get("agreement_with_teacher") is not None:
        facts.append(f"agrees with its teacher on {pct(student['agreement_with_teacher'])} of them")
    up = speedup(student, teacher, bs)
    if up:
        facts.append(f"runs {up:.1f}x as fast as the teacher (batch size {bs})")
    return text + (f"\n\nOn {inputs.metrics.get('n_heldout', 'the')} held-out texts it scores "
                   f"{', '.join(facts[:-1])}{' and ' if len(facts) > 1 else ''}{facts[-1]}.")


def teacher_method(teacher: dict) -> str:
    kind = teacher.get("kind", "nli")
    if kind == "embedding":
        return (f"it embeds the text and one prompt per label and takes a softmax over their cosine similarities "
                f"(temperature {teacher.get('temperature')}).")
    if teacher.get("descriptions"):
        prompts = "hand-written descriptions of each label (several per label, averaged)"
    elif teacher.get("templates"):
        prompts = "the hypotheses " + ", ".join(f'"{t}"' for t in teacher["templates"]) + " (averaged)"
    else:
        prompts = f"the hypothesis \"{teacher.get('template', 'This example is {}.')}\""
    runtime = " on onnxruntime" if kind == "onnx" else ""
    how = "entailment vs contradiction per label" if teacher.get("multi_label") else "a softmax over labels"
    return (f"a natural-language-inference model{runtime} reads each text against {prompts} filled in with "
            f"each label, and its entailment scores give the label probabilities ({how}).")


def labeller(inputs: CardInputs) -> str:
    if inputs.weak:
        return f"that weak supervision ({len(inputs.weak.get('teachers') or {})} zero-shot teachers and rules)"
    if inputs.assistant:
        return (f"that a larger student, {model_name(inputs.assistant.get('model'))} (itself distilled from the "
                f"zero-shot teacher {model_name(inputs.teacher.get('model'))}), as a teacher assistant,")
    return f"that the zero-shot teacher {model_name(inputs.teacher.get('model'))}"


def weak_method(weak: dict) -> str:
    """stage=weak: several zero-shot teachers and labelling rules, combined by a label model."""
    sources = [f"the zero-shot teachers {', '.join(f'`{t}`' for t in weak.get('teachers') or {})}"]
    for kind in ("keywords", "regex"):
        if weak.get(kind):
            sources.append(f"{kind} rules for {', '.join(weak[kind])}")
    if weak.get("hook"):
        sources.append(f"the custom rule `{weak['hook']}`")
    return (f"weak supervision: {'; '.join(sources)}, each voting or abstaining per text, combined by the "
            f"`{weak.get('label_model', 'dawid_skene')}` label model into one probability per label.")


def how_made(inputs: CardInputs) -> str:
    ds, s, t = dataset_info(inputs.data), inputs.summary, inputs.train
    lines = ["## How it was made", ""]
    if inputs.weak:
        lines.append(f"1. **Labels**: {weak_method(inputs.weak)}")
    else:
        lines.append(f"1. **Teacher**: {model_link(inputs.teacher.get('model'))}, zero-shot: "
                     f"{teacher_method(inputs.teacher)}"
                     + (f" A larger student fine-tuned on its labels, {model_name(inputs.assistant.get('model'))}, "
                        "then labelled the texts below as a *teacher assistant*." if inputs.assistant else ""))
    pool = f"{s['n_texts']:,} unlabelled texts" if s.get("n_texts") else "unlabelled texts"
    source = f"[{ds['pretty']}](https://huggingface.co/datasets/{ds['id']})" if ds["id"] else ds["pretty"]
    counts = (s.get("label_distribution") or {}).get("argmax_counts") or {}
    total = sum(counts.values()) or 1
    spread = ", ".join(f"{k} {v:,} ({100 * v / total:.0f}%)" for k, v in counts.items())
    by = "so" if inputs.weak else "by the teacher assistant" if inputs.assistant else "by the teacher"
    lines.append(f"2. **Data**: {pool} from {source} (`{ds['name']}`), labelled {by}"
                 + (f": {spread}." if spread else "."))
    targets = t.get("targets", "soft")
    learn = (f"the teacher's full probability distributions (soft targets, temperature {t.get('temperature')})"
             if targets == "soft" else "the teacher's top label for each text (hard targets)")
    if is_multi_label(inputs):
        who, key = ("the label model", "weak") if inputs.weak else ("the teacher", "teacher")
        rule = (inputs.weak or inputs.teacher).get("label_sets")
        learn = (f"each label's own probability from {who} (soft targets)" if targets == "soft" else
                 f"{who}'s label sets (hard targets; `{key}.label_sets={rule}`)") + \
            ", a sigmoid and a binary cross-entropy a label"
    kept = inputs.student.get("layers")
    cut = f", cut to its first {kept} layers," if kept else ""
    lines.append(f"3. **Student**: {model_link(inputs.base_model or inputs.student.get('model'))}{cut} with a new "
                 f"{len(inputs.labels)}-way head, fine-tuned on {learn}, texts cut at "
                 f"{inputs.student.get('max_length')} tokens.")
    lines.append("4. **No gold labels**: the data set's own labels were read only to score the held-out texts "
                 "below; labelling and training never saw them.")
    settings = {k: v for k, v in t.items() if k not in TRAIN_HIDDEN and v is not None}
    done = ([f"{s['seconds'] / 60:.1f} minutes"] if s.get("seconds") is not None else []) + (
        [f"final training loss {s['train_loss']:.3f}"] if s.get("train_loss") is not None else [])
    lines += ["", "Training settings" + (f" ({', '.join(done)})" if done else "") + ":", "",
              markdown_table(["setting", "value"], [[f"`train.{k}`", str(v)] for k, v in settings.items()])]
    return "\n".join(lines)


def results_section(inputs: CardInputs) -> str:
    teacher, student, entries = split_entries(inputs.metrics, inputs.student_entry)
    if student is None:
        return "## Results\n\nNot evaluated yet (see above)."
    m, ds = inputs.metrics, dataset_info(inputs.data)
    quality, speed = extra_columns(entries)
    how = ("their gold label sets. Agreement is the micro-F1 of a model's label sets against the teacher's."
           if is_multi_label(inputs) else
           "their gold labels. Agreement is the share of texts on which a model picks the teacher's label.")
    out = ["## Results", "",
           f"{m.get('n_heldout', '?')} held-out texts of `{ds['name']}` ({ds['split']} split), scored against "
           f"{how}", ""]
    rows = [[e.get("name"), "**this model**" if e is student else e.get("role"),
             pct(e.get("accuracy"), e.get("accuracy_ci")), pct(e.get("macro_f1"), e.get("macro_f1_ci")),
             "-" if e is teacher else pct(e.get("agreement_with_teacher"))]
            + [get(e) for _, get in quality]
            for e in entries]
    out.append(markdown_table(["model", "role", quality_name(inputs), "macro-F1", "agreement with teacher"]
                              + [h for h, _ in quality], rows))
    sizes = [str(b) for b in m.get("batch_sizes", [])]
    if sizes:
        where = f" on {m['device']}" if m.get("device") else ""
        where += f" ({m['machine']['cpu_summary']})" if (m.get("machine") or {}).get("cpu_summary") else ""
        out += ["", "### Speed", "", f"Texts per second{where} at each batch size, and the speed-up over the teacher:",
                ""]
        rows = []
        for e in entries:
            cells = []
            for bs in sizes:
                rate = (e.get("samples_per_s") or {}).get(bs)
                up = speedup(e, teacher, bs) if e is not teacher else None
                cells.append("-" if rate is None else f"{rate:,.1f}" + (f" ({up:.1f}x)" if up else ""))
            rows.append([e.get("name")] + cells + [get(e) for _, get in speed])
        out.append(markdown_table(["model"] + [f"samples/s @{bs}" for bs in sizes] + [h for h, _ in speed], rows))
    out += per_class(student, inputs.labels) + confusion(student, inputs.labels)
    for image in inputs.images:
        caption = Path(image).stem.replace("_", " ").replace("-", " ").capitalize()
        out += ["", f"![{caption}]({image})"]
    return "\n".join(out)


def per_class(entry: dict, labels: list) -> list:
    table = next((entry[k] for k in ("per_class", "per_label", "classes") if isinstance(entry.get(k), dict)), None)
    if not table or not all(isinstance(v, dict) for v in table.values()):
        return []
    cols = list(dict.fromkeys(k for v in table.values() for k in v))
    rows = [[label] + [v.get(c) for c in cols] for label, v in table.items()]
    return ["", "### Per label (this model)", "", markdown_table(["label"] + cols, rows)]


def confusion(entry: dict, labels: list) -> list:
    matrix = next((entry[k] for k in ("confusion", "confusion_matrix") if k in entry), None)
    if isinstance(matrix, dict):
        matrix = matrix.get("matrix")
    if not (isinstance(matrix, list) and len(matrix) == len(labels)
            and all(isinstance(r, list) and len(r) == len(labels) for r in matrix)):
        return []
    rows = [[f"**{label}**"] + row for label, row in zip(labels, matrix)]
    return ["", "### Confusion matrix (this model; rows: gold, columns: predicted)", "",
            markdown_table(["gold \\ predicted"] + list(labels), rows)]


def usage(inputs: CardInputs) -> str:
    text, output = inputs.example or (dataset_info(inputs.data)["example"] or "Your text here.", None)
    shown = f"\n# {output}" if output is not None else ""
    if is_multi_label(inputs):
        return ("## How to use\n\n```python\nfrom transformers import pipeline\n\n"
                f"classify = pipeline(\"text-classification\", model=\"{inputs.repo_id}\", top_k=None)\n"
                "config = classify.model.config\n"
                "thresholds, none = config.distill_thresholds, config.distill_none_label  # in id order; or None\n"
                f"scores = classify([{json.dumps(text)}])[0]  # every label's sigmoid probability, highest first\n"
                "labels = [s[\"label\"] for s in scores\n"
                "          if s[\"label\"] != none and s[\"score\"] >= thresholds[config.label2id[s[\"label\"]]]]\n"
                "labels = labels or [none or scores[0][\"label\"]]  # none reached: the none label, or the top\n```")
    return ("## How to use\n\n```python\nfrom transformers import pipeline\n\n"
            f"classify = pipeline(\"text-classification\", model=\"{inputs.repo_id}\")\n"
            f"classify({json.dumps(text)}){shown}\n"
            "classify([\"first text\", \"second text\"], top_k=None, batch_size=32)  # every label's probability\n```")


def limitations(inputs: CardInputs) -> str:
    ds = dataset_info(inputs.data)
    teacher, student, _ = split_entries(inputs.metrics, inputs.student_entry)
    items = []
    if student and teacher:
        items.append(f"It learned the teacher's labels, mistakes included: the teacher itself scores "
                     f"{pct(teacher['accuracy'])} {quality_name(inputs)} on the held-out texts; expect the student "
                     "near or below it.")
    else:
        items.append("It learned the teacher's labels, mistakes included: it is at best about as accurate as the "
                     "teacher on this data.")
    labels = ", ".join(inputs.labels)
    gets = ("at least one of them" if is_multi_label(inputs) and not inputs.data.get("none_label")
            else "its none label when no other fits" if is_multi_label(inputs) else "one of them")
    items.append(f"It knows only these labels ({labels}): every input gets {gets}, even text that fits none. "
                 "The scores are the student's probabilities, not calibrated confidence"
                 + (f" (expected calibration error {fmt(student['ece'], 3)})." if student and
                    isinstance(student.get("ece"), (int, float)) else "."))
    items.append(f"It was trained on {ds['what']} ({ds['pretty']}) only; on other domains, styles or lengths "
                 f"accuracy is untested. Texts longer than {inputs.student.get('max_length')} tokens are truncated.")
    if ds["language"] == "en":
        items.append("English only.")
    if student:
        items.append("Speeds were measured once, on one machine; the ratio to the teacher carries over better "
                     "than the absolute numbers.")
    items.append("Biases of the base model, the teacher and the unlabelled data carry over; the model has not been "
                 "audited for them. Do not use it for decisions about people.")
    return "## Limitations\n\n" + "\n".join(f"- {item}" for item in items)


def reproduce(inputs: CardInputs) -> str:
    data, t = inputs.data, inputs.train
    args = ["stage=all"]
    if data.get("hub_id") and str(data.get("name", "")).startswith("hub-"):
        args += ["data=hub", f"data.hub_id={data['hub_id']}"]
    else:
        args.append(f"data={data.get('name')}")
    args += [f"weak={inputs.weak.get('name')}"] if inputs.weak else [f"teacher={inputs.teacher.get('name')}"]
    args.append(f"student={inputs.student.get('name')}")
    if inputs.student.get("layers"):
        args.append(f"student.layers={inputs.student['layers']}")
    defaults = vars(TrainConfig())
    args += [f"train.{k}={v}" for k, v in t.items()
             if k not in TRAIN_HIDDEN and k in defaults and v != defaults[k]]
    return ("## Reproduce\n\nWith the distill version that made it, the same models and the same data:\n\n"
            f"```bash\npython -m distill {' '.join(args)}\n"
            f"python -m distill stage=publish {' '.join(args[1:])} hub.repo_id={inputs.repo_id}\n```")


def build_card(inputs: CardInputs) -> ModelCard:
    """The README.md of the repo; its metadata is parsed back by huggingface_hub, so a bad field fails here."""
    body = "\n\n".join([intro(inputs), how_made(inputs), results_section(inputs), usage(inputs),
                        limitations(inputs), reproduce(inputs)])
    metadata = card_data(inputs).to_yaml()
    return ModelCard(f"---\n{metadata}\n---\n\n{body}\n")
