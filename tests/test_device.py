"""Device and precision choice: automatic, overridable, with clear errors."""
import json
import os

import pytest
import torch

from distill import cpu_bf16, device
from distill.errors import DistillError


def test_auto_device_is_usable():
    assert device.resolve_device("auto").type in {"cpu", "cuda", "mps"}


@pytest.fixture
def fresh_verdict(monkeypatch):
    """A bf16 verdict not yet taken in this process (and none inherited from the environment)."""
    monkeypatch.delenv(cpu_bf16.ENV, raising=False)
    cpu_bf16.verdict.cache_clear()
    yield
    cpu_bf16.verdict.cache_clear()


def test_cpu_precision_follows_the_verdict(monkeypatch, fresh_verdict):
    cpu = torch.device("cpu")
    monkeypatch.setenv(cpu_bf16.ENV, "0")
    assert device.resolve_dtype("auto", cpu) == torch.float32
    cpu_bf16.verdict.cache_clear()
    monkeypatch.setenv(cpu_bf16.ENV, "1")
    assert device.resolve_dtype("auto", cpu) == torch.bfloat16
    assert device.resolve_dtype("float32", cpu) == torch.float32  # an explicit choice wins


def test_no_flags_means_float32_without_a_probe(monkeypatch, fresh_verdict):
    monkeypatch.setattr(cpu_bf16, "cpu_has_bf16_flags", lambda: False)
    monkeypatch.setattr(cpu_bf16, "run_probe", lambda: pytest.fail("probed a CPU without bf16 flags"))
    assert device.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert os.environ[cpu_bf16.ENV] == "0"  # label worker processes inherit the answer


def test_a_crashing_probe_is_survived_and_named():
    # What a VM that advertises AMX but hides its tile-info CPUID leaf does to oneDNN's bf16 kernels.
    verdict = cpu_bf16.run_probe("import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    assert verdict.crashes and not verdict.use
    assert "SIGILL" in verdict.why


@pytest.mark.parametrize("seconds, use", [({"float32": 2.0, "bfloat16": 1.0}, True),
                                          ({"float32": 1.0, "bfloat16": 1.5}, False),
                                          ({"float32": 1.0, "bfloat16": 0.95}, False)])  # under SPEEDUP_NEEDED
def test_bf16_is_chosen_only_when_the_probe_times_it_faster(seconds, use):
    verdict = cpu_bf16.run_probe(f"print({json.dumps(seconds)!r})")
    assert (verdict.use, verdict.crashes) == (use, False)
    assert f"{seconds['float32'] / seconds['bfloat16']:.2f}x" in verdict.why


def test_a_failing_probe_means_float32_with_its_error():
    verdict = cpu_bf16.run_probe("raise SystemExit('no torch here')")
    assert not verdict.use and not verdict.crashes
    assert "no torch here" in verdict.why


def test_explicit_bf16_is_refused_where_its_kernels_crash(monkeypatch, fresh_verdict):
    monkeypatch.setenv(cpu_bf16.ENV, "crash")
    cpu = torch.device("cpu")
    with pytest.raises(DistillError, match="dtype 'bfloat16' cannot run on this CPU: .*crashed"):
        device.resolve_dtype("bfloat16", cpu)
    assert device.resolve_dtype("auto", cpu) == torch.float32


def test_the_real_probe_runs_here(fresh_verdict):
    """On this machine, for real: whatever bf16 does here, the verdict comes back and auto can be used."""
    verdict = cpu_bf16.run_probe()
    assert verdict.why
    if verdict.use:  # then bf16 really runs here: a product in it must not kill this process
        x = torch.ones(8, 8, dtype=torch.bfloat16)
        assert float((x @ x)[0, 0]) == 8.0


def test_bad_names():
    with pytest.raises(DistillError, match="dtype 'fp8'"):
        device.resolve_dtype("fp8", torch.device("cpu"))
    with pytest.raises(DistillError, match="not a torch device"):
        device.resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DistillError, match="no CUDA GPU"):
            device.resolve_device("cuda")
