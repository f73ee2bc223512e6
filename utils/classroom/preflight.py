"""The day-before check: what on this machine would stop the workshop, each with what was found, what is
needed and the exact fix. Read-only: it never installs or changes anything.

    make preflight                      # = .venv/bin/python -m utils.classroom.preflight (works before `make setup` too)
    python -m utils.classroom.preflight --json preflight.json   # the same rows as JSON, for an instructor to collect

Exit code 1 when a row is ✗ (something would stop the workshop), else 0. Notebook 01's first code cell shows the
same table (``run_checks()`` + ``Report._repr_html_``).

Which machine it checks for: ``WORKSHOP_PROFILE`` if set to gpu/cpu; otherwise ``gpu`` when an NVIDIA driver or a
CUDA GPU is present, else ``cpu``. On a machine without a GPU the GPU rows say "このマシンにはありません" (—) and do
not fail: the cpu profile needs none of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from utils.machine import gpu_env, python_version

SYMBOLS = {"ok": "✓", "fail": "✗", "warn": "⚠", "absent": "—"}
GIB = 2**30
# Free disk where the Hub cache lives. gpu: a 7B base in bf16 safetensors is about 14.5 GB (the download), plus
# the adapter, the outputs and pip's cache; cpu: the venv is already installed, outputs are a few MB.
DISK_NEED_GB = {"gpu": 20, "cpu": 1}
# Available RAM (an estimate, not measured on a GPU machine: loading a 7B in 4-bit streams its safetensors shards
# through CPU memory; 04's optional merge needs ~14.5 GB if the GPU has no room).
RAM_NEED_GB = {"gpu": 8, "cpu": 2}
# The gpu profile's settings were sized for a 16 GB T4 (torch reports ~14.7 GiB of it).
GPU_MEMORY_NEED_GIB = 14


@dataclass
class Check:
    name: str
    status: str  # ok / fail / warn / absent
    found: str
    needed: str = ""
    fix: str = ""

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.status]


@dataclass
class Report:
    target: str  # the profile the machine is checked for
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    def text(self) -> str:
        lines = [f"ワークショップの事前確認 (このマシンを {self.target} プロファイル用として確認しています)", ""]
        for c in self.checks:
            lines.append(f"{c.symbol} {c.name}: {c.found}" + (f"  [必要: {c.needed}]" if c.needed else ""))
            if c.fix:
                lines.extend(f"    {line}" for line in c.fix.splitlines())
        failed = [c.name for c in self.checks if c.status == "fail"]
        lines += ["", f"✗ が {len(failed)} 件あります ({', '.join(failed)})。上の直し方を実行してから、もう一度 make preflight "
                      "を実行してください。" if failed else "✗ はありません。ワークショップを始められます。"]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in ("", "項目", "見つかったもの", "必要なもの", "直し方"))
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(v).replace(chr(10), '<br>')}</td>"
                             for v in (c.symbol, c.name, c.found, c.needed, c.fix)) + "</tr>"
            for c in self.checks)
        verdict = ("✗ の行の「直し方」を実行してから、このセルをもう一度実行してください。" if not self.ok
                   else "✗ はありません。")
        return (f"<p>このマシンを <b>{self.target}</b> プロファイル用として確認しました。{verdict}</p>"
                f"<table><tr>{head}</tr>{body}</table>")

    def to_dict(self) -> dict:
        return {"target": self.target, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}


# --- the checks -----------------------------------------------------------------------------------------------
def check_python() -> Check:
    ok, message = python_version.check()
    need = "%d.%d 以上" % python_version.minimum_python()
    return Check("Python", "ok" if ok else "fail", f"{'.'.join(map(str, sys.version_info[:3]))} ({sys.executable})", need,
                 "" if ok else python_version.UBUNTU_FIX)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def check_driver(target: str, driver: str | None, torch) -> Check:
    cuda = getattr(getattr(torch, "version", None), "cuda", None) if torch else None
    need = gpu_env.min_driver_for(cuda)
    needed = f"{need} 以上 (torch の CUDA {cuda} 用)" if need else ("torch の CUDA 版に合う版" if cuda else "")
    if driver is None:
        if target == "gpu":
            return Check("NVIDIA ドライバ", "fail", "見つかりません (/proc/driver/nvidia/version も nvidia-smi もない)",
                         needed, "GPU VM なら NVIDIA ドライバを入れてください (クラウドなら GPU 用のイメージで VM を作る)。"
                         "GPU を使わないなら WORKSHOP_PROFILE=cpu を指定してください。")
        return Check("NVIDIA ドライバ", "absent", "このマシンにはありません (cpu プロファイルには不要)")
    if cuda and gpu_env.driver_too_old(driver, cuda):
        return Check("NVIDIA ドライバ", "fail", driver, needed,
                     gpu_env.cuda_unusable_message(driver, torch.__version__, cuda))
    return Check("NVIDIA ドライバ", "ok", driver, needed)


def check_torch_cuda(target: str, driver: str | None, torch) -> Check:
    if torch is None:
        return Check("torch と CUDA", "fail", "torch が入っていません", "requirements.txt の torch",
                     "リポジトリのフォルダで `make setup` を実行してから、もう一度 make preflight を実行してください。")
    cuda = torch.version.cuda
    build = f"torch {torch.__version__} (" + (f"CUDA {cuda} 用" if cuda else "CPU 版") + ")"
    if torch.cuda.is_available():
        return Check("torch と CUDA", "ok", f"{build}、CUDA の GPU を使えます")
    if driver is not None:
        return Check("torch と CUDA", "fail", f"{build}、CUDA の GPU を使えません", "torch.cuda.is_available() が True",
                     gpu_env.cuda_unusable_message(driver, torch.__version__, cuda))
    if target == "gpu":
        return Check("torch と CUDA", "fail", f"{build}、CUDA の GPU がありません", "CUDA の GPU",
                     "WORKSHOP_PROFILE=gpu が指定されていますが GPU がありません。GPU VM で実行するか、WORKSHOP_PROFILE=cpu に。")
    return Check("torch と CUDA", "ok", f"{build}、GPU なし (cpu プロファイルで動きます)")


def check_gpu(torch) -> Check:
    if torch is None or not torch.cuda.is_available():
        return Check("GPU", "absent", "このマシンにはありません")
    from utils.recipe.config import gpu_has_native_bf16

    props = torch.cuda.get_device_properties(0)
    capability = (props.major, props.minor)
    memory = props.total_memory / GIB
    count = torch.cuda.device_count()
    precision = "bf16" if gpu_has_native_bf16() else "fp16 (bf16 の演算器がないため)"
    found = (f"{props.name}{f' ×{count}' if count > 1 else ''}、{memory:.1f} GiB、compute capability "
             f"{capability[0]}.{capability[1]} → 計算は {precision}")
    arch_list = torch.cuda.get_arch_list()
    if not gpu_env.torch_supports_gpu(capability, arch_list):
        return Check("GPU", "fail", found, f"この torch が対応する GPU ({', '.join(arch_list)})",
                     f"torch {torch.__version__} には compute capability {capability[0]}.{capability[1]} 用のカーネルが"
                     "ありません (CUDA 13 の torch は V100 などの 7.0 以下に非対応)。T4 / L4 / A100 / H100 など 7.5 以上の GPU を"
                     "使ってください。")
    if memory < GPU_MEMORY_NEED_GIB:
        return Check("GPU", "warn", found, f"{GPU_MEMORY_NEED_GIB} GiB 以上 (gpu プロファイルは T4 16 GB 用の設定)",
                     "メモリ不足になったら WORKSHOP_PER_DEVICE_TRAIN_BATCH_SIZE を半分に、"
                     "WORKSHOP_GRADIENT_ACCUMULATION_STEPS を 2 倍にしてください (実効バッチは同じ)。")
    return Check("GPU", "ok", found, f"{GPU_MEMORY_NEED_GIB} GiB 以上、compute capability 7.5 以上")


def check_build_tools(on_cuda: bool) -> Check:
    cc = gpu_env.c_compiler()
    header = gpu_env.python_header()
    found = f"C コンパイラ: {cc or 'なし'}、Python.h: {header if header.is_file() else 'なし'}"
    needed = "C コンパイラと Python のヘッダー (CUDA での学習で Triton が使う)"
    problem = gpu_env.build_tools_problem()
    if problem is None:
        return Check("C コンパイラと Python ヘッダー", "ok", found, needed)
    if not on_cuda:
        return Check("C コンパイラと Python ヘッダー", "absent", found + " (CPU での学習には不要)", needed)
    return Check("C コンパイラと Python ヘッダー", "fail", found, needed, gpu_env.BUILD_TOOLS_FIX)


def check_bitsandbytes(torch) -> Check:
    if torch is None or not torch.cuda.is_available():
        return Check("bitsandbytes (4-bit)", "absent", "GPU がないので確認しません (cpu プロファイルは 4-bit を使いません)")
    try:
        from bitsandbytes import cextension
    except Exception as err:  # noqa: BLE001 - reported in the row
        return Check("bitsandbytes (4-bit)", "fail", f"import できません ({type(err).__name__}: {err})",
                     "CUDA 用のライブラリが読み込めること", "`make setup` をやり直してください (rm -rf .venv && make setup)。")
    lib = cextension.lib
    if isinstance(lib, cextension.CudaBNBNativeLibrary):
        return Check("bitsandbytes (4-bit)", "ok", f"CUDA のライブラリを読み込みました ({cextension.BNB_BACKEND})")
    detail = getattr(lib, "error_msg", "") or type(lib).__name__
    return Check("bitsandbytes (4-bit)", "fail", f"CUDA のライブラリを読み込めません: {detail}",
                 "CUDA 用のライブラリが読み込めること",
                 "bitsandbytes の CUDA 版ライブラリが、この torch の CUDA に合っていません。NVIDIA ドライバと torch の行を先に直してください。")


def hub_cache_dir() -> Path:
    from_env = os.environ.get("HF_HUB_CACHE") or (Path(os.environ["HF_HOME"]) / "hub" if os.environ.get("HF_HOME") else None)
    return Path(from_env) if from_env else Path.home() / ".cache" / "huggingface" / "hub"


def _existing_parent(path: Path) -> Path:
    path = path.expanduser().resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(target: str, where: Path | None = None) -> Check:
    where = where or hub_cache_dir()
    free = shutil.disk_usage(_existing_parent(where)).free / 1e9
    need = DISK_NEED_GB[target]
    found = f"{free:.1f} GB 空き ({where})"
    if free >= need:
        return Check("ディスクの空き", "ok", found, f"{need} GB 以上")
    return Check("ディスクの空き", "fail", found, f"{need} GB 以上" + (" (7B のダウンロードが約 15 GB)" if target == "gpu" else ""),
                 "不要なファイルを消すか、大きいディスクに HF_HOME を向けてください (例: export HF_HOME=/mnt/data/hf)。")


def available_ram_gb(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / 1e9
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_ram(target: str, meminfo: Path = Path("/proc/meminfo")) -> Check:
    free = available_ram_gb(meminfo)
    need = RAM_NEED_GB[target]
    needed = f"{need} GB 以上 (推定)"
    if free is None:
        return Check("メモリ (RAM) の空き", "warn", "測れません (/proc/meminfo がない)", needed)
    found = f"{free:.1f} GB 使用可能"
    if free >= need:
        return Check("メモリ (RAM) の空き", "ok", found, needed)
    return Check("メモリ (RAM) の空き", "fail", found, needed,
                 "他のプログラムやノートブックのカーネルを終了するか、RAM の大きい VM を使ってください。")


def _base_model() -> str:
    from utils.recipe.config import profile_settings

    return os.environ.get("WORKSHOP_BASE_MODEL") or str(profile_settings("gpu")["base_model"])


def check_hub(target: str) -> list[Check]:
    """Reachability, login and access to the gpu profile's base model. The token itself is never shown."""
    from utils.recipe.config import looks_local
    from utils.machine.hub import hub_reachable

    model = _base_model()
    if target != "gpu":
        reachable, note = hub_reachable()
        return [Check("Hugging Face Hub", "absent" if not reachable else "ok",
                      f"{'接続できます' if reachable else '使いません'} ({note})。cpu プロファイルは同梱のデータと小型モデルで動きます")]
    if looks_local(model):
        return [Check("ベースモデル", "ok", f"ローカルのフォルダ {model}")]
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.utils import get_token
    except ImportError:
        return [Check("Hugging Face Hub", "fail", "huggingface_hub が入っていません", "", "`make setup` を実行してください。")]
    cached = isinstance(try_to_load_from_cache(model, "config.json"), str)
    reachable, note = hub_reachable()
    rows = []
    if not reachable:
        status = "ok" if cached else "fail"
        rows.append(Check("Hugging Face Hub", status, f"接続できません ({note})。{model} は "
                          + ("キャッシュにあります (オフラインで使えます)" if cached else "キャッシュにもありません"),
                          "Hub への接続、または事前のダウンロード",
                          "" if cached else "ネットワークにつながる場所で `hf download " + model + "` を実行しておいてください。"))
        return rows
    rows.append(Check("Hugging Face Hub", "ok", f"接続できます ({note})"))
    token = get_token()
    login_fix = "`hf auth login` を実行するか、環境変数 HF_TOKEN を設定してください (トークンをノートブックやコードに書かない)。"
    if token is None:
        rows.append(Check("Hub のログイン", "fail", "ログインしていません", f"{model} はゲート付きなのでログインが必要",
                          login_fix))
        return rows
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        user = api.whoami().get("name", "?")
    except Exception as err:  # noqa: BLE001 - an invalid or expired token
        rows.append(Check("Hub のログイン", "fail", f"トークンが使えません ({type(err).__name__})", "有効なトークン", login_fix))
        return rows
    rows.append(Check("Hub のログイン", "ok", f"{user} としてログインしています (トークンは表示しません)"))
    try:
        api.auth_check(model)
    except Exception as err:  # noqa: BLE001 - gated / not found, explained below
        gated = "Gated" in type(err).__name__
        rows.append(Check("ベースモデルへのアクセス", "fail",
                          f"{model}: " + ("利用規約に同意していません" if gated else f"使えません ({type(err).__name__})"),
                          "モデルページで利用規約に同意したアカウント",
                          f"https://huggingface.co/{model} で利用規約に同意してください。同意できない場合は "
                          "WORKSHOP_BASE_MODEL=tokyotech-llm/Swallow-MS-7b-v0.1 を使います。"))
        return rows
    rows.append(Check("ベースモデルへのアクセス", "ok", f"{model} をダウンロードできます"
                      + (" (キャッシュ済み)" if cached else " (約 15 GB。前日にダウンロードしておくと当日が速い)")))
    return rows


