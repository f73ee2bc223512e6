#!/usr/bin/env python
"""Generate hosted/workshop_colab_kaggle.ipynb: notebooks 01-05 as one notebook, for Colab and Kaggle.

Colab and Kaggle give each notebook its own runtime: the clone, the installs and the files one notebook writes
(02's splits, 03's predictions, 04's adapter) are gone when the participant opens the next notebook. One notebook
means one runtime: one setup cell (scripts/participant/hosted_cell.py: clone, install around the platform's torch, outputs on
Google Drive / /kaggle/working so that they survive a disconnect), then the cells of 01-05 exactly as they are,
in order. It is generated, never edited: tests/test_hosted_notebook.py fails when it is not what this script
writes from the five notebooks, and executes it in one kernel.

    python scripts/maintainer/build_hosted_notebook.py          # write it
    python scripts/maintainer/build_hosted_notebook.py --check  # exit 1 if the committed file is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[1-5]_*.ipynb"))
CELL_SOURCE = ROOT / "scripts" / "participant" / "hosted_cell.py"
OUT = ROOT / "hosted" / "workshop_colab_kaggle.ipynb"
# the line in each notebook's 前提 that sends hosted participants here (pointless inside this notebook)
HOSTED_POINTER = "- **Colab / Kaggle では**"
NEXT = re.compile(r"\*\*次へ:\*\* `(0\d)_[a-z_]+\.ipynb`")

INTRO = """# LoRA SFT ハンズオン: Google Colab / Kaggle 用 (01〜05 を 1 つに)
このノートブックは `notebooks/01〜05` をそのままの順に 1 つにまとめたものです (`scripts/maintainer/build_hosted_notebook.py` が生成します。
直接編集しないでください)。Colab や Kaggle ではノートブックごとに別のランタイムになり、前のノートブックが書いたファイル
(02 の分割、03 の予測、04 のアダプタ) が次のノートブックから見えないため、1 つのランタイムで通して実行します。

**始める前に**
1. GPU のランタイムを選びます (Colab:「ランタイム → ランタイムのタイプを変更 → T4 GPU」、Kaggle: Settings → Accelerator → GPU T4)。
   Kaggle では Settings の **Internet をオン**にし、**Persistence を Files** にしておくと、セッションが切れても出力が残ります。
2. 下の「セットアップ」セルを 1 回実行します (数分)。リポジトリを取得し、固定版のライブラリを入れ (torch はプラットフォームのものを
   そのまま使います)、出力の保存先を Colab では Google ドライブ (`MyDrive/lora-sft-ja-workshop/outputs`)、Kaggle では
   `/kaggle/working/outputs` にします (Colab ではドライブへのアクセスの許可を求められます)。
   動いているカーネルが読み込み済みのライブラリを入れ替える必要があったとき (Colab では pandas と一緒に読み込まれている pyarrow)、
   セルは「ランタイムを再起動します」と表示してランタイムを自分で再起動します。**再起動したら、同じセルをもう一度実行**してください
   (インストール済みなので短時間で終わり、そのまま続けられます)。
3. Hub へのログインは、プラットフォームのシークレット機能で `HF_TOKEN` を渡してください (ノートブックにトークンを書かない)。
4. 続けて「01. ベースモデルの選定」から順に実行します。各パートの最初にある「次へ」は、このノートブックの下の続きのことです。

ランタイムが切れたら: セットアップのセルを実行し直してから、続きのパートの最初のセルから再開できます
(各パートは前のパートの出力をファイルから読むので、それより前を実行し直す必要はありません)。

**検証の範囲**: Colab が公開しているパッケージの版 (`hosted/platforms/colab.txt`、2026-08-19 の版: pandas 2.2.3、numpy 2.1.3、
matplotlib 3.10.0 など) をそろえ、最初のセルの前に pandas を読み込んだカーネルで、このノートブックを上から順に実行し (1 回目のセットアップで
再起動、2 回目から最後まで)、エラーの出力が 1 つもないことを CI (cpu プロファイル、件数を減らして) で毎回確かめています。
Colab / Kaggle の実機の GPU ではまだ実行していません。
"""

SETUP_INTRO = """## セットアップ (Colab / Kaggle で最初に 1 回)
自分の PC や GPU VM (`make lab`) と CI では、このセルは「セットアップは不要です」と表示するだけで何もしません。
講師へ: 配布する前に、セルの `REPO_URL` をワークショップのリポジトリの公開 URL に書き換えてください。"""


def lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def markdown(cell_id: str, text: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": lines(text.rstrip("\n"))}


def adapt(cell: dict) -> dict:
    """A notebook's cell as it appears here: outputs cleared; in markdown the pointer to this notebook is dropped and
    '次へ: 0N_….ipynb' points below."""
    cell = json.loads(json.dumps(cell))
    if cell["cell_type"] == "code":
        cell["outputs"], cell["execution_count"] = [], None
        return cell
    text = "".join(cell["source"])
    text = "".join(line for line in lines(text) if not line.startswith(HOSTED_POINTER))
    text = NEXT.sub(lambda m: f"**次へ:** このノートブックの下に続く「{m.group(1)}」", text)
    cell["source"] = lines(text)
    return cell


def build() -> dict:
    first = json.loads(NOTEBOOKS[0].read_text(encoding="utf-8"))
    cells = [markdown("hosted-intro", INTRO), markdown("hosted-setup-intro", SETUP_INTRO),
             {"cell_type": "code", "execution_count": None, "id": "hosted-setup", "metadata": {}, "outputs": [],
              "source": lines(CELL_SOURCE.read_text(encoding="utf-8").rstrip("\n"))}]
    for path in NOTEBOOKS:
        cells += [adapt(cell) for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    ids = [cell["id"] for cell in cells]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise SystemExit(f"cell ids are not unique across 01-05: {duplicates}")
    metadata = dict(first["metadata"])
    metadata["accelerator"] = "GPU"  # Colab offers a GPU runtime for it
    return {"cells": cells, "metadata": metadata, "nbformat": first["nbformat"], "nbformat_minor": first["nbformat_minor"]}


def render(notebook: dict) -> str:
    return json.dumps(notebook, ensure_ascii=False, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed notebook is out of date")
    args = ap.parse_args(argv)
    text = render(build())
    if args.check:
        if not OUT.is_file() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run python scripts/maintainer/build_hosted_notebook.py", file=sys.stderr)
            return 1
        print(f"{OUT.relative_to(ROOT)} is up to date")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(json.loads(text)['cells'])} cells from {len(NOTEBOOKS)} notebooks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
