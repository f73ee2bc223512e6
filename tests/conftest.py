import os

import pytest

# Tests run offline in the cpu profile, whatever the machine.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WORKSHOP_PROFILE", "cpu")


@pytest.fixture
def clean_env(monkeypatch):
    """No WORKSHOP_* overrides leaking in from the caller's shell."""
    for key in list(os.environ):
        if key.startswith("WORKSHOP_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from utils.config import TINY_MODEL_DIR
    from utils.modeling import load_tokenizer

    return load_tokenizer(str(TINY_MODEL_DIR))


@pytest.fixture(autouse=True)
def no_saved_settings(monkeypatch, tmp_path_factory):
    """The notebooks' saved settings (outputs/settings.json, written by a 設定のセル) never leak into a test."""
    from utils import config

    monkeypatch.setattr(config, "SETTINGS_PATH_FOR_TESTS", tmp_path_factory.mktemp("settings") / "settings.json")
