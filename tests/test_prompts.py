"""Label names as people write them become sensible prompt text, visibly and overridably; descriptions for many
labels come from a file; both enter the label cache key as what they make."""
from __future__ import annotations

import logging

import pytest

from distill import artifacts
from distill.config import load_config
from distill.errors import DistillError
from distill.teachers.nli import hypotheses_for, readable


@pytest.mark.parametrize("name, text", [
    ("card_arrival", "card arrival"), ("CardArrival", "card arrival"), ("cardArrival", "card arrival"),
    ("BILLING_ISSUE", "billing issue"), ("ATM_support", "ATM support"), ("NEG", "negative"), ("pos", "positive"),
    ("SPAM", "spam"), ("exchange_rate.v2", "exchange rate v2"),
    # read as they are: already words, or nothing sure to gain
    ("Sci/Tech", "Sci/Tech"), ("negative", "negative"), ("not spam", "not spam"), ("World", "World"),
    ("ATM", "ATM"), ("e-mail", "e-mail"), ("_", "_"), ("joy", "joy")])
def test_readable(name, text):
    assert readable(name) == text


def cfg(*extra):
    return load_config(["data.labels=[card_arrival,NEG,World]", *extra])


def test_the_template_names_labels_readably_and_says_so(caplog):
    c = cfg()
    with caplog.at_level(logging.INFO):
        hypotheses, owner = hypotheses_for(c.teacher, list(c.data.labels))
    assert hypotheses == ["This example is card arrival.", "This example is negative.", "This example is World."]
    assert any("card_arrival -> 'card arrival'" in r.getMessage() for r in caplog.records)


def test_label_text_overrides_and_unknown_labels_are_named():
    c = cfg("+teacher.label_text={NEG: 'a complaint'}")
    assert hypotheses_for(c.teacher, list(c.data.labels))[0][1] == "This example is a complaint."
    with pytest.raises(DistillError, match=r"label_text names labels that are not in data.labels: \['nope'\]"):
        hypotheses_for(cfg("+teacher.label_text={nope: x}").teacher, ["card_arrival", "NEG", "World"])


def test_label_text_enters_the_key_only_when_a_name_reads_otherwise():
    plain = load_config(["data=sst2"])
    assert "label_text" not in artifacts.teacher_identity(plain)  # every key made before stays valid
    assert artifacts.teacher_identity(cfg())["label_text"] == {"card_arrival": "card arrival", "NEG": "negative"}
    assert artifacts.label_cache(cfg("+teacher.label_text={NEG: 'a complaint'}")) != artifacts.label_cache(cfg())
    # saying what the default says is the same labelling
    assert artifacts.label_cache(cfg("+teacher.label_text={NEG: negative}")) == artifacts.label_cache(cfg())


@pytest.mark.parametrize("layout", ["yaml", "csv", "tsv"])
def test_descriptions_from_a_file(tmp_path, layout):
    path = tmp_path / f"d.{layout}"
    if layout == "yaml":
        path.write_text("card_arrival:\n  - My card has not arrived.\n  - Where is my new card?\n"
                        "NEG: The customer is unhappy.\nWorld: News about the world.\n")
    else:
        sep = "," if layout == "csv" else "\t"
        rows = [("card_arrival", "My card has not arrived."), ("NEG", "The customer is unhappy."),
                ("card_arrival", "Where is my new card?"), ("World", "News about the world.")]
        path.write_text("\n".join([f"label{sep}description", *(f"{a}{sep}{b}" for a, b in rows)]) + "\n")
    c = cfg(f"teacher.descriptions_file={path}")
    hypotheses, owner = hypotheses_for(c.teacher, list(c.data.labels))
    assert sorted(zip(owner, hypotheses)) == [(0, "My card has not arrived."), (0, "Where is my new card?"),
                                              (1, "The customer is unhappy."), (2, "News about the world.")]
    # inline descriptions win for a label both give
    both = cfg(f"teacher.descriptions_file={path}", "+teacher.descriptions={World: [Politics abroad.]}")
    assert "Politics abroad." in hypotheses_for(both.teacher, list(both.data.labels))[0]


def test_the_key_follows_the_descriptions_file_content_not_its_path(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    text = "card_arrival: Card late.\nNEG: Unhappy.\nWorld: World news.\n"
    a.write_text(text)
    b.write_text(text)
    key = artifacts.label_cache(cfg(f"teacher.descriptions_file={a}"))
    assert artifacts.label_cache(cfg(f"teacher.descriptions_file={b}")) == key
    b.write_text(text.replace("Unhappy.", "Angry."))
    assert artifacts.label_cache(cfg(f"teacher.descriptions_file={b}")) != key


@pytest.mark.parametrize("content, message", [
    (None, "no such file"), ("label,text\nNEG,x\n", "needs columns label and description"),
    ("label,description\nNEG,\n", "line 2: a row needs both"), ("[1, 2]", "must map each label"),
    ("NEG: [1]\n", "label 'NEG' must have a sentence"), ("NEG: [a, b\n", r"not readable YAML \(line 2: ")])
def test_descriptions_file_errors_are_one_line(tmp_path, content, message):
    path = tmp_path / ("d.yaml" if content and content.startswith(("[", "NEG")) else "d.csv")
    if content is not None:
        path.write_text(content)
    with pytest.raises(DistillError, match=message):
        hypotheses_for(cfg(f"teacher.descriptions_file={path}").teacher, ["card_arrival", "NEG", "World"])
