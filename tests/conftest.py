"""Shared fixtures: tiny random models built at test time (hidden size 32, 2 layers), saved once per session.

The tokenizers get a real word-level vocabulary through `vocab=` (transformers 5 ignores `vocab_file=` and
keeps only the special tokens), and a fixture asserts ordinary words are not [UNK].
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED = Path(os.environ.get("DISTILL_SHARED", SHARED))
MODELS = Path(os.path.expanduser(os.environ.get("DISTILL_MODELS", "~/.cache/distill-models")))

WORDS = (
    "this example is a the movie film was great good bad terrible awful fine love hate boring fun "
    "positive negative neutral world sports business sci tech news spam ham free win claim text call "
    "anger joy optimism sadness i it and of to in not very really so plot actors story game team market "
    "stocks science space phone prize now you your we they he she what how why"
).split()


def tiny_vocab() -> dict:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", "'", "/", "-"] + WORDS
    tokens += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz0123456789")
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def build_tiny_bert(folder: Path, id2label: dict, seed: int = 0, hidden_size: int = 32, layers: int = 2) -> Path:
    """A BertForSequenceClassification with a 2-layer, 32-wide encoder (by default) and a working tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    torch.manual_seed(seed)
    vocab = tiny_vocab()
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    ids = tokenizer("the movie was great")["input_ids"]
    assert tokenizer.unk_token_id not in ids, "tiny tokenizer maps ordinary words to [UNK]"
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden_size, max_position_embeddings=128, initializer_range=0.3,
        id2label={int(k): v for k, v in id2label.items()},
        label2id={v: int(k) for k, v in id2label.items()},
    )
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_deberta_config(**overrides):
    """A DebertaV2Config in miniature (32 wide, relative attention with c2p + p2c, as in DeBERTa-v3)."""
    from transformers import DebertaV2Config

    settings = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    max_position_embeddings=128, relative_attention=True, position_buckets=256,
                    pos_att_type=["p2c", "c2p"], share_att_key=True, norm_rel_ebd="layer_norm",
                    position_biased_input=False, num_labels=2)
    return DebertaV2Config(**{**settings, **overrides})


def build_tiny_deberta(folder: Path, id2label: dict, layers: int = 2, **overrides) -> Path:
    """A DebertaV2ForSequenceClassification with the tiny word-level tokenizer: a DeBERTa student in miniature
    (`overrides`: other config values)."""
    import torch
    from transformers import BertTokenizerFast, DebertaV2ForSequenceClassification

    torch.manual_seed(0)
    vocab = tiny_vocab()
    config = tiny_deberta_config(
        vocab_size=len(vocab), num_hidden_layers=layers, initializer_range=0.3,
        id2label={int(k): v for k, v in id2label.items()}, label2id={v: int(k) for k, v in id2label.items()},
        **overrides)
    DebertaV2ForSequenceClassification(config).eval().save_pretrained(folder)
    BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_nli_2way(tmp_path_factory) -> Path:
    """2-way NLI head in the deberta-v3-nli order: {0: entailment, 1: not_entailment}."""
    return build_tiny_bert(tmp_path_factory.mktemp("nli2"), {0: "entailment", 1: "not_entailment"}, seed=1)


@pytest.fixture(scope="session")
def tiny_nli_3way(tmp_path_factory) -> Path:
    """3-way MNLI head in the bart-large-mnli order: contradiction, neutral, entailment."""
    return build_tiny_bert(tmp_path_factory.mktemp("nli3"),
                           {0: "contradiction", 1: "neutral", 2: "entailment"}, seed=2)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A plain encoder checkpoint to fine-tune as a student (its head is replaced)."""
    return build_tiny_bert(tmp_path_factory.mktemp("encoder"), {0: "LABEL_0", 1: "LABEL_1"}, seed=3)


@pytest.fixture
def default_models(tmp_path, tiny_nli_2way, tiny_encoder) -> Path:
    """A folder laid out as DISTILL_MODELS is, the default presets' models in it being the tiny ones."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "deberta-v3-nli").symlink_to(tiny_nli_2way, target_is_directory=True)
    (models / "all-MiniLM-L6-v2").symlink_to(tiny_encoder, target_is_directory=True)
    return models


def load_script(name: str):
    """scripts/<name>.py as a module (the scripts are not a package), registered in sys.modules (a dataclass
    in it looks its module up there)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def require_shared(*parts: str) -> Path:
    """Skip (with the reason) when ../shared or a file in it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: integration tests need ../shared (data and bin/fetch-models)")
    return path


def require_model(name: str) -> Path:
    path = MODELS / name
    if not (path / "config.json").exists():
        pytest.skip(f"real model {path} is absent: run ../shared/bin/fetch-models (DISTILL_MODELS={MODELS})")
    return path


def assert_batch_and_order_invariant(predict, texts, batch_sizes=(1, 7), atol=1e-5):
    """`predict(texts, batch_size=, progress=)` gives the same rows whatever the batch size or input order."""
    import numpy as np

    base = predict(texts, batch_size=64)
    for batch_size in batch_sizes:
        np.testing.assert_allclose(predict(texts, batch_size=batch_size), base, atol=atol)
    perm = np.random.default_rng(0).permutation(len(texts))
    shuffled = predict([texts[i] for i in perm], batch_size=batch_sizes[-1], progress=True)
    np.testing.assert_allclose(shuffled, base[perm], atol=atol)
