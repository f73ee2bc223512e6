#!/usr/bin/env python
"""Set up the workshop on a hosted notebook runtime (Google Colab, Kaggle) around the platform's own CUDA torch.

The setup cell of hosted/workshop_colab_kaggle.ipynb (scripts/participant/hosted_cell.py) runs this with the kernel's Python
on Colab / Kaggle only. It installs the
pinned stack of requirements.txt (the single source of truth) without the lines tied to the platform's CUDA
torch (torch, torchvision, torchaudio, triton, nvidia-*) or to its running notebook server and kernel
(jupyterlab, ipykernel, ipywidgets; and the test tools nbmake, pytest), with the installed torch family pinned as pip
constraints so that no dependency can pull in another torch, then installs this repository with
``pip install --no-deps -e`` so that ``import utils`` works. Standard library only: it runs before anything
is installed. On your own machine or GPU VM use ``make setup`` instead; this script refuses to run where no
torch is installed at all.

The platform's kernel is already running when this script runs, and it has imported packages (Colab imports pandas,
and with it numpy and pyarrow, before the first cell). Replacing the files of an imported package leaves two versions
in one kernel: pandas 2.2 in memory over pandas 3 on disk fails on the first DataFrame display. So:

- the large compiled data stack (DATA_STACK) keeps the platform's version: its requirements.txt pin is dropped where
  the platform has the package, and pip's default upgrade strategy (only-if-needed) replaces it only where a pinned
  package does not accept the platform's version (datasets 5.2 needs pyarrow >= 24; Colab has 18.1);
- the setup cell passes ``--imported`` (the distributions the kernel has imported); every one of them that pip
  changed is reported, and the exit code 3 tells the cell to restart the runtime. Run again after the restart, the
  cell finds everything installed, nothing changes, and it goes on.

    python scripts/participant/hosted_setup.py            # install
    python scripts/participant/hosted_setup.py --dry-run  # print the pip commands only

Exit codes: 0 done, 1 pip failed or torch changed, 2 refused (no torch installed, or one older than MIN_TORCH),
3 done, but a package the running kernel had imported was replaced: restart the runtime (RESTART).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements.txt"
# Generated files (build/ is git-ignored): the filtered requirements and the constraints that pin the platform's torch.
OUT_DIR = ROOT / "build" / "hosted"

# Distributions built against one CUDA torch: the platform ships them matched, pip must not replace them.
TORCH_FAMILY = frozenset({"torch", "torchvision", "torchaudio", "triton"})
TORCH_FAMILY_PREFIXES = ("nvidia-",)
# What the hosted runtime's own notebook server and kernel are made of, and tools only the test suite uses:
# upgrading ipykernel/jupyter under the running Colab/Kaggle kernel can break the frontend that talks to it,
# and the notebooks need none of these versions (tqdm's bars and the figures use whatever the platform has).
HOSTED_SKIP = frozenset({"jupyterlab", "ipykernel", "ipywidgets", "notebook", "nbmake", "pytest"})
# peft's is_torchao_available() raises ImportError (inside get_peft_model, for any LoRA) when torchao is
# installed but older than this (peft/import_utils.py, TORCHAO_MINIMUM_VERSION). Colab preinstalls
# torchao 0.10.0. The workshop never uses torchao, so an older one is uninstalled rather than upgraded
# (a newer torchao is built for a newer torch than the platform's).
PEFT_TORCHAO_MINIMUM = (0, 16, 0)
# The oldest torch the pinned stack accepts: transformers 5.23 disables an older torch with only a warning
# ("Disabling PyTorch because PyTorch >= 2.6 is required"), and the failure then comes later and looks unrelated.
# tests/test_hosted_setup.py checks this against the pinned packages' own torch requirements.
MIN_TORCH = (2, 6)
# The large compiled libraries a hosted runtime ships and often has imported before the first cell (pandas, and with
# it numpy and pyarrow, on Colab). The platform's version is kept wherever the pinned packages accept it; the
# notebooks work with Colab's (tests/test_hosted_replica.py).
DATA_STACK = frozenset({"numpy", "pandas", "pyarrow", "matplotlib", "scipy", "pillow"})
RESTART = 3

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name: 'Torch_Audio' -> 'torch-audio'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_torch_family(name: str) -> bool:
    name = canonical(name)
    return name in TORCH_FAMILY or name.startswith(TORCH_FAMILY_PREFIXES)


def strip_comment(line: str) -> str:
    """A requirements.txt line without its comment and surrounding blanks."""
    return re.sub(r"(^|\s)#.*", "", line).strip()


def requirement_name(line: str) -> str | None:
    """The distribution name a requirements.txt line asks for; None for blanks, comments and pip options."""
    line = strip_comment(line)
    if not line or line.startswith("-"):
        return None
    match = _NAME.match(line)
    return match.group(0) if match else None


def split_requirements(lines: list[str]) -> tuple[list[str], list[str]]:
    """(kept, dropped) requirement lines, without comments: dropped are the torch-family ones and the
    platform's notebook stack / test tools (HOSTED_SKIP)."""
    kept, dropped = [], []
    for raw in lines:
        line = strip_comment(raw)
        if not line:
            continue
        name = requirement_name(line)
        skip = name and (is_torch_family(name) or canonical(name) in HOSTED_SKIP)
        (dropped if skip else kept).append(line)
    return kept, dropped


