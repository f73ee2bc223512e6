"""The fine-tuned model behind an OpenAI-compatible endpoint: ``transformers serve`` (a maintained server, extra
``transformers[serving]``: requirements-serving.txt) started on localhost only, waited for, and stopped.

The endpoint speaks the OpenAI chat-completions API, so the official ``openai`` client, curl, or any application
calls it the same way. It formats the messages with the model's own chat template (the tokenizer's), so the model
must carry one (09 builds it); generation stops at the generation config's end tokens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from utils.machine.processes import stop_group

HOST = "127.0.0.1"  # localhost only: the endpoint has no authentication


class ServerError(RuntimeError):
    """The server stopped or did not answer in time; the message ends with the tail of its log."""


def serve_command(model_dir: str | Path, port: int, python: str = sys.executable) -> list[str]:
    """``transformers serve <model folder> --host 127.0.0.1 --port <port>`` with this Python's transformers."""
    return [python, "-m", "transformers.cli.transformers", "serve", str(model_dir), "--host", HOST, "--port", str(port)]


def serving_available() -> str | None:
    """None when the serving extra is installed, else the one line that installs it."""
    from transformers.utils.import_utils import is_serve_available

    if is_serve_available():
        return None
    return f"{Path(sys.executable).parent / 'pip'} install -r requirements-serving.txt"


def start(model_dir: str | Path, port: int, log: Path, timeout: float = 180) -> subprocess.Popen:
    """Start the server in its own process group, and return once ``/health`` answers (or raise ServerError)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    with log.open("w", encoding="utf-8") as handle:  # the server writes to its own copy of the file
        proc = subprocess.Popen(serve_command(model_dir, port), stdout=handle, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"サーバーが終了しました (終了コード {proc.returncode})。ログの最後:\n{tail(log)}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    stop(proc)
    raise ServerError(f"サーバーが {timeout:.0f} 秒以内に応答しませんでした。ログの最後:\n{tail(log)}")


def stop(proc: subprocess.Popen) -> int:
    """Stop the server (SIGTERM to its process group, SIGKILL after 10 s); returns its exit code."""
    return stop_group(proc, grace=10)


def tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]) if log.is_file() else ""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def stream_chat(client, model: str, messages: list[dict], max_tokens: int, frequency_penalty: float = 0.0):
    """The endpoint's answer to ``messages``, yielded piece by piece as the server streams it (OpenAI's client)."""
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens, stream=True,
                                                frequency_penalty=frequency_penalty):
        if chunk.choices and chunk.choices[0].delta.content:
            yield chunk.choices[0].delta.content
