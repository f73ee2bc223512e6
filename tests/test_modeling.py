import pytest

from utils.recipe.modeling import FALLBACK_MODEL, ModelLoadError, _explain, ensure_pad_token, load_tokenizer


class GatedRepoError(Exception):  # same name as huggingface_hub's, which is what _explain looks at
    pass


class RepositoryNotFoundError(Exception):
    pass


def test_gated_model_names_the_fix():
    wrapped = OSError("You are trying to access a gated repo.")
    wrapped.__cause__ = GatedRepoError("403")
    msg = str(_explain(wrapped, "stabilityai/japanese-stablelm-base-gamma-7b"))
    assert "hf auth login" in msg and "HF_TOKEN" in msg and f"WORKSHOP_BASE_MODEL={FALLBACK_MODEL}" in msg


def test_missing_model_names_the_fix():
    msg = str(_explain(RepositoryNotFoundError("404"), "no-such/model"))
    assert "見つかりません" in msg and FALLBACK_MODEL in msg


def test_offline_hub_model_gives_a_japanese_error_without_the_token(monkeypatch):
    secret = "hf_" + "x" * 34
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        load_tokenizer("stabilityai/japanese-stablelm-base-gamma-7b")
    assert "オフライン" in str(err.value) and "WORKSHOP_PROFILE=cpu" in str(err.value)
    assert secret not in str(err.value) and err.value.__cause__ is None  # no bare traceback chained


class _Tok:
    def __init__(self, pad, unk, eos):
        self.pad_token, self.unk_token, self.eos_token = pad, unk, eos
        self._ids = {None: None, "<unk>": 0, "</s>": 2, "<pad>": 3}

    @property
    def pad_token_id(self):
        return self._ids[self.pad_token]

    @property
    def unk_token_id(self):
        return self._ids[self.unk_token]

    @property
    def eos_token_id(self):
        return self._ids[self.eos_token]


@pytest.mark.parametrize("pad,expected", [(None, "<unk>"), ("</s>", "<unk>"), ("<pad>", "<pad>")])
def test_pad_token_is_never_eos(pad, expected):
    tok = _Tok(pad, "<unk>", "</s>")
    ensure_pad_token(tok)
    assert tok.pad_token == expected


def test_no_usable_pad_token_is_an_actionable_error():
    with pytest.raises(ModelLoadError, match="add_special_tokens"):
        ensure_pad_token(_Tok(None, None, "</s>"))


def test_the_bundled_model_loads_without_a_loading_bar_and_the_bar_comes_back(capfd):
    """01, 04, 05 and 08 load the bundled model through load_model: no "Loading weights" bar there (a Hub model keeps
    its bars); afterwards transformers' bars are on again, so 03's own from_pretrained and the Trainer show theirs."""
    from transformers.utils import logging as hf_logging

    from utils.recipe.config import get_config
    from utils.recipe.modeling import load_model, quiet_local_loading

    load_model(get_config("cpu"))
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
    with quiet_local_loading("some-org/some-model"):  # a Hub id: bars stay on
        assert hf_logging.is_progress_bar_enabled()
