"""The resume drill: training killed by SIGKILL after a checkpoint (a closed laptop lid, a preempted VM, a Colab
disconnect) starts again from that checkpoint -- the step count and the data order continue -- and ends with the
same final validation loss as an uninterrupted run. A checkpoint from other settings is refused, naming the fields.
scripts/participant/train.py runs the same utils as notebook 04 (training.train resumes for both)."""

from __future__ import annotations

import pytest

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# two epochs of ~5 steps (64 records, of which ~40 fit 256 tokens), a checkpoint per epoch (the cpu profile's save_strategy)
SMALL = {"WORKSHOP_PROFILE": "cpu", "HF_HUB_OFFLINE": "1", "WORKSHOP_N_TRAIN": "64", "WORKSHOP_N_VAL": "8",
         "WORKSHOP_MAX_LENGTH": "256", "WORKSHOP_PER_DEVICE_TRAIN_BATCH_SIZE": "8",
         "WORKSHOP_GRADIENT_ACCUMULATION_STEPS": "1", "WORKSHOP_EVAL_STEPS": "7", "OMP_NUM_THREADS": "2"}
TOLERANCE = 1e-4  # final validation loss, resumed vs uninterrupted (measured difference: see the drill's output)

pytestmark = pytest.mark.slow  # kills and resumes a training process



def env(out: Path, **extra) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WORKSHOP_")}
    return {**base, **SMALL, "WORKSHOP_OUTPUT_DIR": str(out), **extra}


def train(out: Path, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/participant/train.py"], cwd=ROOT, env=env(out, **extra),
                          capture_output=True, text=True, timeout=600)


def metrics(out: Path) -> dict:
    return json.loads((out / "cpu" / "train_metrics.json").read_text())


def test_killed_training_resumes_from_its_checkpoint_and_ends_the_same(tmp_path):
    whole = tmp_path / "whole"
    result = train(whole)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reference = metrics(whole)
    steps = reference["optimizer_steps"]
    assert steps == reference["expected_optimizer_steps"] and steps >= 4

    # the same run, killed with SIGKILL once the first checkpoint is on disk
    cut = tmp_path / "cut"
    checkpoints = cut / "cpu" / "trainer"
    proc = subprocess.Popen([sys.executable, "scripts/participant/train.py"], cwd=ROOT, env=env(cut), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and not list(checkpoints.glob("checkpoint-*/workshop_settings.json")):
        assert proc.poll() is None, "training ended before it wrote a checkpoint"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    (first,) = [p.parent for p in checkpoints.glob("checkpoint-*/workshop_settings.json")]
    killed_at = int(first.name.split("-")[1])
    assert 0 < killed_at < steps and not (cut / "cpu" / "train_metrics.json").exists()

    resumed = train(cut)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"{first} から学習を再開します" in resumed.stdout
    after = metrics(cut)
    assert after["optimizer_steps"] == steps  # global_step continued to the planned total
    # the data order continued: the resumed process trained only the batches after the checkpoint
    assert sum(after["train_examples_per_rank"]) < sum(reference["train_examples_per_rank"])
    difference = abs(after["final_eval_loss"] - reference["final_eval_loss"])
    print(f"\nresume drill: killed after checkpoint-{killed_at} of {steps} steps; final validation loss "
          f"uninterrupted {reference['final_eval_loss']:.6f}, resumed {after['final_eval_loss']:.6f} (difference {difference:.2e})")
    assert difference <= TOLERANCE

    # a checkpoint from other settings is refused with the differing field and how to start over
    other = train(cut, WORKSHOP_LEARNING_RATE="0.001")
    assert other.returncode != 0
    assert "learning_rate" in other.stderr and "0.002" in other.stderr and "0.001" in other.stderr
    assert f"rm -rf {checkpoints}/checkpoint-*" in other.stderr
