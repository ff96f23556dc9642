"""teacher.compile: when a teacher is compiled, and that a compiled teacher labels as the uncompiled one.

Deciding is fast (verdicts stated through DISTILL_CPU_BF16, no probe). Compiling is not: inductor takes
minutes per model on a small CPU whatever the model's size, so the tests that compile are in the slow
tier (`integration`), and run in a child process, as stage=label's workers do, so that this process's
oneDNN state (AMX kernels that kill it on some VMs, see cpu_bf16) plays no part.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from distill.config import load_config
from distill.errors import DistillError
from distill.runtime import compiled, cpu_bf16
from distill.teachers.nli import decide_compile

from conftest import build_tiny_deberta, require_model, require_shared

CPU = torch.device("cpu")


@pytest.fixture
def stated(monkeypatch):
    """State this CPU's bf16 verdict (no probe)."""
    def state(value: str):
        monkeypatch.setenv(cpu_bf16.ENV, value)
        cpu_bf16.verdict.cache_clear()
    yield state
    cpu_bf16.verdict.cache_clear()


@pytest.mark.parametrize("value, text", [("auto", "auto"), (True, "true"), ("False", "false"), (" TRUE ", "true")])
def test_setting_takes_auto_and_booleans(value, text):
    assert compiled.setting(value) == text


def test_a_bad_setting_is_named():
    with pytest.raises(DistillError, match="teacher.compile 'sometimes' is not one of auto, true, false"):
        compiled.setting("sometimes")


def test_auto_compiles_big_cpu_labellings_where_only_compiled_bf16_is_fast(stated):
    stated("0,crash,compiled")
    assert compiled.worth_compiling("auto", CPU, compiled.MIN_PAIRS)
    assert not compiled.worth_compiling("auto", CPU, compiled.MIN_PAIRS - 1)  # compiling would cost more
    assert not compiled.worth_compiling("auto", torch.device("cuda"), 10**9)
    assert compiled.worth_compiling("true", CPU, 1) and not compiled.worth_compiling("false", CPU, 10**9)


@pytest.mark.parametrize("verdict", ["1", "0", "0,crash"])
def test_auto_does_not_compile_where_compiling_gains_nothing(stated, verdict):
    stated(verdict)  # eager bf16 already fast, or compiled bf16 not faster
    assert not compiled.worth_compiling("auto", CPU, 10**9)


def test_only_an_explicit_true_compiles_a_teacher_built_outside_the_label_stage():
    assert compiled.enabled("true", CPU)
    assert not compiled.enabled("auto", CPU) and not compiled.enabled("false", CPU)
    assert not compiled.enabled("true", torch.device("cuda"))  # CPU teachers only


