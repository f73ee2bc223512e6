# Colab / Kaggle only: clone this repository, install requirements.txt around the platform's own CUDA torch
# (scripts/participant/hosted_setup.py), make `utils` importable, and keep the outputs where they survive the runtime.
# Anywhere else (own machine, GPU VM, CI) it does nothing. Hosted-runtime markers, undocumented by the platforms but
# set in their kernels: Colab imports google.colab and sets COLAB_RELEASE_TAG (https://github.com/mlflow/mlflow/pull/21505);
# Kaggle sets KAGGLE_KERNEL_RUN_TYPE and KAGGLE_URL_BASE (https://www.kaggle.com/discussions/general/147433).
# (This cell is generated from scripts/participant/hosted_cell.py by scripts/maintainer/build_hosted_notebook.py.)
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import packages_distributions
from pathlib import Path

# 講師へ: 配布する前に、ワークショップのリポジトリの公開 URL (git clone できるもの) に書き換えてください。
REPO_URL = "https://github.com/<講師が記入>/<リポジトリ名>.git"
# 出力 (分割・予測・アダプタ・結果) をランタイムが消えても残る場所に置く: Colab は Google ドライブ、Kaggle は /kaggle/working
KEEP_OUTPUTS = True

colab = "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ
kaggle = any(name in os.environ for name in ("KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE"))
in_repo = Path("../scripts/participant/hosted_setup.py").is_file()  # run again: already in the repository's notebooks/
repo = Path.cwd().parent if in_repo else Path.cwd() / REPO_URL.rstrip("/").split("/")[-1].removesuffix(".git")
if not (colab or kaggle):
    print("ローカル / CI の環境なのでセットアップは不要です")
elif not repo.exists() and "<" in REPO_URL:
    print("REPO_URL がまだ書き換えられていません。講師から案内されたリポジトリの URL をこのセルの REPO_URL に入れて、"
          "もう一度実行してください。")
else:
    if not repo.exists():
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, str(repo)], check=True)
    os.chdir(repo / "notebooks")  # the notebooks' relative paths (../images) resolve from here
    # What this kernel has imported (Colab loads pandas before the first cell): the script says when it had to replace one
    owners = packages_distributions()  # top-level module -> distributions (one scan of the environment)
    imported = sorted({dist for module in list(sys.modules) if "." not in module for dist in owners.get(module, [])})
    setup = subprocess.Popen([sys.executable, str(repo / "scripts" / "participant" / "hosted_setup.py"), "--imported", ",".join(imported)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in setup.stdout:  # pip's progress, line by line
        print(line, end="")
    code = setup.wait()
    if code == 3:  # hosted_setup.RESTART: the old version is still in this kernel's memory, the new one on disk
        print("ランタイムを再起動します。再起動したら、このセルをもう一度実行してください (インストール済みなので数十秒で終わり、"
              "そのまま続けられます)。", flush=True)
        time.sleep(2)  # let the message reach the page before the kernel goes
        os.kill(os.getpid(), signal.SIGKILL)  # Colab and Kaggle start a new kernel when this one dies
    if code != 0:
        raise RuntimeError("セットアップが失敗しました。上のメッセージを確認してください。")
    sys.path.insert(0, str(repo))  # the editable install is seen by new processes only; this kernel needs the path
    if KEEP_OUTPUTS:
        if colab:
            from google.colab import drive

            drive.mount("/content/drive")  # asks for permission once per runtime
            outputs = Path("/content/drive/MyDrive/lora-sft-ja-workshop/outputs")
        else:
            outputs = Path("/kaggle/working/outputs")  # kept between sessions with Settings → Persistence → Files
        outputs.mkdir(parents=True, exist_ok=True)
        os.environ["WORKSHOP_OUTPUT_DIR"] = str(outputs)  # every get_config() below reads it
        print(f"出力はここに保存します: {outputs}\nランタイムが切れたら、このセルを実行してから、続きのパート (例: 05) の"
              "最初のセルから再開できます (それより前のパートの分割・予測・アダプタはここに残っています)。")
