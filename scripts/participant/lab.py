#!/usr/bin/env python
"""Start JupyterLab for the workshop (`make lab`), bound to localhost only, and say how to open it.

On a remote GPU VM reached over SSH, the usual improvisation `jupyter lab --ip=0.0.0.0` puts a token-only server on
the VM's public address. This keeps the server on 127.0.0.1 and prints the SSH port-forwarding command to run on the
laptop, the URL with its token, and what to do when a port is taken. The token is generated here (``secrets``) so
that it can be printed before the server starts; it is shown only in this terminal.

    python scripts/participant/lab.py              # what `make lab` runs
    python scripts/participant/lab.py --dry-run    # print the instructions and the jupyter command, start nothing
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import shlex
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from utils.classroom.preflight import ssh_server  # noqa: E402 - the one reading of SSH_CONNECTION (the preflight's row uses it too)

HOST = "127.0.0.1"  # never 0.0.0.0: reach it through SSH port forwarding instead
FIRST_PORT = 8888


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(start: int = FIRST_PORT, tries: int = 50) -> int:
    for port in range(start, start + tries):
        if port_is_free(port):
            return port
    raise SystemExit(f"ポート {start}〜{start + tries - 1} がすべて使われています。使っていない Jupyter を止めてください "
                     "(`.venv/bin/jupyter server list` で一覧、`.venv/bin/jupyter server stop <ポート>` で停止)。")


def instructions(port: int, token: str, requested: int, server: tuple[str, str] | None, user: str) -> str:
    url = f"http://localhost:{port}/lab?token={token}"
    lines = []
    if port != requested:
        lines.append(f"ポート {requested} は使用中なので {port} を使います。")
    if server:
        lines += [
            "この VM には SSH で接続しています。JupyterLab はこの VM の localhost だけで待ち受けるので、",
            "ノート PC (手元のマシン) の新しいターミナルで次のコマンドを実行してポートを転送してください:",
            "",
            f"    ssh -N -L {port}:localhost:{port}{'' if server[1] == '22' else f' -p {server[1]}'} {user}@{server[0]}",
            "",
            "   (いつも鍵ファイルを指定して接続しているなら -i <鍵ファイル> を足します。何も表示されずに止まったままなら転送中です。",
            "    ノート PC 側でポート "
            f"{port} が使用中なら (手元でも Jupyter が動いているなど)、-L {port + 1000}:localhost:{port} のように",
            f"    左側の番号を変え、下の URL の {port} も同じ番号に変えてください。)",
            "",
            "転送したら、ノート PC のブラウザで次の URL を開きます:",
        ]
    else:
        lines.append("このマシンのブラウザで次の URL を開いてください (自動で開かない場合):")
    lines += [f"    {url}", "",
              "URL の token はこのサーバーの鍵です。共有しないでください。--ip=0.0.0.0 で公開するのはやめてください",
              "(token だけで守られたサーバーが VM のグローバルアドレスに出てしまいます)。止めるときは Ctrl+C です。"]
    return "\n".join(lines)


# JupyterLab settings of this venv (share/jupyter/lab/settings/overrides.json): no "get notified about official
# Jupyter news?" popup over the first notebook (it would also make a request to a website).
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false"}}


def ensure_lab_settings(prefix: Path = Path(sys.prefix)) -> Path:
    """Merge LAB_OVERRIDES into the venv's JupyterLab overrides.json (the participant's own settings still win)."""
    import json

    path = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    current = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    merged = {**current, **{plugin: {**current.get(plugin, {}), **values} for plugin, values in LAB_OVERRIDES.items()}}
    if merged != current:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
    return path


def jupyter_command(port: int, token: str, remote: bool, expose_app: bool = False, root: Path = ROOT / "notebooks") -> list[str]:
    cmd = [str(Path(sys.executable).parent / "jupyter"), "lab", str(root),
           f"--ServerApp.ip={HOST}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}"]
    if expose_app:
        cmd.append("--LabApp.expose_app_in_browser=True")  # scripts/ci/browser_check.py drives the app's commands
    if remote:
        cmd.append("--no-browser")  # no browser on the VM; the laptop opens the URL through the tunnel
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # root-only VMs and containers: Jupyter refuses to start as root otherwise
    return cmd


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=int(os.environ.get("WORKSHOP_LAB_PORT", FIRST_PORT)),
                    help=f"first port to try (default {FIRST_PORT}; the next free one is used if it is taken)")
    ap.add_argument("--dry-run", action="store_true", help="print the instructions and the command, start nothing")
    ap.add_argument("--expose-app", action="store_true", help=argparse.SUPPRESS)  # for scripts/ci/browser_check.py
    ap.add_argument("--no-browser", action="store_true", help="do not open a browser on this machine")
    ap.add_argument("--root", type=Path, default=ROOT / "notebooks", help=argparse.SUPPRESS)  # browser_check: copies
    args = ap.parse_args(argv)

    port = free_port(args.port)
    token = secrets.token_hex(24)
    server = ssh_server()
    print(instructions(port, token, args.port, server, getpass.getuser()), flush=True)
    cmd = jupyter_command(port, token, remote=server is not None or args.no_browser, expose_app=args.expose_app,
                          root=args.root)
    if args.dry_run:
        print("\n--dry-run: " + shlex.join(cmd))
        return 0
    ensure_lab_settings()
    os.execv(cmd[0], cmd)  # the server replaces this process: Ctrl+C stops it as usual
    return 0


if __name__ == "__main__":
    sys.exit(main())