def keep_platform_versions(lines: list[str], installed: dict[str, str | None]) -> tuple[list[str], dict[str, str]]:
    """(lines, kept): the DATA_STACK lines whose package the platform already has are dropped, so that pip keeps the
    platform's version unless a pinned package needs another; kept = {name: platform version}. A DATA_STACK package the
    platform lacks keeps its pin (installed at the version the workshop was checked with)."""
    out, kept = [], {}
    for line in lines:
        name = requirement_name(line)
        if name and canonical(name) in DATA_STACK and installed.get(canonical(name)):
            kept[canonical(name)] = installed[canonical(name)]
        else:
            out.append(line)
    return out, kept


def versions(names) -> dict[str, str | None]:
    """{canonical name: installed version or None}."""
    return {canonical(name): installed_version(name) for name in names}


def version_changes(before: dict[str, str | None], after: dict[str, str | None]) -> list[str]:
    """'name old → new' for each name whose version differs."""
    return [f"{name} {before[name] or 'なし'} → {after.get(name) or 'なし'}" for name in sorted(before)
            if before[name] != after.get(name)]


def installed_torch_family() -> dict[str, str]:
    """{name: version} of every torch-family distribution in this Python's environment (first on sys.path wins)."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and is_torch_family(name) and canonical(name) not in found:
            found[canonical(name)] = dist.version
    return dict(sorted(found.items()))


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def release_tuple(version: str) -> tuple[int, ...]:
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args]


def show(cmd: list[str]) -> str:
    return "$ " + shlex.join(cmd)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="print the pip commands without running them")
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR, help=f"where the generated files go (default: {OUT_DIR})")
    ap.add_argument("--imported", default="", help="comma-separated distributions the running kernel has imported "
                    "(the setup cell passes them): exit code 3 if one of them is replaced")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # the notebook cell reads this through a pipe, line by line

    torch_version = installed_version("torch")
    if torch_version is None:
        print("torch がインストールされていません。このスクリプトは、torch が最初から入っている Colab / Kaggle の\n"
              "GPU ランタイム専用です (プラットフォームの torch をそのまま使うため)。\n"
              "自分の PC や GPU VM では、リポジトリのフォルダで `make setup` を実行してください "
              "(固定版の torch を含めて .venv に入れます)。", file=sys.stderr)
        return 2

    if release_tuple(torch_version)[:2] < MIN_TORCH:
        minimum = ".".join(map(str, MIN_TORCH))
        print(f"このランタイムの torch は {torch_version} ですが、このワークショップの固定版 (transformers など) には torch {minimum} "
              f"以上が必要です (古いままだと transformers が torch を使わずに動き、後で関係のなさそうなエラーになります)。\n"
              f"新しいランタイムを選ぶか (Colab:「ランタイム → ランタイムのバージョン」で最新を選ぶ、Kaggle: Settings → Environment を "
              f"Latest に)、講師に知らせてください。torch は入れ替えていません。", file=sys.stderr)
        return 2

    kept, dropped = split_requirements(REQUIREMENTS.read_text(encoding="utf-8").splitlines())
    pinned = {canonical(requirement_name(line)): line for line in kept if requirement_name(line)}
    imported = sorted({canonical(name) for name in args.imported.split(",") if name.strip()})
    watched = versions(set(imported) | DATA_STACK)  # before pip: what the kernel may hold in memory
    kept, platform = keep_platform_versions(kept, {n: watched[n] for n in DATA_STACK})
    pinned_torch = next((line.split("==", 1)[1] for line in dropped if canonical(requirement_name(line)) == "torch"
                         and "==" in line), None)
    family = installed_torch_family()
    same = pinned_torch is not None and pinned_torch == torch_version.split("+")[0]
    print(f"プラットフォームの torch をそのまま使います: torch {torch_version}"
          + (f" (このワークショップの検証版は {pinned_torch})" if pinned_torch and not same else ""))
    torch_lines = [line for line in dropped if is_torch_family(requirement_name(line))]
    print(f"requirements.txt から外した行 (プラットフォームの CUDA torch と組になるもの): {', '.join(torch_lines) or 'なし'}")
    print(f"外した行 (プラットフォームのノートブック環境のものを使う / テスト専用): "
          f"{', '.join(line for line in dropped if line not in torch_lines) or 'なし'}")
    print(f"変えないように固定するパッケージ: {', '.join(f'{n} {v}' for n, v in family.items())}")
    data = {n: v for n, v in watched.items() if n in DATA_STACK and v}
    if data:
        def note(name: str, version: str) -> str:
            check = pinned.get(name, "").split("==", 1)[-1] if name in platform else ""
            return f"{name} {version}" + (f" (検証版 {check})" if check and check != version else "")
        print("データ処理のライブラリはプラットフォームの版を、固定版のパッケージが受け付ける限りそのまま使います: "
              + ", ".join(note(n, v) for n, v in sorted(data.items())))

    args.out_dir.mkdir(parents=True, exist_ok=True)
    requirements = args.out_dir / "requirements.txt"
    constraints = args.out_dir / "constraints.txt"
    header = "# Generated by scripts/participant/hosted_setup.py from requirements.txt: do not edit.\n"
    requirements.write_text(header + "".join(f"{line}\n" for line in kept), encoding="utf-8")
    constraints.write_text(header + "".join(f"{name}=={version}\n" for name, version in family.items()),
                           encoding="utf-8")

    steps = [pip("install", "--progress-bar", "off", "-r", str(requirements), "-c", str(constraints)),
             pip("install", "--progress-bar", "off", "--no-deps", "-e", str(ROOT))]
    torchao = installed_version("torchao")
    if torchao is not None and release_tuple(torchao) < PEFT_TORCHAO_MINIMUM:
        minimum = ".".join(map(str, PEFT_TORCHAO_MINIMUM))
        print(f"torchao {torchao} は peft が受け付ける {minimum} より古く、LoRA を作るときに ImportError になるため"
              "削除します (このワークショップでは torchao を使いません)。")
        steps.append(pip("uninstall", "-y", "torchao"))

    if args.dry_run:
        print("--dry-run: 次のコマンドを実行します (今回は表示だけです)。")
        for cmd in steps:
            print(show(cmd))
        return 0

    print(f"固定版 {len(kept)} 件をインストールしています (数分かかります)…")
    for cmd in steps:
        print(show(cmd))
        code = subprocess.run(cmd).returncode
        if code != 0:
            print(f"pip が失敗しました (終了コード {code})。上の pip のメッセージを確認してください。\n"
                  f"torch の版の食い違い (ResolutionImpossible など) が出ている場合は、固定版のどれかが"
                  f"プラットフォームの torch {torch_version} と合いません。講師に知らせてください。", file=sys.stderr)
            return 1

    after = installed_torch_family()
    if after != family:
        changed = ", ".join(version_changes({n: family.get(n) for n in family.keys() | after.keys()}, after))
        print(f"プラットフォームの torch 系パッケージが変わってしまいました: {changed}\n"
              "ランタイムを初期化して (Colab:「ランタイムを接続解除して削除」) やり直し、講師に知らせてください。",
              file=sys.stderr)
        return 1

    print("インストールしたもの:")
    for line in kept:
        name = requirement_name(line)
        if name:
            print(f"  {name} {installed_version(name)}")
    print(f"  lora-sft-ja-workshop-utils (このリポジトリ、編集可能インストール: {ROOT})")
    print(f"そのまま使うもの: torch {torch_version} (プラットフォームのもの、置き換えていません)")
    now = versions(watched)
    if data:
        print("データ処理のライブラリ: " + ", ".join(
            f"{n} {now[n]}" + (" (プラットフォームのまま)" if now[n] == v else f" (プラットフォームの {v} から更新: 固定版のパッケージが {v} を受け付けないため)")
            for n, v in sorted(data.items())))
    replaced = version_changes({n: watched[n] for n in imported}, now)
    print("pip が「dependency conflicts」の ERROR を表示していても、プラットフォームに入っている他のパッケージとの\n"
          "版の食い違いの知らせです。ここまで表示されていればインストールは終わっています。")
    if replaced:
        print(f"実行中のカーネルが読み込み済みのパッケージを入れ替えました: {', '.join(replaced)}\n"
              "このままでは古い版 (メモリ上) と新しい版 (ディスク上) が混ざるため、ランタイムを再起動する必要があります。")
        return RESTART
    return 0


if __name__ == "__main__":
    sys.exit(main())