def test_the_label_stage_settles_auto_by_the_number_of_pairs(stated):
    stated("0,crash,compiled")
    cfg = load_config(["data=sst2", "teacher=deberta-v3-nli", "teacher.device=cpu"])  # 2 labels: 2 pairs a text
    labels = list(cfg.data.labels)
    assert decide_compile(cfg.teacher, labels, compiled.MIN_PAIRS // 2).compile == "true"
    assert decide_compile(cfg.teacher, labels, compiled.MIN_PAIRS // 2 - 1).compile == "false"
    assert decide_compile(cfg.teacher, labels, None).compile == "auto"  # size unknown: left to the teacher
    assert cfg.teacher.compile == "auto"  # the configuration itself is not changed
    explicit = load_config(["data=sst2", "teacher=deberta-v3-nli", "teacher.device=cpu", "teacher.compile=false"])
    assert compiled.setting(decide_compile(explicit.teacher, labels, 10**9).compile) == "false"  # YAML false: "False"


def run_child(code: str, **env) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1200,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


COMPARE = """
import json, sys
import numpy as np
from distill.config import TeacherConfig
from distill.teachers import build_teacher
model, labels, dtype, texts = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
def teacher(compile, dtype):
    return build_teacher(TeacherConfig(name="t", model=model, device="cpu", dtype=dtype, compile=compile), labels)
eager = teacher("false", "float32").predict_proba(texts)
fast = teacher("true", dtype)
one = fast.predict_proba(texts[:1])  # a batch of one pair is padded to two
probs = fast.predict_proba(texts, batch_size=7)
print(json.dumps({"eager": eager.tolist(), "compiled": probs.tolist(), "one": one.tolist(),
                  "describe": fast.describe()}))
"""


def compare(model, labels, dtype, texts, **env) -> dict:
    out = run_child(f"import sys; sys.argv = [''] + {[str(model), json.dumps(labels), dtype, json.dumps(texts)]!r}\n"
                    + COMPARE, **env)
    return {k: np.array(v) if k != "describe" else v for k, v in out.items()}


@pytest.mark.integration
def test_a_compiled_teacher_gives_the_uncompiled_probabilities(tmp_path):
    """float32 compiled: the same numbers (to float rounding), for every batch shape, a batch of one too."""
    model = build_tiny_deberta(tmp_path / "nli", {0: "entailment", 1: "not_entailment"})
    texts = ["a great movie", "an awful and boring film that goes on", "fine", "i love this film"]
    out = compare(model, ["good", "bad"], "float32", texts, **{cpu_bf16.ENV: "0"})
    np.testing.assert_allclose(out["compiled"], out["eager"], atol=1e-5)
    np.testing.assert_allclose(out["one"][0], out["eager"][0], atol=1e-5)
    assert out["describe"]["compiled"] is True and out["describe"]["dtype"] == "float32"


@pytest.mark.integration
def test_the_real_teacher_compiled_in_bf16_keeps_its_labels():
    """The DeBERTa NLI teacher compiled as `auto` chooses (bf16 where only compiled bf16 is fast here):
    its labels on SST-2 dev sentences are the float32 teacher's, to bf16 rounding."""
    model = require_model("deberta-v3-nli")
    dev = require_shared("data", "sst2", "dev.tsv")
    import pandas as pd

    texts = pd.read_csv(dev, sep="\t")["sentence"].tolist()[:200]
    out = compare(model, ["negative", "positive"], "auto", texts)
    agree = (out["compiled"].argmax(1) == out["eager"].argmax(1)).mean()
    assert agree >= 0.98, agree
    assert np.abs(out["compiled"] - out["eager"]).max() < 0.1
    assert out["describe"]["compiled"] is True
    if cpu_bf16.verdict().compiled:
        assert out["describe"]["dtype"] == "bfloat16"


@pytest.mark.parametrize("verdict,bf16_products", [("1,compiled", True), ("0,crash,compiled", False)])
def test_compiled_bf16_attention_products_stay_bf16_only_where_eager_bf16_is_fast(stated, tmp_path, verdict,
                                                                                   bf16_products):
    """Compiled in bf16, DeBERTa's attention products run in bf16 where eager bf16 is fast (oneDNN's bf16
    kernels: AVX512-BF16), in float32 where they crash or are slow (fast_deberta.float32_products)."""
    from distill.config import TeacherConfig
    from distill.teachers import build_teacher

    stated(verdict)
    model = build_tiny_deberta(tmp_path / "nli", {0: "entailment", 1: "not_entailment"})
    teacher = build_teacher(TeacherConfig(name="t", model=str(model), device="cpu", dtype="bfloat16",
                                          compile="true"), ["good", "bad"])  # torch.compile is lazy: no compile here
    flags = [m.distill_bf16_products for m in teacher.model.modules() if hasattr(m, "distill_bf16_products")]
    assert flags == [bf16_products] * 2  # both layers
    assert not any(m.distill_bf16_products for m in teacher._exact.modules() if hasattr(m, "distill_bf16_products"))


def test_a_failed_compile_is_one_clear_error(stated):
    stated("0")
    model = compiled.CompiledModel(torch.nn.Linear(4, 2))

    def fail(**inputs):
        from torch._dynamo.exc import TorchDynamoException  # what inductor's compile errors derive from

        raise TorchDynamoException("no C++ compiler found")

    model.compiled = fail
    with pytest.raises(DistillError, match=r"torch.compile could not compile the teacher .*teacher.compile=false"):
        model(input=torch.ones(2, 4))