def ssh_server() -> tuple[str, str] | None:
    """(address, ssh port) of this machine as the SSH client reached it (SSH_CONNECTION = client_ip client_port
    server_ip server_port); None when not over SSH. scripts/participant/lab.py prints its tunnel command from this."""
    parts = os.environ.get("SSH_CONNECTION", "").split()
    return (parts[2], parts[3]) if len(parts) == 4 else None


def check_remote_access() -> Check:
    """How the participant will open JupyterLab: over SSH (port forwarding, printed by `make lab`) or locally."""
    ssh = ssh_server()
    if ssh:
        return Check("JupyterLab への接続", "ok",
                     f"SSH で接続しています (サーバー {ssh[0]})。make lab が、ノート PC で実行する SSH のポート転送の"
                     "コマンドと URL を表示します (JupyterLab は localhost だけで待ち受けます)")
    return Check("JupyterLab への接続", "ok", "このマシンのブラウザで開きます (make lab、localhost のみ)")


def target_profile(driver: str | None, torch) -> str:
    requested = os.environ.get("WORKSHOP_PROFILE", "auto").strip().lower()
    if requested in ("gpu", "cpu"):
        return requested
    cuda = torch is not None and torch.cuda.is_available()
    return "gpu" if (driver is not None or cuda) else "cpu"


def run_checks() -> Report:
    torch = _torch()
    driver = gpu_env.nvidia_driver_version()
    target = target_profile(driver, torch)
    on_cuda = torch is not None and torch.cuda.is_available()
    checks = [
        check_python(),
        check_driver(target, driver, torch),
        check_torch_cuda(target, driver, torch),
        check_gpu(torch),
        check_build_tools(on_cuda or target == "gpu"),
        check_bitsandbytes(torch),
        check_disk(target),
        check_ram(target),
        *check_hub(target),
        check_remote_access(),
    ]
    return Report(target, checks)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="ワークショップの事前確認 (何もインストール・変更しません)")
    ap.add_argument("--json", type=Path, help="結果を JSON でも書き出す (講師が集めるため)")
    args = ap.parse_args(argv)
    report = run_checks()
    print(report.text())
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
