"""The OpenAI-compatible endpoint (utils.recipe.serving: `transformers serve`, localhost only) with a chat-format model
folder like the one notebook 09 merges: good requests through the official openai client (plain and streamed), bad
ones answered with an error each, and the server still serving after them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from utils.recipe import chat, serving

pytestmark = [pytest.mark.slow, pytest.mark.extras]  # a server process (about 20 s); the serving extra

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("chat-model")
    tokenizer = AutoTokenizer.from_pretrained(ROOT / "models" / "tiny-ja-mistral")
    tokenizer.add_tokens(chat.ROLE_TOKENS, special_tokens=True)
    tokenizer.chat_template = chat.CHAT_TEMPLATE
    tokenizer.eos_token = chat.END
    model = AutoModelForCausalLM.from_pretrained(ROOT / "models" / "tiny-ja-mistral")
    model.resize_token_embeddings(len(tokenizer))
    model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids(chat.END)]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    port = serving.free_port()
    proc = serving.start(folder, port, folder.parent / "server.log")
    yield {"url": f"http://{serving.HOST}:{port}/v1", "model": str(folder), "proc": proc}
    assert serving.stop(proc) is not None


def post(server, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(server["url"] + "/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def ask(server, **extra):
    from openai import OpenAI

    client = OpenAI(base_url=server["url"], api_key="not-needed-on-localhost")
    return client.chat.completions.create(model=server["model"], max_tokens=8,
                                          messages=[{"role": "user", "content": "次の文章を要約してください。\n\n今日は晴れです。"}],
                                          **extra)


def test_the_server_listens_on_localhost_only():
    command = serving.serve_command("m", 8000)
    assert command[command.index("--host") + 1] == "127.0.0.1"


def test_a_good_request_through_the_openai_client(server):
    reply = ask(server)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert isinstance(reply.choices[0].message.content, str) and chat.END not in reply.choices[0].message.content
    assert reply.usage.completion_tokens <= 8


def test_a_streamed_request(server):
    chunks = list(ask(server, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks and isinstance(text, str)


@pytest.mark.parametrize("body, status, says", [
    (b"{not json", 422, "JSON decode error"),
    ({"messages": [{"role": "user", "content": "x"}], "model": "another-model"}, 400, "Server is pinned to"),
    ({"messages": [{"role": "user", "content": "x"}], "temperatur": 0.5}, 422, "Unexpected fields in the request"),
])
def test_a_bad_request_gets_a_clear_error_and_the_server_keeps_serving(server, body, status, says):
    if isinstance(body, dict):
        body = json.dumps({"model": server["model"], **body} if "model" not in body else body).encode()
    code, text = post(server, body)
    assert code == status and says in text, (code, text)
    assert ask(server).choices[0].message.content is not None  # still serving


def test_what_the_pinned_server_answers_with_500(server):
    """Requests the pinned transformers serve does not check: a 500 without the reason (its log has it); the server
    keeps serving. 09 says so, and the client checks these before it sends."""
    for body in ({"model": server["model"]}, {"model": server["model"], "max_tokens": -1,
                                               "messages": [{"role": "user", "content": "x"}]}):
        code, text = post(server, json.dumps(body).encode())
        assert code == 500, (code, text)
    assert ask(server).choices[0].finish_reason in ("stop", "length")


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path):
    with pytest.raises(serving.ServerError, match="サーバーが終了しました"):
        serving.start(tmp_path / "no-such-model", serving.free_port(), tmp_path / "server.log", timeout=60)
