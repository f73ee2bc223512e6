"""`make lab` (scripts/participant/lab.py): JupyterLab bound to 127.0.0.1 with a generated token; over SSH it prints the port
forwarding command to run on the laptop; a taken port moves to the next free one and says so."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "participant" / "lab.py"


def run_lab(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def lab_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_CONNECTION", "WORKSHOP_LAB_PORT")}
    return {**env, **extra}


def test_over_ssh_prints_the_tunnel_and_keeps_localhost():
    result = run_lab("--dry-run", "--port", "18888",
                     env=lab_env(SSH_CONNECTION="203.0.113.5 50000 198.51.100.7 2222", USER="participant"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "ssh -N -L 18888:localhost:18888 -p 2222 participant@198.51.100.7" in out
    assert "http://localhost:18888/lab?token=" in out
    command = out.split("--dry-run: ", 1)[1]
    assert "--ServerApp.ip=127.0.0.1" in command and "0.0.0.0" not in command and "--no-browser" in command
    token = out.split("token=", 1)[1].split()[0]
    assert len(token) >= 32 and f"--IdentityProvider.token={token}" in command  # the URL's token is the server's


def test_locally_no_tunnel():
    out = run_lab("--dry-run", "--port", "18890", env=lab_env()).stdout
    assert "ssh -N" not in out and "--no-browser" not in out and "http://localhost:18890/lab?token=" in out


def test_a_taken_port_moves_to_the_next_free_one():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_lab("--dry-run", "--port", str(port), env=lab_env()).stdout
    assert f"ポート {port} は使用中なので" in out and f"--ServerApp.port={port}" not in out


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on this port."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


def test_the_real_server_answers_on_localhost_with_the_token_only(tmp_path):
    """Start JupyterLab as `make lab` does (from this venv) and ask its API: with the token 200, without 403;
    it listens on 127.0.0.1 alone (0100007F in /proc/net/tcp)."""
    env = lab_env(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
                  JUPYTER_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--port", "18900"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = "".join(proc.stdout.readline() for _ in range(3))
        token = first.split("token=", 1)[1].split()[0]
        port = int(first.split("http://localhost:", 1)[1].split("/", 1)[0])
        deadline, status = time.time() + 90, None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5) as r:
                    status = r.status
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1)
        assert status == 200, "JupyterLab did not answer with its token"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5)
        assert err.value.code == 403
        assert listening_addresses(port) == {"0100007F"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_lab_settings_turn_off_the_news_popup_and_keep_the_participants_own(tmp_path):
    import json

    from scripts.participant import lab

    path = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}))
    assert lab.ensure_lab_settings(tmp_path) == path
    settings = json.loads(path.read_text())
    assert settings["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert settings["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
