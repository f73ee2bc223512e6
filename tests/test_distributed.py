"""scripts/participant/train.py in two real processes (torchrun, gloo on CPU) against the same recipe in one.

``accelerate launch --cpu --num_processes 2`` starts only one process (accelerate#2741), so the
test uses ``torchrun --nproc_per_node 2`` and checks from the run's own records that two ranks
trained: the world size the Trainer saw and the examples each rank's collator really built.
Same effective batch both ways (4 x 2 accumulation x 2 processes = 4 x 4 x 1), so the same
batches form each update and the final validation loss must agree within ``LOSS_TOLERANCE``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from utils.recipe.config import PROJECT_ROOT, get_config
from utils.recipe.training import optimizer_steps

N_TRAIN, N_VAL, BATCH = 64, 16, 4
LOSS_TOLERANCE = 0.05  # nats/token; dropout masks differ per rank, the arithmetic order differs (measured below)

pytestmark = pytest.mark.slow  # two training processes (torchrun)



def _run(cmd: list[str], out_dir: Path, accumulation: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKSHOP_")}
    env.update({
        "WORKSHOP_PROFILE": "cpu", "WORKSHOP_OUTPUT_DIR": str(out_dir), "HF_HUB_OFFLINE": "1",
        "WORKSHOP_N_TRAIN": str(N_TRAIN), "WORKSHOP_N_VAL": str(N_VAL), "WORKSHOP_N_TEST": "8",
        "WORKSHOP_NUM_TRAIN_EPOCHS": "1", "WORKSHOP_PER_DEVICE_TRAIN_BATCH_SIZE": str(BATCH),
        "WORKSHOP_GRADIENT_ACCUMULATION_STEPS": str(accumulation), "WORKSHOP_EVAL_STEPS": "4",
        "WORKSHOP_WARMUP_STEPS": "1", "OMP_NUM_THREADS": "1",
    })
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    metrics = json.loads((out_dir / "cpu" / "train_metrics.json").read_text())
    metrics["stdout"] = proc.stdout
    return metrics


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    if shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists():
        pytest.fail("torchrun (from torch) is missing from the environment")
    torchrun = str(Path(sys.executable).parent / "torchrun")
    root = tmp_path_factory.mktemp("distributed")
    two = _run([torchrun, "--nproc_per_node", "2", "--master_port", "29517", "scripts/participant/train.py"], root / "two", 2)
    one = _run([sys.executable, "scripts/participant/train.py"], root / "one", 4)
    for name, m in (("one process", one), ("two processes", two)):  # the figures the README and notes quote (pytest -s)
        print(f"\n{name}: world_size {m['world_size']}, {m['optimizer_steps']} steps, {m['train_seconds']:.1f} s, "
              f"{m['tokens_per_second']:,.0f} tokens/s, final eval loss {m['final_eval_loss']:.4f}, "
              f"examples per rank {m['train_examples_per_rank']}")
    return {"one": one, "two": two, "root": root}


def test_two_processes_really_trained(runs):
    two = runs["two"]
    assert two["world_size"] == 2
    assert len(two["train_examples_per_rank"]) == 2
    assert all(n > 0 for n in two["train_examples_per_rank"]), two["train_examples_per_rank"]
    # the batches are dealt round-robin, the last round filled up from the start: equal shares that
    # together cover every record the one-process run trained on
    first, second = two["train_examples_per_rank"]
    assert first == second
    assert first + second >= runs["one"]["train_examples_per_rank"][0] > N_TRAIN // 2
    assert "world_size=2" in two["stdout"] and "4 (per device) x 2 (accumulation) x 2 (processes) = 16" in two["stdout"]
    assert runs["one"]["world_size"] == 1 and len(runs["one"]["train_examples_per_rank"]) == 1


def test_steps_follow_the_arithmetic_for_two_processes(runs):
    cfg2 = get_config("cpu", n_train=N_TRAIN, num_train_epochs=1, per_device_train_batch_size=BATCH,
                      gradient_accumulation_steps=2)
    expected = optimizer_steps(N_TRAIN, cfg2, n_processes=2)
    assert expected == 4
    assert runs["two"]["optimizer_steps"] == expected == runs["two"]["expected_optimizer_steps"]
    assert runs["one"]["optimizer_steps"] == expected  # 4 x 4 x 1: the same number of updates


def test_same_effective_batch_gives_the_same_validation_loss(runs):
    one, two = runs["one"]["final_eval_loss"], runs["two"]["final_eval_loss"]
    print(f"final validation loss: one process {one:.4f}, two processes {two:.4f}, difference {abs(one - two):.4f}")
    assert abs(one - two) <= LOSS_TOLERANCE


def test_the_two_process_adapter_loads_through_05s_loader(runs):
    from utils.recipe.modeling import load_model_and_tokenizer

    cfg = get_config("cpu", output_dir=runs["root"] / "two")
    adapter = cfg.run_dir / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    model, tokenizer = load_model_and_tokenizer(cfg, adapter)
    assert type(model).__name__ == "PeftModelForCausalLM"
    lora = [n for n, _ in model.named_parameters() if "lora_A" in n]
    assert lora, "no LoRA weights were loaded"
