"""Settings changed from inside JupyterLab (each notebook's 設定のセル): saved once, read by every notebook through the
one get_config(), parsed and validated like WORKSHOP_* variables, shown in the config table; env still wins."""

from __future__ import annotations

import json

import pytest

from utils.recipe import config
from utils.recipe.config import ConfigError, get_config, use_settings


def test_saved_settings_reach_every_get_config(clean_env, capsys):
    use_settings({"num_train_epochs": 1, "n_train": 600, "n_test": 50})
    saved = json.loads(config.settings_path().read_text(encoding="utf-8"))
    assert saved == {"num_train_epochs": 1, "n_train": 600, "n_test": 50}
    assert "01〜05 と make workshop が同じ値を使います" in capsys.readouterr().out
    cfg = get_config("cpu")  # what 03, 04 and 05 do in their own kernels
    assert (cfg.num_train_epochs, cfg.n_train, cfg.n_test) == (1.0, 600, 50)
    assert ("settings (設定のセル)", "num_train_epochs=1, n_train=600, n_test=50") in cfg.rows()
    use_settings(None)  # a notebook that changes nothing keeps them
    assert get_config("cpu").n_test == 50
    clean_env.setenv("WORKSHOP_N_TEST", "20")  # precedence: profile < settings < environment < keywords
    assert get_config("cpu").n_test == 20 and get_config("cpu", n_test=10).n_test == 10
    use_settings({})  # {} removes them
    clean_env.delenv("WORKSHOP_N_TEST")
    assert not config.settings_path().exists() and get_config("cpu").n_test == config.profile_settings("cpu")["n_test"]


@pytest.mark.parametrize("settings, message", [
    ({"n_trian": 600}, "'n_trian' は設定できる項目ではありません"),
    ({"profile": "gpu"}, "WORKSHOP_PROFILE"),
    ({"n_train": "many"}, "SETTINGS\\['n_train'\\]='many' を解釈できません"),
    ({"max_cut_fraction": 2.0}, "max_cut_fraction=2.0"),
])
def test_bad_settings_are_refused_in_japanese_before_anything_is_saved(clean_env, settings, message):
    use_settings({"n_test": 50})
    with pytest.raises(ConfigError, match=message):
        use_settings(settings)
    assert get_config("cpu").n_test == 50  # the refused settings replaced nothing


def test_types_follow_the_fields(clean_env):
    use_settings({"n_train": "all", "lora_target_modules": ["q_proj", "v_proj"], "gradient_checkpointing": "true"})
    cfg = get_config("cpu")
    assert cfg.n_train is None and cfg.lora_target_modules == ("q_proj", "v_proj") and cfg.gradient_checkpointing is True
