SHELL := /bin/bash
# Two commands for everything (see README.md):
#   make workshop   set up .venv and run the five notebooks headless (profile: auto)
#   make test       set up .venv and run the unit tests + every notebook (cpu profile, offline)
# and, the day before the workshop on the machine you will use:
#   make preflight  what on this machine would stop the workshop (Python, driver, GPU, compiler, disk, Hub), read-only
#   make rehearsal  preflight, every notebook in bf16 and fp16, the 7B benchmark, within a time budget: a report folder
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: setup preflight rehearsal workshop test test-fast test-extras browser-test check-gpu benchmark wheelhouse install-offline lab tiny-model clean-outputs

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) utils/machine/python_version.py  # Python >= 3.11 before anything is created (pip would only say "No matching distribution")
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -m pip install --quiet -r requirements.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/python -m pip install --quiet --no-deps -e . 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/python -c "import utils, torch, transformers, trl, peft; print('setup ok: torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__, '| peft', peft.__version__)"
	touch $(STAMP)

# Read-only checks with a Japanese ✓/✗ table and the fix for each ✗ (utils/classroom/preflight.py); exit code 1 if a ✗.
# Works before `make setup` too (then torch is reported missing): uses .venv's Python when there is one.
preflight:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m utils.classroom.preflight; else $(PYTHON) -m utils.classroom.preflight; fi

# The whole workshop, headless: executed notebooks + results.json under outputs/<profile>/.
workshop: setup
	$(BIN)/python scripts/participant/run_workshop.py

# Unit tests, then nbmake over every notebook in order, offline in the cpu profile; then the guard that the
# notebooks' own results.json shows content learning (scripts/ci/check_results.py), not just format.
# Test-only tools (Playwright for tests/test_browser.py, which drives Debian's chromium: apt-get install chromium).
$(DEV_STAMP): $(STAMP) requirements-dev.txt requirements-serving.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	touch $(DEV_STAMP)

test: setup $(DEV_STAMP)
	start=$$(date +%s); \
	HF_HUB_OFFLINE=1 WORKSHOP_PROFILE=cpu $(BIN)/python -m pytest tests notebooks -m "not hosted and not network and not extras" --ignore=$(EXTRAS_NOTEBOOKS) --nbmake --nbmake-timeout=1200 -p no:cacheprovider --durations=8 \
	&& $(BIN)/python scripts/ci/check_results.py outputs/cpu/results.json --since $$start

# The unit tests that run no notebook and start no training process (tests marked `slow` or `hosted` left out):
# about a minute, for checking a change before `make test`.
test-fast: setup $(DEV_STAMP)
	HF_HUB_OFFLINE=1 WORKSHOP_PROFILE=cpu $(BIN)/python -m pytest tests -m "not slow and not hosted and not network and not extras" -p no:cacheprovider -q --durations=5

# What needs more than the pinned core (tests marked `hosted`, `network` or `extras`, and notebook 09): the Colab / Kaggle
# path as participants meet it (the hosted setup in a fresh venv; the all-in-one notebook in a replica of Colab's
# runtime, hosted/platforms/colab.txt), the offline wheelhouse (built for another Python and platform; a fresh venv
# installs from its parts with no index), and the serving extra (requirements-serving.txt): notebook 09 (it reads
# 05's outputs: run after `make test`), the endpoint test and the try-it view in the browser. About 12 minutes;
# .ci/run runs it after `make test`.
EXTRAS_NOTEBOOKS := notebooks/09_chat_format_and_serving.ipynb
test-extras: setup $(DEV_STAMP)
	$(BIN)/python -m pytest tests -m "hosted or network or extras" -p no:cacheprovider --durations=5
	start=$$(date +%s); \
	HF_HUB_OFFLINE=1 WORKSHOP_PROFILE=cpu $(BIN)/python -m pytest $(EXTRAS_NOTEBOOKS) --nbmake --nbmake-timeout=1200 -p no:cacheprovider --durations=3 \
	&& $(BIN)/python scripts/ci/check_results.py --chat outputs/cpu/chat/results.json --since $$start

# 01, 02 and 04 run through JupyterLab's UI in headless Chromium ("Restart Kernel and Run All Cells"): errors,
# widgets, images, popups, the kernel; screenshots and browser_check.json under outputs/browser/ (several minutes).
browser-test: setup $(DEV_STAMP)
	$(BIN)/python scripts/ci/browser_check.py --out outputs/browser

