"""The GPU machine's own parts, faked on CPU: an NVIDIA driver that is too old for torch's CUDA (no silent fallback to
the cpu profile), the C toolchain Triton needs before training on CUDA, the GPU architectures a torch build carries,
and the table that ties the torch pin to its CUDA and minimum driver."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest
import torch

from utils.recipe import config as config_module
from utils.machine import gpu_env
from utils.recipe.config import ConfigError, get_config

ROOT = Path(__file__).resolve().parents[1]
PROC_550 = ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
            "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n")


@pytest.fixture
def driver(clean_env, tmp_path):
    """Install a fake NVIDIA kernel-module version file; no nvidia-smi on PATH."""
    def install(text: str | None):
        path = tmp_path / "nvidia-version"
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
        clean_env.setattr(gpu_env, "DRIVER_VERSION_FILE", path)
        clean_env.setattr(gpu_env, "NVIDIA_SMI", str(tmp_path / "no-nvidia-smi"))
        return path
    return install


def cuda_torch(monkeypatch, cuda: str | None = "13.0", version: str = "2.13.0+cu130", available: bool = False):
    """torch as the participant's VM would have it: a CUDA build that cannot reach the GPU."""
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch, "__version__", version)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)


def test_driver_version_is_read_from_the_kernel_module(driver):
    driver(PROC_550)
    assert gpu_env.nvidia_driver_version() == "550.54.15"
    driver("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build\n")
    assert gpu_env.nvidia_driver_version() == "580.65.06"
    driver(None)
    assert gpu_env.nvidia_driver_version() is None


def test_driver_version_from_nvidia_smi_when_no_proc_file(driver, tmp_path, clean_env):
    driver(None)
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 570.133.20\n")
    smi.chmod(0o755)
    clean_env.setattr(gpu_env, "NVIDIA_SMI", str(smi))
    assert gpu_env.nvidia_driver_version() == "570.133.20"


def test_auto_refuses_to_fall_back_to_cpu_on_a_too_old_driver(driver, clean_env):
    """550 driver + torch cu130: CUDA unavailable. auto must stop, naming 550, the minimum 580 and the ways out."""
    driver(PROC_550)
    cuda_torch(clean_env)
    clean_env.delenv("WORKSHOP_PROFILE", raising=False)
    with pytest.raises(ConfigError) as err:
        get_config()
    text = str(err.value)
    assert "550.54.15" in text and "580" in text and "CUDA 13.0" in text
    assert "download.pytorch.org/whl/cu126" in text and "torch==2.13.0+cu126" in text  # way out 2, for this driver
    assert "WORKSHOP_PROFILE=cpu" in text  # and how to go on without the GPU on purpose
    with pytest.raises(ConfigError, match="550.54.15"):
        get_config("gpu")  # the gpu profile's error says the same, not "check nvidia-smi"
    assert get_config("cpu").profile == "cpu"  # asked for explicitly: allowed


def test_driver_too_old_even_for_the_older_cuda_build(driver, clean_env):
    driver(PROC_550.replace("550.54.15", "470.256.02"))
    cuda_torch(clean_env)
    text = gpu_env.cuda_unusable_message("470.256.02", "2.13.0+cu130", "13.0")
    assert "470.256.02" in text and "580" in text
    assert "cu126" not in text and "previous-versions" in text  # no build named that would not work either


def test_cpu_torch_on_a_gpu_vm_says_to_reinstall(driver, clean_env):
    driver("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.82.07  Release\n")
    cuda_torch(clean_env, cuda=None, version="2.13.0+cpu")
    with pytest.raises(ConfigError, match="CPU 版"):
        get_config()


def test_no_driver_means_cpu_as_before(driver, clean_env):
    driver(None)
    cuda_torch(clean_env)
    assert get_config().profile == "cpu"
    with pytest.raises(ConfigError, match="NVIDIA ドライバも見つかりません"):
        get_config("gpu")


def test_a_working_gpu_is_still_gpu(driver, clean_env):
    driver("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.82.07  Release\n")
    clean_env.setattr(config_module, "_cuda_available", lambda: True)
    assert get_config(base_model=str(config_module.TINY_MODEL_DIR)).profile == "gpu"


@pytest.mark.parametrize("driver_version, cuda, too_old", [
    ("550.54.15", "13.0", True), ("575.64", "13.0", True), ("580.65.06", "13.0", False), ("590.1", "13.1", False),
    ("525.60.13", "12.6", False), ("520.61.05", "12.6", True), ("535.183.01", "12.8", False),
])
def test_minimum_driver_by_cuda_major(driver_version, cuda, too_old):
    assert gpu_env.driver_too_old(driver_version, cuda) is too_old


