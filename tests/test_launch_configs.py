"""Lint for the ``accelerate launch`` configs under ``configs/accelerate`` (and the SLURM example).

Offline and fast: nothing is trained and no process group is formed. Every check asks the installed
accelerate (1.15) itself rather than a list written from memory:

* top-level keys: ``accelerate.commands.config.config_args.ClusterConfig`` fields, through
  ``load_config_from_file`` (the loader ``accelerate launch`` uses, which rejects unknown keys);
* ``fsdp_config`` / ``deepspeed_config`` keys: accelerate copies *any* sub-key onto its launch
  arguments without checking it (``commands/launch.py``, ``_validate_launch_command``), so a typo
  there is silently ignored. The keys it really reads are its own launch options (the "FSDP
  Arguments" / "DeepSpeed Arguments" groups of ``launch_command_parser``) plus the ``args.fsdp_*``
  attributes that ``utils/launch.py:prepare_multi_gpu_env`` reads;
* FSDP2: the keys ``accelerate to-fsdp2`` (``commands/to_fsdp2.py``) marks as removed, not yet
  implemented or renamed under ``fsdp_version: 2`` are rejected;
* each config then goes through accelerate's own launch path up to the environment it would hand
  to the training processes (``_validate_launch_command`` + ``prepare_multi_gpu_env`` /
  ``prepare_deepspeed_cmd_env``), and the FSDP / DeepSpeed plugins are built from that environment,
  the way ``Accelerator`` builds them inside ``scripts/participant/train.py``.

No DeepSpeed JSON is shipped (``zero3.yaml`` uses accelerate's inline ``deepspeed_config`` keys), so
there is no DeepSpeed schema to lint and DeepSpeed need not be installed.

``cpu_2proc.yaml`` is deliberately absent: with accelerate 1.15 a ``MULTI_CPU`` config (or
``accelerate launch --cpu --num_processes 2``) starts ONE process (accelerate#2741; the simple
launcher runs ``python script`` once unless an mpirun hostfile is given). Two CPU processes come
from ``torchrun --nproc_per_node 2 scripts/participant/train.py`` (tests/test_distributed.py).
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs" / "accelerate"
SBATCH = ROOT / "configs" / "slurm" / "train.sbatch"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
EXPECTED = {"ddp.yaml", "fsdp2_qlora.yaml", "zero3.yaml", "multi_node.yaml"}
TRAIN_SCRIPT = "scripts/participant/train.py"

# Launch options whose launcher default is not None: accelerate 1.15 copies a config value onto them only
# when the option is None (commands/launch.py, _validate_launch_command), so for these the YAML value is
# silently ignored. A config may only restate the default, except where ignoring it is harmless:
# same_network only chooses master_addr vs rdzv_endpoint, which static rendezvous treats alike
# (torch/distributed/run.py get_rdzv_endpoint; checked in test_multi_node_ranks_and_endpoint).
IGNORED_BUT_HARMLESS = {"same_network"}


def _ids(paths):
    return [p.name for p in paths]


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _parser():
    from accelerate.commands.launch import launch_command_parser

    return launch_command_parser()


def _group_dests(title: str) -> set[str]:
    """Option names of one argument group of ``accelerate launch`` (e.g. "FSDP Arguments")."""
    groups = [g for g in _parser()._action_groups if g.title == title]
    assert groups, f"accelerate launch has no argument group {title!r} any more"
    return {a.dest for a in groups[0]._group_actions}


def _fsdp_keys_read_by_launcher() -> set[str]:
    """``fsdp_*`` keys accelerate turns into FSDP_* variables: its FSDP options + what the launch code reads."""
    from accelerate.utils import launch as launch_utils

    source = inspect.getsource(launch_utils.prepare_multi_gpu_env)
    read = set(re.findall(r"args\.(fsdp_\w+)", source)) | set(re.findall(r"\(args, \"(fsdp_\w+)\"", source))
    return _group_dests("FSDP Arguments") | read


def _launch(path: Path, *extra: str, monkeypatch):
    """accelerate's own launch path for ``accelerate launch --config_file path [extra] scripts/participant/train.py``,
    up to the environment the training processes would get (nothing is started)."""
    from accelerate.commands.launch import _validate_launch_command
    from accelerate.utils import launch as launch_utils

    # the port check would look at this machine's ports, which says nothing about the config
    monkeypatch.setattr(launch_utils, "is_port_in_use", lambda port: False)
    args = _parser().parse_args(["--config_file", str(path), *extra, TRAIN_SCRIPT])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = launch_utils.prepare_deepspeed_cmd_env(args)
    else:
        env = launch_utils.prepare_multi_gpu_env(args)
    launched = {k: v for k, v in env.items() if os.environ.get(k) != v}
    return args, defaults, launched


def test_the_shipped_configs_are_there():
    """The four configs the README/scripts refer to exist, and no MULTI_CPU config is shipped
    (with accelerate 1.15 it would start one process, not two: accelerate#2741)."""
    assert EXPECTED <= {p.name for p in CONFIGS}, sorted(p.name for p in CONFIGS)
    for path in CONFIGS:
        assert _load(path).get("distributed_type") != "MULTI_CPU", (
            f"{path.name}: accelerate 1.15 launches MULTI_CPU as a single process; use torchrun --nproc_per_node N")


@pytest.mark.parametrize("path", CONFIGS, ids=_ids(CONFIGS))
def test_top_level_keys_are_cluster_config_fields(path):
    """The YAML parses, every top-level key is a ClusterConfig field, and accelerate's own loader accepts it."""
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import ComputeEnvironment, DistributedType, PrecisionType

    raw = _load(path)
    assert isinstance(raw, dict), f"{path.name} is not a YAML mapping"
    unknown = sorted(set(raw) - set(ClusterConfig.__dataclass_fields__))
    assert not unknown, f"{path.name}: keys accelerate 1.15 does not know: {unknown}"
    assert raw.get("compute_environment") == ComputeEnvironment.LOCAL_MACHINE.value
    assert raw["distributed_type"] in {t.value for t in DistributedType}, raw["distributed_type"]
    assert raw["mixed_precision"] in PrecisionType.list(), raw["mixed_precision"]
    cfg = load_config_from_file(str(path))  # raises on unknown keys, converts the enums
    assert isinstance(cfg, ClusterConfig)
    assert cfg.num_processes >= 2 and cfg.num_processes % cfg.num_machines == 0, (cfg.num_processes, cfg.num_machines)


@pytest.mark.parametrize("path", CONFIGS, ids=_ids(CONFIGS))
def test_no_value_that_accelerate_launch_silently_ignores(path):
    """Top-level values that accelerate 1.15 never copies onto its launch options (their default is not None)
    must restate that default, so that the file does not promise a behaviour it cannot have."""
    from accelerate.commands.config.config_args import ClusterConfig

    defaults = {a.dest: a.default for a in _parser()._actions}
    raw = _load(path)
    for key, value in raw.items():
        if key in ClusterConfig.__dataclass_fields__ and key in defaults and key not in IGNORED_BUT_HARMLESS:
            default = defaults[key]
            if default is not None:
                assert value == default, (f"{path.name}: {key}: {value!r} is ignored by accelerate launch "
                                          f"(it keeps {default!r}); pass --{key} on the command line instead")


@pytest.mark.parametrize("path", CONFIGS, ids=_ids(CONFIGS))
def test_nested_keys_are_read_by_the_launcher(path):
    """fsdp_config / deepspeed_config (and any other nested section) use only keys accelerate's launch code reads;
    a misspelled nested key would otherwise be ignored without a word."""
    raw = _load(path)
    all_options = {a.dest for a in _parser()._actions}
    fsdp_keys = _fsdp_keys_read_by_launcher()
    deepspeed_keys = _group_dests("DeepSpeed Arguments")
    for section, body in raw.items():
        if not isinstance(body, dict):
            continue
        for key in body:
            if section == "fsdp_config":
                name = key if key.startswith("fsdp") else "fsdp_" + key  # the prefixing launch.py does
                assert name in fsdp_keys, f"{path.name}: fsdp_config.{key} is not read by accelerate 1.15"
            elif section == "deepspeed_config":
                assert key in deepspeed_keys, f"{path.name}: deepspeed_config.{key} is not read by accelerate 1.15"
            else:
                assert key in all_options, f"{path.name}: {section}.{key} is not an accelerate launch option"
    if raw["distributed_type"] == "FSDP":
        assert raw.get("fsdp_config"), f"{path.name}: FSDP without fsdp_config"
    if raw["distributed_type"] == "DEEPSPEED":
        ds = raw.get("deepspeed_config") or {}
        assert ds, f"{path.name}: DEEPSPEED without deepspeed_config"
        if "deepspeed_config_file" in ds:
            assert (ROOT / ds["deepspeed_config_file"]).is_file(), ds["deepspeed_config_file"]


@pytest.mark.parametrize("path", CONFIGS, ids=_ids(CONFIGS))
def test_launch_path_accepts_the_config(path, monkeypatch):
    """accelerate's launch path takes the file as it is: the right launcher, and one process per GPU per machine."""
    raw = _load(path)
    args, defaults, env = _launch(path, monkeypatch=monkeypatch)
    kind = raw["distributed_type"]
    assert args.multi_gpu == (kind == "MULTI_GPU")
    assert args.use_fsdp == (kind == "FSDP")
    assert args.use_deepspeed == (kind == "DEEPSPEED")
    assert env["ACCELERATE_MIXED_PRECISION"] == raw["mixed_precision"]
    assert int(args.nproc_per_node) == raw["num_processes"] // raw.get("num_machines", 1)


def test_fsdp2_qlora_uses_only_fsdp2_keys(monkeypatch, caplog):
    """fsdp2_qlora.yaml is FSDP version 2 with no FSDP1-only, unimplemented or renamed key (accelerate's
    ``to-fsdp2`` table), saves a full state dict (``Trainer.save_model`` writes the adapter only then under
    FSDP) and builds a v2 plugin from the launcher's environment without a conversion warning."""
    from accelerate.commands.to_fsdp2 import ARGUMENT_KEY_MAPPING, ConversionStatus
    from accelerate.utils import FullyShardedDataParallelPlugin, patch_environment
    from accelerate.utils.constants import FSDP2_STATE_DICT_TYPE, FSDP_AUTO_WRAP_POLICY

    path = CONFIG_DIR / "fsdp2_qlora.yaml"
    raw = _load(path)
    fsdp = raw["fsdp_config"]
    assert raw["distributed_type"] == "FSDP"
    assert fsdp["fsdp_version"] == 2
    for key in fsdp:
        target = ARGUMENT_KEY_MAPPING.get(key, key)
        assert not isinstance(target, ConversionStatus), f"fsdp_config.{key} is {target.name} in FSDP2"
        assert target == key, f"fsdp_config.{key} is called {target} in FSDP2"
    assert isinstance(fsdp["fsdp_reshard_after_forward"], bool)  # FSDP2 takes a bool, not a sharding strategy
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP" and "TRANSFORMER_BASED_WRAP" in FSDP_AUTO_WRAP_POLICY
    assert fsdp["fsdp_state_dict_type"] in FSDP2_STATE_DICT_TYPE
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    # the profile's gradient checkpointing and FSDP's own cannot both be on (transformers Trainer raises)
    assert fsdp.get("fsdp_activation_checkpointing") is False
    # the comment's advice points at a real profile field
    from utils.recipe.config import WorkshopConfig

    assert "bnb_4bit_quant_storage" in WorkshopConfig.__dataclass_fields__
    assert "bnb_4bit_quant_storage" in path.read_text(encoding="utf-8")

    _, _, env = _launch(path, monkeypatch=monkeypatch)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    fsdp_env = {k: v for k, v in env.items() if k.startswith(("FSDP_", "ACCELERATE_"))}
    with caplog.at_level(logging.WARNING, logger="accelerate.utils.dataclasses"), patch_environment(**fsdp_env):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.reshard_after_forward is True
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"
    assert plugin.cpu_ram_efficient_loading is True
    assert plugin.activation_checkpointing is False
    assert "FSDP2 conversion" not in caplog.text, caplog.text


def test_zero3_builds_a_stage3_deepspeed_config(monkeypatch):
    """zero3.yaml: the DeepSpeed plugin built from the launcher's environment is ZeRO-3, gathers 16-bit weights
    when saving (so ``save_model`` writes a normal adapter) and leaves batch / accumulation to the Trainer ("auto")."""
    from accelerate.utils import DeepSpeedPlugin, patch_environment

    path = CONFIG_DIR / "zero3.yaml"
    _, _, env = _launch(path, monkeypatch=monkeypatch)
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true"
    assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "3"
    with patch_environment(**{k: v for k, v in env.items() if k.startswith("ACCELERATE_")}):
        plugin = DeepSpeedPlugin()
    ds = plugin.deepspeed_config
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert ds["gradient_accumulation_steps"] == "auto" and ds["train_micro_batch_size_per_gpu"] == "auto"
    assert plugin.zero3_init_flag is True


def test_multi_node_ranks_and_endpoint(monkeypatch):
    """multi_node.yaml: 2 machines, rank 0 by default and 1 with ``--machine_rank 1``; each machine starts
    num_processes / num_machines workers and meets at main_process_ip:main_process_port (static rendezvous)."""
    path = CONFIG_DIR / "multi_node.yaml"
    raw = _load(path)
    assert raw["num_machines"] == 2 and raw["machine_rank"] == 0 and raw["rdzv_backend"] == "static"
    endpoint = f"{raw['main_process_ip']}:{raw['main_process_port']}"
    for extra, rank in (((), 0), (("--machine_rank", "1"), 1)):
        args, _, _ = _launch(path, *extra, monkeypatch=monkeypatch)
        assert args.node_rank == rank
        assert args.nnodes == "2"
        assert int(args.nproc_per_node) == raw["num_processes"] // 2
        assert args.rdzv_backend == "static"
        # same_network from the file is not applied (launch default False): torchrun gets the endpoint instead
        # of master_addr, and its static rendezvous uses either the same way
        assert (args.rdzv_endpoint or f"{args.master_addr}:{args.master_port}") == endpoint


def test_sbatch_gives_each_node_its_own_machine_rank(tmp_path):
    """configs/slurm/train.sbatch, run with stand-ins for srun / scontrol / accelerate: SLURM_NODEID is expanded
    on each node (0 and 1), not once on the batch host, and the multi-node config it names exists."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "scontrol").write_text("#!/bin/bash\nprintf 'node-a\\nnode-b\\n'\n")
    (fake / "srun").write_text('#!/bin/bash\nfor id in 0 1; do SLURM_NODEID=$id "$@" || exit 1; done\n')
    (fake / "accelerate").write_text('#!/bin/bash\necho "ACCELERATE $*"\n')
    for tool in fake.iterdir():
        tool.chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}", "VIRTUAL_ENV": "set-by-test", "SLURM_NODEID": "0",
           "SLURM_JOB_NODELIST": "node-[a-b]", "SLURM_NNODES": "2", "SLURM_SUBMIT_DIR": str(ROOT)}
    proc = subprocess.run(["bash", str(SBATCH)], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    calls = [line.split() for line in proc.stdout.splitlines() if line.startswith("ACCELERATE ")]
    assert len(calls) == 2, proc.stdout

    def option(call, name):
        return call[call.index(name) + 1]

    assert [option(c, "--machine_rank") for c in calls] == ["0", "1"]
    for call in calls:
        assert call[1] == "launch" and call[-1] == TRAIN_SCRIPT
        assert (ROOT / option(call, "--config_file")).is_file()
        assert option(call, "--main_process_ip") == "node-a"
        assert option(call, "--num_machines") == "2" and option(call, "--num_processes") == "8"