# GPU VM preflight: notebooks 01-08 in the gpu profile (4-bit NF4, bf16/fp16, CUDA) with the bundled tiny model, offline.
# make rehearsal runs it with its own output folder; CHECK_GPU_PROFILE=cpu runs the same on a machine without CUDA,
# CHECK_GPU_NOTEBOOKS picks notebooks (default: all).
CHECK_GPU_OUT ?= $(CURDIR)/outputs/check-gpu
CHECK_GPU_PROFILE ?= gpu
CHECK_GPU_NOTEBOOKS ?= notebooks
check-gpu: setup
	HF_HUB_OFFLINE=1 WORKSHOP_PROFILE=$(CHECK_GPU_PROFILE) WORKSHOP_BASE_MODEL=$(CURDIR)/models/tiny-ja-mistral WORKSHOP_OUTPUT_DIR=$(CHECK_GPU_OUT) \
		$(BIN)/python -m pytest $(CHECK_GPU_NOTEBOOKS) --ignore=$(EXTRAS_NOTEBOOKS) --nbmake --nbmake-timeout=1200 -p no:cacheprovider --durations=8

# The instructor's rehearsal on the venue's GPU machine, the day before (scripts/instructor/rehearsal.py,
# docs/gpu-vm.md): machine, preflight, check-gpu in bf16 and in fp16 (the T4 path), the 7B benchmark, each step within
# what is left of REHEARSAL_MINUTES; summary.md, summary.json and the logs under REHEARSAL_OUT. Exit code 1 if a step failed.
REHEARSAL_MINUTES ?= 30
REHEARSAL_OUT ?= $(CURDIR)/outputs/rehearsal
rehearsal: setup
	$(BIN)/python -m scripts.instructor.rehearsal --minutes $(REHEARSAL_MINUTES) --out $(REHEARSAL_OUT) \
		--profile $(CHECK_GPU_PROFILE) --notebooks $(CHECK_GPU_NOTEBOOKS)

# 7B-shape QLoRA speed and memory on this machine's GPU (README: GPU ベンチマーク).
benchmark: setup
	$(BIN)/python benchmarks/gpu_qlora.py --variants profile,no-gc,8x2,padding-free,fp16

# The interactive workshop: JupyterLab on localhost only; over SSH it prints the port-forwarding command (scripts/participant/lab.py).
lab: setup
	$(BIN)/python scripts/participant/lab.py

# Offline install for a GPU machine without internet access (scripts/instructor/wheelhouse.py, docs/offline-install.md).
# Here: the pinned stack as wheels for the target's Python and platform, less the torch family (the target keeps its
# own CUDA torch) and, with WHEELHOUSE_FREEZE (the target's `pip freeze`), less what it has at the pin; with
# WHEELHOUSE_PART_MIB, also in .tar parts of at most that size. There: `make install-offline WHEELHOUSE=<folder>`
# creates .venv (seeing the system's torch) and installs with `pip install --no-index --find-links`.
WHEELHOUSE ?= wheelhouse
WHEELHOUSE_PYTHON ?=
WHEELHOUSE_PLATFORM ?= manylinux_2_28_x86_64
WHEELHOUSE_FREEZE ?=
WHEELHOUSE_PART_MIB ?= 0
wheelhouse: setup
	$(BIN)/python -m scripts.instructor.wheelhouse build --out $(WHEELHOUSE) --platform $(WHEELHOUSE_PLATFORM) \
		$(if $(WHEELHOUSE_PYTHON),--python-version $(WHEELHOUSE_PYTHON)) $(if $(WHEELHOUSE_FREEZE),--target-freeze $(WHEELHOUSE_FREEZE)) \
		--part-mib $(WHEELHOUSE_PART_MIB)

install-offline:
	@$(PYTHON) utils/machine/python_version.py
	$(PYTHON) -m scripts.instructor.wheelhouse install $(WHEELHOUSE) --venv $(VENV)
	$(BIN)/python -c "import utils, torch, transformers, trl, peft; print('setup ok (offline): torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__, '| peft', peft.__version__)"
	touch $(STAMP)

# Rebuild the bundled tiny model (about 1.5 hours on 2 CPU cores; minutes on a GPU).
tiny-model: setup
	$(BIN)/python scripts/maintainer/build_tiny_model.py

clean-outputs:
	rm -rf outputs/
