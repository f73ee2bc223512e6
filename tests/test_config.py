from pathlib import Path

import pytest

from utils.recipe.config import TINY_MODEL_DIR, ConfigError, get_config


def test_auto_profile_is_cpu_without_cuda(clean_env):
    cfg = get_config()
    assert cfg.profile == "cpu"
    assert Path(cfg.base_model) == TINY_MODEL_DIR
    assert cfg.run_dir.name == "cpu"
    assert not cfg.load_in_4bit
    assert str(cfg.torch_dtype) == "torch.float32"


def test_gpu_profile_without_cuda_says_what_to_do(clean_env):
    clean_env.setenv("WORKSHOP_PROFILE", "gpu")
    with pytest.raises(ConfigError, match="WORKSHOP_PROFILE=cpu"):
        get_config()


def test_unknown_profile(clean_env):
    clean_env.setenv("WORKSHOP_PROFILE", "tpu")
    with pytest.raises(ConfigError, match="未知のプロファイル"):
        get_config()


def test_env_overrides_are_typed(clean_env, tmp_path):
    clean_env.setenv("WORKSHOP_N_TEST", "7")
    clean_env.setenv("WORKSHOP_LEARNING_RATE", "0.01")
    clean_env.setenv("WORKSHOP_GRADIENT_CHECKPOINTING", "true")
    clean_env.setenv("WORKSHOP_LORA_TARGET_MODULES", "q_proj, v_proj")
    clean_env.setenv("WORKSHOP_N_TRAIN", "all")
    clean_env.setenv("WORKSHOP_OUTPUT_DIR", str(tmp_path))
    cfg = get_config()
    assert cfg.n_test == 7 and cfg.learning_rate == 0.01 and cfg.gradient_checkpointing is True
    assert cfg.lora_target_modules == ("q_proj", "v_proj")
    assert cfg.n_train is None
    assert cfg.run_dir == tmp_path / "cpu"


@pytest.mark.parametrize("name,value,match", [
    ("N_TEST", "many", "WORKSHOP_N_TEST"),
    ("N_TEST", "-3", "WORKSHOP_N_TEST"),
    ("GRADIENT_CHECKPOINTING", "maybe", "true/false"),
    ("COMPUTE_DTYPE", "int8", "compute_dtype"),
    ("DATA_PATH", "/no/such/file.jsonl", "WORKSHOP_DATA_PATH"),
    ("BASE_MODEL", "./no-such-model-dir", "WORKSHOP_BASE_MODEL"),
    ("LOAD_IN_4BIT", "1", "gpu プロファイル用"),
])
def test_bad_values_get_clear_errors(clean_env, name, value, match):
    clean_env.setenv(f"WORKSHOP_{name}", value)
    with pytest.raises(ConfigError, match=match):
        get_config()


def test_gpu_profile_defaults_match_the_workshop_plan(clean_env, monkeypatch):
    import utils.recipe.config as config

    monkeypatch.setattr(config, "_cuda_available", lambda: True)
    cfg = get_config("gpu")
    assert cfg.base_model == "stabilityai/japanese-stablelm-base-gamma-7b"
    assert cfg.load_in_4bit and cfg.max_length == 1024 and cfg.n_test == 100 and cfg.n_train is None
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout) == (16, 32, 0.05)
    assert set(cfg.lora_target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_config_renders_a_table(clean_env):
    cfg = get_config()
    text = str(cfg)
    for key in ("profile", "base_model", "device", "dtype", "output_dir"):
        assert key in text
    assert "<table>" in cfg._repr_html_()


def test_config_is_frozen(clean_env):
    cfg = get_config()
    with pytest.raises(Exception):
        cfg.n_test = 3  # type: ignore[misc]


def test_generation_settings_live_in_one_place(clean_env):
    cfg = get_config(max_new_tokens=50, gen_batch_size=4, repetition_penalty=1.1)
    assert cfg.generation_kwargs == {"max_new_tokens": 50, "batch_size": 4, "repetition_penalty": 1.1}
    import inspect

    from utils.recipe.generation import generate

    assert set(cfg.generation_kwargs) <= set(inspect.signature(generate).parameters)


def test_a_bad_kshot_is_refused_at_config_time(clean_env):
    clean_env.setenv("WORKSHOP_KSHOT", "0,-1")
    with pytest.raises(ConfigError, match="kshot"):
        get_config()


def test_unknown_attention_implementation_is_refused(clean_env):
    clean_env.setenv("WORKSHOP_ATTN_IMPLEMENTATION", "flash")
    with pytest.raises(ConfigError, match="sdpa"):
        get_config()


def test_make_check_gpu_runs_the_bundled_model_into_its_own_output_dir(tmp_path, make_plan):
    """The GPU preflight must point at a real model folder and keep its outputs apart from the cpu run's (the recipe
    as make expands it by default: make rehearsal overrides its variables)."""
    import re

    from utils.recipe.config import PROJECT_ROOT

    recipe = make_plan("-o", ".venv/.installed", "check-gpu")
    model = re.search(rf"WORKSHOP_BASE_MODEL={re.escape(str(tmp_path))}/(\S+)", recipe).group(1)
    assert (PROJECT_ROOT / model / "config.json").is_file(), model
    assert f"WORKSHOP_OUTPUT_DIR={tmp_path}/outputs/check-gpu " in recipe
    assert "WORKSHOP_PROFILE=gpu " in recipe