def test_torch_pin_is_in_the_cuda_table():
    """A torch bump in requirements.txt must review which CUDA its PyPI wheel uses and which driver that needs."""
    pin = re.search(r"^torch==(\S+)", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert pin in gpu_env.TORCH_BUILDS, f"torch {pin}: add it to utils/gpu_env.TORCH_BUILDS (its CUDA and driver)"
    build = gpu_env.TORCH_BUILDS[pin]
    for cuda in (build["pypi_cuda"], build["older_cuda"]):
        assert gpu_env.min_driver_for(cuda), f"CUDA {cuda}: no minimum driver in CUDA_MIN_DRIVER"


def test_this_pythons_torch_is_the_pin():
    """make setup installs the pinned torch (CPU build here), so the table above describes what participants get;
    a Python with another torch (a hosted runtime, a GPU image) skips with both versions."""
    pin = re.search(r"^torch==(\S+)", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    if torch.__version__.split("+")[0] != pin:
        pytest.skip(f"this Python has torch {torch.__version__}, not the pinned {pin} (not a make setup venv)")
    assert torch.__version__.split("+")[0] == pin


# --- Triton's C toolchain -------------------------------------------------------------------------------------
@pytest.fixture
def toolchain(clean_env, tmp_path):
    header_dir = tmp_path / "include"
    header_dir.mkdir()
    (header_dir / "Python.h").write_text("/* stand-in */\n")
    clean_env.delenv("CC", raising=False)
    clean_env.setattr(gpu_env, "python_header", lambda: header_dir / "Python.h")  # where this Python's headers would be
    return types.SimpleNamespace(env=clean_env, header=header_dir / "Python.h")


def test_python_header_is_where_triton_looks():
    """triton/runtime/build.py: sysconfig's default scheme (posix_local -> posix_prefix), its "include" path."""
    header = gpu_env.python_header()
    assert header.name == "Python.h"
    if not header.is_file():
        pytest.skip(f"no {header} on this machine (apt install python3.11-dev adds it)")


def test_build_tools_present(toolchain):
    if gpu_env.c_compiler() is None:
        pytest.skip("no C compiler on this machine (apt install build-essential adds gcc)")
    assert gpu_env.build_tools_problem() is None


def test_no_compiler_names_the_apt_packages(toolchain):
    toolchain.env.setattr(gpu_env.shutil, "which", lambda name: None)
    problem = gpu_env.build_tools_problem()
    assert "C コンパイラ" in problem and "build-essential" in problem and "python3.11-dev" in problem


def test_no_python_header_names_the_apt_packages(toolchain):
    toolchain.header.unlink()
    problem = gpu_env.build_tools_problem()
    assert "Python.h" in problem and "python3.11-dev" in problem and "C コンパイラ (gcc)" not in problem


def test_cc_variable_is_honoured(toolchain, tmp_path):
    toolchain.env.setenv("CC", str(tmp_path / "missing-cc"))
    assert gpu_env.c_compiler() is None
    toolchain.env.setenv("CC", "gcc")
    assert gpu_env.c_compiler()


def test_trainer_on_cuda_checks_the_toolchain_first(toolchain, tmp_path):
    """On CUDA with Triton, sft_trainer stops before SFTTrainer is built (which would fail at step 0 with gcc's error);
    on CPU the same missing toolchain changes nothing."""
    from trl import SFTTrainer  # noqa: F401 - imported before torch.cuda is faked (bitsandbytes picks its backend on import)

    from utils.recipe import training

    toolchain.header.unlink()
    toolchain.env.setattr("transformers.utils.is_triton_available", lambda: True)
    toolchain.env.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(gpu_env.BuildToolsError, match="python3.11-dev"):
        training.sft_trainer(model=None, args=None, cfg=get_config("cpu"))

    toolchain.env.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(Exception) as err:  # now it goes on to TRL, which refuses model=None in its own words
        training.sft_trainer(model=None, args=None, cfg=get_config("cpu"))
    assert not isinstance(err.value, gpu_env.BuildToolsError)


# --- GPU architectures in the torch build -------------------------------------------------------------------------
CU130_ARCHS = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]  # PyTorch's CUDA 13.0 build list


@pytest.mark.parametrize("capability, supported", [
    ((7, 0), False),  # V100: CUDA 13 dropped Volta
    ((7, 5), True),   # T4
    ((8, 0), True), ((8, 6), True), ((8, 9), True),  # A100, A10/RTX 30xx, L4 (sm_86 binary on 8.9)
    ((9, 0), True),   # H100 / H200
    ((6, 1), False),
])
def test_gpu_architecture_support(capability, supported):
    assert gpu_env.torch_supports_gpu(capability, CU130_ARCHS) is supported
