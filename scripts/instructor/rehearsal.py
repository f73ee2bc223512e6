#!/usr/bin/env python
"""The instructor's GPU rehearsal: one command, the day before, on the venue's machine, within a time budget.

    make rehearsal                               # 30 minutes, gpu profile, report under outputs/rehearsal/
    make rehearsal REHEARSAL_MINUTES=15 REHEARSAL_OUT=~/rehearsal-venue-a

Steps, in priority order, each bounded by what is left of the budget (a step that no longer fits is skipped and
the report says why):

1. ``machine``: Python, torch and its CUDA build, the GPU, ``nvidia-smi``, free disk (machine.txt);
2. ``preflight``: ``make preflight``'s table (preflight.txt, preflight.json);
3. ``notebooks``: ``make check-gpu``, every notebook in the profile with the bundled tiny model, offline, in the
   GPU's default precision (bf16 where the GPU has it); never the time the benchmark needs;
4. ``benchmark``: ``benchmarks/gpu_qlora.py``, the 7B shape's QLoRA step time, peak memory and generation speed;
5. ``notebooks_fp16``: ``make check-gpu`` again with ``WORKSHOP_COMPUTE_DTYPE=float16``: the T4 path (GPUs without
   bf16), checked on this GPU.

The report folder holds ``summary.md`` (a table: step, result, seconds, note, log; then the key figures: ROUGE-L of
each notebook run, the benchmark's s/step, tokens/s and peak memory), ``summary.json`` and each step's log. Exit code
0 when every step that applies ran and passed, 1 when one failed or timed out, 2 when the budget ran out first. With the cpu profile (``REHEARSAL_PROFILE=cpu``) it runs on a machine without a
GPU: the benchmark's tiny shape, no fp16 pass; that is how its tests check it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):  # run by its path: the repository root, for utils
    sys.path.insert(0, str(ROOT))
from utils.machine.processes import stop_group  # noqa: E402

# The benchmark's CPU smoke settings (tests/test_benchmarks.py runs the same)
CPU_BENCHMARK = ["--shape", "tiny-test", "--profile", "cpu", "--steps", "2", "--warmup-steps", "1", "--gen-prompts", "4",
                 "--gen-single", "2", "--gen-new-tokens", "8", "--set", "n_train=24", "--set", "max_length=256"]


STOP_GRACE = 15  # seconds a stopped step may take to end (SIGTERM, then SIGKILL after 10 s)


@dataclass
class Step:
    name: str
    what: str
    min_seconds: int  # skipped when less than this is left
    max_seconds: int  # its limit when the budget allows
    log: str
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    skip_reason: str = ""  # set when the step does not apply (the cpu profile's fp16 pass)


@dataclass
class Outcome:
    name: str
    what: str
    result: str  # "ok", "failed", "timed out", "skipped"
    seconds: float
    note: str
    log: str


def plan(profile: str, out: Path, notebooks: str, python: str) -> list[Step]:
    """The steps for a profile; on a GPU the limits fit a 30-minute budget with room for a slow 7B download-free build."""
    gpu = profile == "gpu"
    which = "ノートブック 01〜08" if notebooks == "notebooks" else f"ノートブック {notebooks}"
    make = ["make", "--no-print-directory", "-o", ".venv/.installed", "check-gpu", f"BIN={Path(python).parent}",
            f"CHECK_GPU_PROFILE={profile}", f"CHECK_GPU_NOTEBOOKS={notebooks}"]
    bench = [python, "benchmarks/gpu_qlora.py", "--variants", "profile", "--out", str(out / "benchmark.json"),
             "--work-dir", str(out / "work" / "benchmarks")] + ([] if gpu else CPU_BENCHMARK)
    return [
        Step("machine", "Python・torch・GPU・ディスク", 5, 60, "machine.txt", [python, "-m", "scripts.instructor.rehearsal",
                                                                       "--machine"]),
        Step("preflight", "make preflight (当日止まる原因の点検)", 5, 120, "preflight.txt",
             [python, "-m", "utils.classroom.preflight", "--json", str(out / "preflight.json")],
             {"WORKSHOP_PROFILE": profile}),
        Step("notebooks", f"{which} (同梱の小型モデル、GPU の既定の精度)", 60 if gpu else 20, 900 if gpu else 1500, "notebooks.log",
             make + [f"CHECK_GPU_OUT={out / 'work' / 'notebooks'}"]),
        Step("benchmark", "7B 形状の QLoRA: 1 step の秒数・ピークメモリ・生成速度" if gpu else "ベンチマーク (cpu: 小さな形状)",
             60 if gpu else 30, 600, "benchmark.log", bench),
        Step("notebooks_fp16", f"{which}を fp16 で (T4 など bf16 のない GPU の経路)", 60, 900, "notebooks_fp16.log",
             make + [f"CHECK_GPU_OUT={out / 'work' / 'notebooks_fp16'}"], {"WORKSHOP_COMPUTE_DTYPE": "float16"},
             "" if gpu else "fp16 の計算は GPU の経路 (cpu プロファイルでは行いません)"),
    ]


def limit_for(step: Step, steps: list[Step], left: float) -> int:
    """Seconds the step may use: its maximum, what is left, and never the minimum of the benchmark after it (the
    figures the rehearsal is for)."""
    reserve = 0
    if step.name == "notebooks":
        reserve = next(s.min_seconds for s in steps if s.name == "benchmark") + STOP_GRACE
    return int(min(step.max_seconds, left - reserve))


def run_step(step: Step, limit: int, out: Path) -> Outcome:
    log = out / step.log
    started = time.monotonic()
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"== {step.name} (limit {limit} s): {' '.join(step.command)}\n")
        handle.flush()
        # a session of its own: on timeout the whole tree stops (make -> pytest -> the notebook's kernel)
        proc = subprocess.Popen(step.command, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", **step.env},
                                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=limit)
            result = "ok" if code == 0 else "failed"
            note = "" if code == 0 else f"exit code {code}: {last_line(log)}"
        except subprocess.TimeoutExpired:
            stop_group(proc, grace=STOP_GRACE - 5)
            result, note = "timed out", f"{limit} 秒の上限で止めました"
    return Outcome(step.name, step.what, result, round(time.monotonic() - started, 1), note, step.log)


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR", "E "))]
    return re.sub(r"\x1b\[[0-9;]*m", "", (failed or lines or [""])[-1])[:200]  # without pytest's colours


def rehearse(profile: str, minutes: float, out: Path, notebooks: str = "notebooks", python: str = sys.executable,
             only: list[str] | None = None) -> list[Outcome]:
    out.mkdir(parents=True, exist_ok=True)
    steps = plan(profile, out.resolve(), notebooks, python)
    deadline = time.monotonic() + minutes * 60
    outcomes = []
    for step in steps:
        left = deadline - time.monotonic()
        if only and step.name not in only:
            outcomes.append(Outcome(step.name, step.what, "skipped", 0, "選ばれていません (--only)", ""))
        elif step.skip_reason:
            outcomes.append(Outcome(step.name, step.what, "skipped", 0, step.skip_reason, ""))
        elif (limit := limit_for(step, steps, left)) < step.min_seconds:
            outcomes.append(Outcome(step.name, step.what, "no time", 0,
                                    f"残り {max(left, 0):.0f} 秒 (この手順には {step.min_seconds} 秒以上)", ""))
        else:
            print(f"== {step.name}: 上限 {limit} 秒 ({step.what})", flush=True)
            outcomes.append(run_step(step, limit, out))
            print(f"   {outcomes[-1].result}, {outcomes[-1].seconds:.0f} 秒 {outcomes[-1].note}", flush=True)
    write_report(out, profile, minutes, outcomes)
    return outcomes


def figures(out: Path) -> list[str]:
    """The key figures of the runs, read from their own files."""
    lines = []
    for name in ("notebooks", "notebooks_fp16"):
        path = results_file(out / "work" / name)
        if path:
            m = json.loads(path.read_text(encoding="utf-8"))["metrics"]["rougeL"]
            lines.append(f"- {name}: ROUGE-L {m['before']:.1f} → {m['after']:.1f} "
                         f"(差の 95% 区間 [{m['ci_low']:+.1f}, {m['ci_high']:+.1f}]) — {path.relative_to(out)}")
    bench = out / "benchmark.json"
    if bench.is_file():
        for run in json.loads(bench.read_text(encoding="utf-8")).get("runs", []):
            train = run.get("train") or {}
            if "seconds_per_step" in train:
                memory = f"、ピーク {train['peak_reserved_gib']:.1f} GiB (reserved)" if "peak_reserved_gib" in train else ""
                lines.append(f"- benchmark {run.get('variant')}: {train['seconds_per_step']:.2f} 秒/step、"
                             f"{train['tokens_per_second']:,.0f} tokens/秒{memory}")
    return lines


def results_file(base: Path) -> Path | None:
    """The results.json notebook 05 wrote under a check-gpu output folder (in its profile's folder)."""
    found = sorted(base.glob("*/results.json")) + sorted(base.glob("results.json"))
    return found[0] if found else None


MARK = {"ok": "✓", "failed": "✗", "timed out": "✗ (時間切れ)", "skipped": "—", "no time": "— (時間切れ)"}


def exit_code(outcomes: list[Outcome]) -> int:
    """0: every step that applies ran and passed; 1: a step failed or timed out; 2: the budget ran out before a step."""
    if any(o.result in ("failed", "timed out") for o in outcomes):
        return 1
    return 2 if any(o.result == "no time" for o in outcomes) else 0


def write_report(out: Path, profile: str, minutes: float, outcomes: list[Outcome]) -> None:
    when = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    code, key_figures = exit_code(outcomes), figures(out)
    rows = [f"| {o.name} | {MARK[o.result]} | {o.seconds:.0f} | {o.what}{'。' + o.note if o.note else ''} | "
            f"{o.log} |" for o in outcomes]
    text = "\n".join([
        f"# GPU リハーサル ({socket.gethostname()}, {when})", "",
        f"プロファイル `{profile}`、時間の予算 {minutes:g} 分、合計 {sum(o.seconds for o in outcomes):.0f} 秒。"
        + {0: "行うべき手順はすべて走り、通りました。",
           1: "**失敗した手順があります**: 表のメモとログの最後を確認してください。",
           2: "**時間が足りず走らなかった手順があります**: REHEARSAL_MINUTES を増やして、もう一度。"}[code], "",
        "| 手順 | 結果 | 秒 | 内容 | ログ |", "|---|---|---|---|---|", *rows, "",
        "## 主な数字", "", *(key_figures or ["- (数字を出す手順が走っていません)"]), "",
    ])
    (out / "summary.md").write_text(text, encoding="utf-8")
    (out / "summary.json").write_text(json.dumps({"profile": profile, "budget_minutes": minutes, "when": when, "exit_code": code,
                                                 "steps": [asdict(o) for o in outcomes], "figures": key_figures},
                                                indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def machine_report() -> None:
    """Printed into machine.txt by the first step."""
    print("python", platform.python_version(), sys.executable)
    try:
        import torch

        print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            print("gpu", torch.cuda.get_device_name(0), f"{props.total_memory / 2**30:.1f} GiB",
                  "capability", torch.cuda.get_device_capability(0), "bf16", torch.cuda.is_bf16_supported())
    except Exception as error:  # the report goes on: a broken torch is itself the finding
        print("torch IMPORT FAILED:", repr(error))
    smi = shutil.which("nvidia-smi")
    print(subprocess.run([smi], capture_output=True, text=True).stdout if smi else "nvidia-smi: not on PATH")
    usage = shutil.disk_usage(ROOT)
    print(f"disk free under {ROOT}: {usage.free / 2**30:.1f} GiB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="gpu", choices=("gpu", "cpu"))
    ap.add_argument("--minutes", type=float, default=30, help="the time budget for all steps")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "rehearsal")
    ap.add_argument("--notebooks", default="notebooks", help="notebooks to run (a folder or files; default all)")
    ap.add_argument("--only", nargs="+", metavar="STEP", help="run these steps only (machine preflight notebooks "
                                                               "benchmark notebooks_fp16)")
    ap.add_argument("--machine", action="store_true", help=argparse.SUPPRESS)  # the first step, in its own process
    args = ap.parse_args(argv)
    names = [step.name for step in plan(args.profile, args.out, args.notebooks, sys.executable)]
    if args.only and set(args.only) - set(names):
        ap.error(f"--only: unknown step {sorted(set(args.only) - set(names))}; the steps are {' '.join(names)}")
    if args.machine:
        machine_report()
        return 0
    outcomes = rehearse(args.profile, args.minutes, args.out, args.notebooks, only=args.only)
    print((args.out / "summary.md").read_text(encoding="utf-8"))
    return exit_code(outcomes)


if __name__ == "__main__":
    sys.exit(main())
