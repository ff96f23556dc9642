"""Device and precision choice: automatic, overridable, with clear errors."""
import json
import os
import subprocess
import sys

import pytest
import torch

from distill.errors import DistillError
from distill.runtime import cpu_bf16, device


def test_auto_device_is_usable():
    assert device.resolve_device("auto").type in {"cpu", "cuda", "mps"}


@pytest.fixture
def fresh_verdict(monkeypatch):
    """A bf16 verdict not yet taken in this process (and none inherited from the environment)."""
    monkeypatch.delenv(cpu_bf16.ENV, raising=False)
    # Absent, and absent again afterwards even if a crash verdict sets it (setenv records the original).
    monkeypatch.setenv(cpu_bf16.ONEDNN_CAP[0], "")
    monkeypatch.delenv(cpu_bf16.ONEDNN_CAP[0])
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
    monkeypatch.setenv(cpu_bf16.ONEDNN_CAP[0], "ALL")  # the user's own oneDNN setting is left alone
    cpu = torch.device("cpu")
    with pytest.raises(DistillError, match="dtype 'bfloat16' cannot run on this CPU: .*crashed.*teacher.compile"):
        device.resolve_dtype("bfloat16", cpu)
    assert device.resolve_dtype("auto", cpu) == torch.float32
    assert os.environ[cpu_bf16.ONEDNN_CAP[0]] == "ALL"


@pytest.mark.parametrize("stated, use, crashes, compiled", [
    ("1", True, False, False), ("0", False, False, False), ("crash", False, True, False),
    ("0,crash,compiled", False, True, True), ("0,compiled", False, False, True)])
def test_the_verdict_travels_through_the_environment(stated, use, crashes, compiled):
    verdict = cpu_bf16.from_env(stated)
    assert (verdict.use, verdict.crashes, verdict.compiled) == (use, crashes, compiled)
    again = cpu_bf16.from_env(cpu_bf16.to_env(verdict))
    assert (again.use, again.crashes, again.compiled) == (use, crashes, compiled)
    assert cpu_bf16.from_env("yes") is None and cpu_bf16.from_env("") is None


def test_compiled_models_get_bf16_where_only_compiled_bf16_is_fast(monkeypatch, fresh_verdict):
    monkeypatch.setenv(cpu_bf16.ENV, "0,crash,compiled")
    cpu = torch.device("cpu")
    assert device.resolve_dtype("auto", cpu) == torch.float32  # eager: float32
    assert device.resolve_dtype("auto", cpu, compiled=True) == torch.bfloat16
    assert device.resolve_dtype("bfloat16", cpu, compiled=True) == torch.bfloat16  # no longer refused


def test_slow_or_crashing_eager_bf16_sends_the_probe_to_the_compiled_product(monkeypatch):
    calls = []

    def fake_probe(code=cpu_bf16.PROBE, timeout=300, env=None):
        calls.append((code, env))
        if code == cpu_bf16.PROBE:
            return cpu_bf16.Verdict(False, True, "died with SIGILL")
        return cpu_bf16.Verdict(True, False, "run at 2.50x")

    monkeypatch.setattr(cpu_bf16, "run_probe", fake_probe)
    verdict = cpu_bf16.probe()
    assert (verdict.use, verdict.crashes, verdict.compiled) == (False, True, True)
    assert "SIGILL" in verdict.why and "compiled by torch.compile, run at 2.50x" in verdict.why
    # the compiled product is timed with oneDNN capped below AMX, as compiled teachers run where it crashes
    assert calls[1] == (cpu_bf16.COMPILED_PROBE, dict([cpu_bf16.ONEDNN_CAP]))


def test_fast_eager_bf16_needs_no_compiled_probe(monkeypatch):
    monkeypatch.setattr(cpu_bf16, "run_probe", lambda code=cpu_bf16.PROBE, timeout=300, env=None: (
        cpu_bf16.Verdict(True, False, "2x") if code == cpu_bf16.PROBE else pytest.fail("probed compiled")))
    assert cpu_bf16.probe() == cpu_bf16.Verdict(True, False, "2x")


def test_a_crash_verdict_caps_onednn_for_this_process_and_its_children():
    """For real, in a fresh Python: with the cap, an eager bf16 product cannot reach the AMX kernels
    that crash on CPUs like this one's (on other CPUs it simply runs)."""
    code = ("import os, torch; from distill.runtime import cpu_bf16; cpu_bf16.verdict(); "
            "print(os.environ['ONEDNN_MAX_CPU_ISA']); x = torch.ones(64, 64, dtype=torch.bfloat16); print(float((x @ x)[0, 0]))")
    env = {k: v for k, v in os.environ.items() if k != cpu_bf16.ONEDNN_CAP[0]}
    done = subprocess.run([sys.executable, "-c", code], env={**env, cpu_bf16.ENV: "0,crash,compiled"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [cpu_bf16.ONEDNN_CAP[1], "64.0"]


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


def test_teacher_batches_follow_the_device_unless_set():
    from distill.runtime.device import teacher_batch

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert teacher_batch(None, None, cpu) == (64, 1024)  # cache-sized; a long pair among short ones pads a batch to itself
    assert teacher_batch(None, 8192, cpu) == (64, 8192)
    assert teacher_batch(None, None, gpu) == (512, 32768)  # a GPU idles on small batches
    assert teacher_batch(None, 4096, gpu) == (512, 4096)
    assert teacher_batch(32, None, gpu) == (32, None)  # an explicit batch size is the user's, uncapped
    with pytest.raises(DistillError, match="teacher.batch_size must be >= 1"):
        teacher_batch(0, None, cpu)
