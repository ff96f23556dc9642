"""Hydra composition of the real conf/ tree: every preset composes, typos fail, overrides are checked."""
from __future__ import annotations

import itertools

import pytest
from hydra.errors import ConfigCompositionException

from distill.config import CONF_DIR, Stage, load_config
from distill.overrides import check_overrides, groups

PRESETS = groups()


def test_groups_exist():
    assert {"data", "teacher", "student"} <= set(PRESETS)
    assert {"sst2", "ag_news", "sms_spam", "tweeteval_emotion", "hub"} <= set(PRESETS["data"])
    assert {"deberta-v3-nli", "bart-large-mnli", "deberta-large-mnli"} <= set(PRESETS["teacher"])
    assert {"minilm", "electra-small", "electra-base", "distilbert"} <= set(PRESETS["student"])


@pytest.mark.parametrize("data,teacher,student", list(itertools.product(
    [d for d in PRESETS["data"] if d not in ("hub", "file")], PRESETS["teacher"], PRESETS["student"])))
def test_every_preset_composes(data, teacher, student):
    cfg = load_config([f"data={data}", f"teacher={teacher}", f"student={student}"])
    assert cfg.data.name == data and cfg.teacher.name == teacher and cfg.student.name == student
    assert len(cfg.data.labels) >= 2
    assert "{}" in cfg.teacher.template


def test_hub_data_preset_needs_an_id():
    cfg = load_config(["data=hub", "data.hub_id=stanfordnlp/sst2", "data.labels=[negative,positive]",
                       "data.text_columns=[sentence]"])
    assert cfg.data.name == "hub-stanfordnlp/sst2" and cfg.data.pool.format == "hub"


def test_defaults_come_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DISTILL_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("DISTILL_DATA", str(tmp_path / "data"))
    cfg = load_config([])  # no local copies there: the Hub models the presets stand for
    assert cfg.teacher.model == "MoritzLaurer/DeBERTa-v3-xsmall-mnli-fever-anli-ling-binary" == cfg.teacher.hub_id
    # the default student is the teacher's backbone, cut to 6 layers when it is fine-tuned
    assert cfg.student.model == cfg.teacher.model and cfg.student.layers == 6
    for name in ("deberta-v3-nli", "all-MiniLM-L6-v2"):
        (tmp_path / "models" / name).mkdir(parents=True)
    cfg = load_config([])
    assert cfg.stage == Stage.all and cfg.data.name == "sst2"
    assert cfg.teacher.model == f"{tmp_path}/models/deberta-v3-nli"
    assert cfg.student.model == f"{tmp_path}/models/deberta-v3-nli"
    assert load_config(["student=minilm"]).student.model == f"{tmp_path}/models/all-MiniLM-L6-v2"
    assert cfg.paths.data == str(tmp_path / "data")


def test_hub_presets_are_one_override_away():
    cfg = load_config(["teacher=bart-large-mnli", "student=electra-small"])
    assert cfg.teacher.model == "facebook/bart-large-mnli"
    assert cfg.student.model == "google/electra-small-discriminator"


@pytest.mark.parametrize("override", ["teacher.batchsize=16", "data.pool.paht=x", "stage=lable",
                                      "train.epochs=abc"])
def test_schema_rejects_typos(override):
    with pytest.raises(ConfigCompositionException):
        load_config([override])


@pytest.mark.parametrize("argv,expected", [
    (["teacher.batchsize=16"], "did you mean 'teacher.batch_size'"),
    (["data.pool.paht=x"], "did you mean 'data.pool.path'"),
    (["data=sst3"], "unknown data preset 'sst3'"),
    (["student=bert"], "available: deberta-nli, deberta-nli-6l, distilbert, electra-base, electra-small, minilm"),
    (["stage=lable"], "must be one of recipe, label, train, eval, predict, all, publish, weak, prune"),
    (["train.epochs=abc"], "expected a number"),
    (["+train.foo=1"], "unknown config key 'train.foo'"),  # Hydra itself would accept an appended key
    (["teacher.multi_label=maybe"], "expected true or false"),
])
def test_override_check_names_the_fix(argv, expected):
    assert expected in (check_overrides(argv) or "")


@pytest.mark.parametrize("argv", [
    ["-m", "train.lr=1e-5,3e-5", "student=minilm,distilbert"], ["--cfg", "job"], ["teacher.batch_size=16"],
    ["data.label_map.7=x"], ["hydra.verbose=true"], ["eval.batch_sizes=[1,8]"], ["train.labels_path=null"],
])
def test_override_check_accepts_valid(argv):
    assert check_overrides(argv) is None


def test_conf_dir_is_the_repo_conf():
    assert (CONF_DIR / "config.yaml").exists()


def test_a_label_map_can_be_given_on_the_command_line():
    """The overrides a gold-value error suggests: a name, and a number (Hydra's {3: x} has an int key)."""
    argv = ["data=file", "data.pool.path=r.csv", "data.labels=[neg,pos]", "+data.label_map={awful: neg}",
            "+data.label_map.3=pos"]
    assert check_overrides(argv) is None
    assert dict(load_config(argv).data.label_map) == {"awful": "neg", "3": "pos"}


def test_dict_options_can_be_set_from_the_command_line():
    cfg = load_config(['++teacher.descriptions={positive:["This review is positive."],negative:["Bad."]}',
                       'teacher.templates=["This example is {}.","The review is {}."]'])
    assert cfg.teacher.descriptions["positive"] == ["This review is positive."]
    assert list(cfg.teacher.templates) == ["This example is {}.", "The review is {}."]
