"""Device and precision choice: automatic, overridable, with clear errors."""
import pytest
import torch

from distill import device
from distill.errors import DistillError


def test_auto_device_is_usable():
    assert device.resolve_device("auto").type in {"cpu", "cuda", "mps"}


def test_cpu_precision_follows_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)
    assert device.resolve_dtype("auto", cpu) == torch.float32
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)
    assert device.resolve_dtype("auto", cpu) == torch.bfloat16
    assert device.resolve_dtype("float32", cpu) == torch.float32  # an explicit choice wins


def test_bad_names():
    with pytest.raises(DistillError, match="dtype 'fp8'"):
        device.resolve_dtype("fp8", torch.device("cpu"))
    with pytest.raises(DistillError, match="not a torch device"):
        device.resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DistillError, match="no CUDA GPU"):
            device.resolve_device("cuda")
