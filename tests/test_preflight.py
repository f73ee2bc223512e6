"""The preflight (`make preflight`, notebook 01's first cell): on this CPU machine it passes with the GPU rows "not
present"; with what a participant's machine lacks faked (an old driver, low disk, low RAM, no compiler, an
unsupported GPU, Python 3.10) the row is ✗ with the figures and the fix, and the exit code is non-zero."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from utils.machine import gpu_env
from utils.classroom import preflight

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def machine(clean_env, tmp_path):
    """This machine, with no NVIDIA driver (whatever the host has) and no SSH session."""
    clean_env.setattr(gpu_env, "DRIVER_VERSION_FILE", tmp_path / "no-driver")
    clean_env.setattr(gpu_env, "NVIDIA_SMI", str(tmp_path / "no-nvidia-smi"))
    clean_env.delenv("SSH_CONNECTION", raising=False)
    clean_env.delenv("WORKSHOP_PROFILE", raising=False)
    clean_env.setenv("HF_HUB_OFFLINE", "1")
    return clean_env


def rows(report) -> dict:
    return {c.name: c for c in report.checks}


def test_cpu_machine_passes_with_gpu_rows_not_present(machine):
    report = preflight.run_checks()
    assert report.target == "cpu" and report.ok, report.text()
    by_name = rows(report)
    for name in ("NVIDIA ドライバ", "GPU", "bitsandbytes (4-bit)"):
        assert by_name[name].status == "absent" and by_name[name].symbol == "—"
    assert by_name["Python"].status == "ok"
    assert "✗ はありません" in report.text()


def test_make_preflight_runs_here_and_exits_zero(tmp_path):
    """The README's command, on this CPU machine (CI runs it too): exit 0, the table printed, JSON written."""
    out = tmp_path / "preflight.json"
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("WORKSHOP_PROFILE", "SSH_CONNECTION")}
    result = subprocess.run(["make", "-s", "preflight"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ワークショップの事前確認" in result.stdout and "— GPU" in result.stdout
    result = subprocess.run([sys.executable, "-m", "utils.classroom.preflight", "--json", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["ok"] is True and {c["name"] for c in data["checks"]} >= {"Python", "GPU", "ディスクの空き"}


def test_old_driver_is_a_failure_with_the_minimum_and_the_fix(machine, tmp_path):
    (tmp_path / "no-driver").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar 5\n")
    machine.setattr(torch.version, "cuda", "13.0")
    machine.setattr(torch, "__version__", "2.13.0+cu130")
    report = preflight.run_checks()
    assert report.target == "gpu" and not report.ok
    by_name = rows(report)
    driver = by_name["NVIDIA ドライバ"]
    assert driver.status == "fail" and driver.found == "550.54.15" and "580" in driver.needed
    assert "cu126" in driver.fix
    assert by_name["torch と CUDA"].status == "fail"
    assert preflight.main([]) == 1  # what the instructor collects


def test_low_disk_is_reported_with_the_figures(machine, tmp_path):
    usage = namedtuple("usage", "total used free")
    machine.setattr(preflight.shutil, "disk_usage", lambda path: usage(100e9, 95e9, 5e9))
    check = preflight.check_disk("gpu", tmp_path)
    assert check.status == "fail" and "5.0 GB" in check.found and "20 GB" in check.needed and "HF_HOME" in check.fix
    assert preflight.check_disk("cpu", tmp_path).status == "ok"  # 5 GB is plenty without the 7B download


def test_low_ram_is_reported_with_the_figures(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:    1000000 kB\n")
    check = preflight.check_ram("gpu", meminfo)
    assert check.status == "fail" and "1.0 GB" in check.found and "8 GB" in check.needed
    assert preflight.check_ram("cpu", tmp_path / "missing").status == "warn"


def test_missing_compiler_fails_only_where_cuda_training_needs_it(machine):
    machine.setattr(gpu_env.shutil, "which", lambda name: None)
    machine.delenv("CC", raising=False)
    on_gpu = preflight.check_build_tools(on_cuda=True)
    assert on_gpu.status == "fail" and "build-essential" in on_gpu.fix and "python3.11-dev" in on_gpu.fix
    assert preflight.check_build_tools(on_cuda=False).status == "absent"


def fake_cuda(monkeypatch, capability=(7, 5), name="Tesla T4", total_gb=15.8, arch=("sm_75", "sm_80", "sm_90")):
    props = types.SimpleNamespace(major=capability[0], minor=capability[1], name=name, total_memory=int(total_gb * 1e9))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(arch))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: capability >= (8, 0))


def test_gpu_row_names_the_gpu_and_the_precision(machine):
    fake_cuda(machine)
    t4 = preflight.check_gpu(torch)
    assert t4.status == "ok" and "Tesla T4" in t4.found and "7.5" in t4.found and "fp16" in t4.found
    fake_cuda(machine, (9, 0), "NVIDIA H200", 150.0)
    assert "bf16" in preflight.check_gpu(torch).found


def test_v100_is_refused_by_a_cuda13_torch(machine):
    fake_cuda(machine, (7, 0), "Tesla V100-SXM2-16GB", 16.9)
    check = preflight.check_gpu(torch)
    assert check.status == "fail" and "7.0" in check.fix and "T4" in check.fix


def test_python_310_is_a_failure(machine):
    machine.setattr(sys, "version_info", (3, 10, 12, "final", 0))
    check = preflight.check_python()
    assert check.status == "fail" and "3.10.12" in check.found and "deadsnakes" in check.fix


def test_hub_rows_offline_for_the_gpu_profile(machine, tmp_path):
    """Offline, the gated 7B must already be in the Hub cache; the token is never printed."""
    machine.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    (row,) = preflight.check_hub("gpu")
    assert row.status == "fail" and "キャッシュにもありません" in row.found and "hf download" in row.fix


def test_ssh_session_says_make_lab_prints_the_tunnel(machine):
    machine.setenv("SSH_CONNECTION", "203.0.113.5 50000 198.51.100.7 22")
    check = preflight.check_remote_access()
    assert "198.51.100.7" in check.found and "ポート転送" in check.found
