"""What the GPU machine itself provides: the NVIDIA driver, torch's CUDA build, and the C toolchain Triton needs.

Three facts no CPU test of the notebooks can see, and each stops a participant on the GPU day:

* A torch wheel is built for one CUDA version, and that CUDA needs a minimum NVIDIA driver. On an older driver
  ``torch.cuda.is_available()`` returns False with only a warning, so the profile ``auto`` would quietly pick
  ``cpu``. ``cuda_unusable_message`` says why and what to do; ``utils.recipe.config`` raises it instead.
* TRL 1.16's SFTTrainer computes its loss with Triton kernels on CUDA (trl/kernels/chunked_logprob.py,
  ``_use_triton``), and Triton compiles a small C module (``#include <Python.h>``) with the system C compiler on
  first use (triton/runtime/build.py). Without a compiler or the Python headers the first evaluation fails with
  a gcc ``CalledProcessError``. ``require_build_tools`` checks that before training on CUDA.
* The torch wheel carries kernels for a list of GPU architectures; a GPU outside it cannot run them.

Standard library at import time; torch is imported only where the check needs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

# Where the loaded kernel module states its version ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15 ...").
DRIVER_VERSION_FILE = Path("/proc/driver/nvidia/version")
NVIDIA_SMI = "nvidia-smi"

# The torch pinned in requirements.txt -> the CUDA of PyPI's default Linux x86_64 wheel (torch/version.py of the
# 2.13.0 wheel: '2.13.0+cu130'; it depends on cuda-toolkit 13.0.x), and a build of the same torch for an older CUDA
# that PyTorch publishes on its own index (RELEASE.md's compatibility matrix: 2.13 is built for CUDA 12.6 and 13.0).
# tests/test_gpu_env.py fails when the pin changes without this table: a torch bump must review the driver it needs.
TORCH_BUILDS = {"2.13.0": {"pypi_cuda": "13.0", "older_cuda": "12.6"}}

# CUDA major -> minimum Linux driver for a program built with any 13.x / 12.x (NVIDIA's CUDA Toolkit release notes,
# "Driver Range for Minor Version Compatibility": 13.x >= 580, 12.x >= 525 (12.0's own driver: 525.60.13)).
# torch's wheels bring their own CUDA runtime, so this is what the driver must be. A hosted runtime's torch may
# be any of these.
CUDA_MIN_DRIVER = {"13": "580", "12": "525.60.13", "11": "450.80.02"}

BUILD_TOOLS_FIX = "sudo apt update && sudo apt install -y build-essential python3.11-dev"


def version_tuple(text: str) -> tuple[int, ...]:
    match = re.match(r"\d+(?:\.\d+)*", text.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def nvidia_driver_version() -> str | None:
    """The NVIDIA driver's version, from the kernel module (or nvidia-smi); None when no driver is installed."""
    try:
        text = DRIVER_VERSION_FILE.read_text(encoding="utf-8", errors="replace")
        match = re.search(r"Kernel Module(?: for \w+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
        if match:
            return match.group(1)
    except OSError:
        pass
    if shutil.which(NVIDIA_SMI):
        try:
            out = subprocess.run([NVIDIA_SMI, "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        match = re.search(r"\d+\.\d+(?:\.\d+)?", out.stdout)
        if out.returncode == 0 and match:
            return match.group(0)
    return None


def min_driver_for(cuda: str | None) -> str | None:
    """The minimum driver for a torch built with this CUDA ('13.0'), or None when unknown / a CPU build."""
    if not cuda:
        return None
    return CUDA_MIN_DRIVER.get(cuda.split(".")[0])


def older_cuda_build(torch_version: str) -> tuple[str, str] | None:
    """(command, minimum driver) for the same torch built for an older CUDA, where PyTorch publishes one."""
    build = TORCH_BUILDS.get(torch_version.split("+")[0])
    if not build:
        return None
    tag = "cu" + build["older_cuda"].replace(".", "")
    # the local label (+cu126) is needed: a plain ==2.13.0 counts the installed 2.13.0+cu130 as satisfied
    command = (f".venv/bin/pip install \"torch=={torch_version.split('+')[0]}+{tag}\" "
               f"--index-url https://download.pytorch.org/whl/{tag}")
    return command, CUDA_MIN_DRIVER[build["older_cuda"].split(".")[0]]


def driver_too_old(driver: str, cuda: str | None) -> bool:
    need = min_driver_for(cuda)
    return bool(need) and version_tuple(driver) < version_tuple(need)


def cuda_unusable_message(driver: str, torch_version: str, torch_cuda: str | None) -> str:
    """Why torch cannot use the GPU that the driver shows, and the ways out (Japanese)."""
    found = f"NVIDIA ドライバ {driver} が入っていますが、torch {torch_version} から CUDA の GPU が使えません"
    keep_cpu = "GPU を使わずに進めるなら WORKSHOP_PROFILE=cpu を明示してください (同梱の小型モデルで動きます)。"
    if not torch_cuda:
        return (f"{found}: この torch は CPU 版です (torch.version.cuda が None)。GPU VM では `make setup` で "
                f"requirements.txt の torch (PyPI の CUDA 版) を入れ直してください (rm -rf .venv && make setup)。{keep_cpu}")
    need = min_driver_for(torch_cuda)
    if need and version_tuple(driver) < version_tuple(need):
        older = older_cuda_build(torch_version)
        if older and version_tuple(driver) >= version_tuple(older[1]):
            way2 = (f"(2) 今のドライバで動く、古い CUDA 向けの同じ torch を入れる: `{older[0]}` (ドライバ {older[1]} 以上で動きます。"
                    "このワークショップが検証したのは PyPI の CUDA 13.0 版です)。")
        else:
            way2 = ("(2) 今のドライバで動く、古い CUDA 向けの torch を入れる: どの版がどのドライバで動くかは "
                    "https://pytorch.org/get-started/previous-versions/ と NVIDIA の CUDA Toolkit リリースノートの表で確かめてください。")
        return (f"{found}: この torch は CUDA {torch_cuda} 用で、ドライバ {need} 以上が必要です (今は {driver})。"
                f"nvidia-smi に GPU が出ていても、この組み合わせでは使えません。\n"
                f"直し方は 2 つです: (1) NVIDIA ドライバを {need} 以上に更新する (クラウドの VM なら、新しいドライバの入った "
                f"GPU 用イメージで作り直すのが簡単です)。{way2}\n{keep_cpu}")
    return (f"{found} (torch は CUDA {torch_cuda} 用、必要なドライバ: {need or '表にない版'})。nvidia-smi でドライバと GPU の"
            f"状態を確かめ、`.venv/bin/python -c \"import torch; torch.cuda.init()\"` のエラーを読んでください "
            f"(ドライバ更新後の再起動忘れ、コンテナに GPU が渡っていない、など)。{keep_cpu}")


def c_compiler() -> str | None:
    """The C compiler Triton would use: $CC, else gcc, else clang (triton/runtime/build.py)."""
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc) or (cc if Path(cc).is_file() else None)
    return shutil.which("gcc") or shutil.which("clang")


def python_header() -> Path:
    """Where Triton looks for Python.h: the interpreter's include directory (a venv uses its base Python's)."""
    scheme = sysconfig.get_default_scheme()
    if scheme == "posix_local":  # Debian's scheme; the headers live under posix_prefix
        scheme = "posix_prefix"
    return Path(sysconfig.get_paths(scheme=scheme)["include"]) / "Python.h"


def build_tools_problem() -> str | None:
    """None when Triton can build its C module here, else the Japanese message with the apt command."""
    missing = []
    if c_compiler() is None:
        missing.append("C コンパイラ (gcc)")
    header = python_header()
    if not header.is_file():
        missing.append(f"Python のヘッダー ({header})")
    if not missing:
        return None
    return (f"{' と '.join(missing)} がありません。CUDA での学習では、TRL の損失計算 (Triton のカーネル) が最初の実行時に "
            f"C のモジュールをコンパイルするため、両方が必要です。次のコマンドで入れてから、もう一度実行してください:\n"
            f"  {BUILD_TOOLS_FIX}\n(Python 3.11 以外なら python3.11-dev をその版の -dev に、gcc 以外のコンパイラを使うなら "
            f"環境変数 CC に設定してください。)")


class BuildToolsError(RuntimeError):
    """CUDA training would fail at its first step: no C compiler or no Python headers for Triton."""


def require_build_tools() -> None:
    """Raise ``BuildToolsError`` before training on CUDA if Triton cannot compile its module (a CPU run is unaffected)."""
    problem = build_tools_problem()
    if problem:
        raise BuildToolsError(problem)


def torch_supports_gpu(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a torch build with these architectures (torch.cuda.get_arch_list()) runs on this GPU: its own
    sm_XY, or PTX (compute_XY) of an older architecture that the driver can compile for it."""
    major, minor = capability
    here = major * 10 + minor
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        if not number.isdigit():
            continue
        value = int(number)
        if kind == "sm" and value == here:
            return True
        if kind == "sm" and value // 10 == major and value <= here:  # same major: binary compatible (sm_80 on sm_86)
            return True
        if kind == "compute" and value <= here:
            return True
    return False
