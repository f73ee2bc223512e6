SHELL := /bin/bash
# Two commands for everything (see README.md):
#   make workshop   set up .venv and run the five notebooks headless (profile: auto)
#   make test       set up .venv and run the unit tests + every notebook (cpu profile, offline)
# and, the day before the workshop on the machine you will use:
#   make preflight  what on this machine would stop the workshop (Python, driver, GPU, compiler, disk, Hub), read-only
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: setup preflight workshop test test-fast test-hosted browser-test check-gpu benchmark device-kit lab tiny-model clean-outputs

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) utils/python_version.py  # Python >= 3.11 before anything is created (pip would only say "No matching distribution")
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -m pip install --quiet -r requirements.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/python -m pip install --quiet --no-deps -e . 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/python -c "import utils, torch, transformers, trl, peft; print('setup ok: torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__, '| peft', peft.__version__)"
	touch $(STAMP)

# Read-only checks with a Japanese ✓/✗ table and the fix for each ✗ (utils/preflight.py); exit code 1 if a ✗.
# Works before `make setup` too (then torch is reported missing): uses .venv's Python when there is one.
preflight:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m utils.preflight; else $(PYTHON) -m utils.preflight; fi

# The whole workshop, headless: executed notebooks + results.json under outputs/<profile>/.
workshop: setup
	$(BIN)/python scripts/run_workshop.py

# Unit tests, then nbmake over every notebook in order, offline in the cpu profile; then the guard that the
# notebooks' own results.json shows content learning (scripts/check_results.py), not just format.
# Test-only tools (Playwright for tests/test_browser.py, which drives Debian's chromium: apt-get install chromium).
$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	touch $(DEV_STAMP)

test: setup $(DEV_STAMP)
	start=$$(date +%s); \
	HF_HUB_OFFLINE=1 WORKSHOP_PROFILE=cpu $(BIN)/python -m pytest tests notebooks -m "not hosted" --nbmake --nbmake-timeout=1200 -p no:cacheprovider --durations=8 \
	&& $(BIN)/python scripts/check_results.py outputs/cpu/results.json --since $$start

# The unit tests that run no notebook and start no training process (tests marked `slow` or `hosted` left out):
# about a minute, for checking a change before `make test`.
test-fast: setup $(DEV_STAMP)
	HF_HUB_OFFLINE=1 WORKSHOP_PROFILE=cpu $(BIN)/python -m pytest tests -m "not slow and not hosted" -p no:cacheprovider -q --durations=5

# The Colab / Kaggle path as participants meet it (tests marked `hosted`): the hosted setup in a fresh venv, and the
# all-in-one notebook in a replica of Colab's runtime (hosted/platforms/colab.txt; pandas imported before the first
# cell). pip installs from the package index; about 6 minutes. .ci/run runs it after `make test`.
test-hosted: setup $(DEV_STAMP)
	$(BIN)/python -m pytest tests -m hosted -p no:cacheprovider --durations=5

# 01, 02 and 04 run through JupyterLab's UI in headless Chromium ("Restart Kernel and Run All Cells"): errors,
# widgets, images, popups, the kernel; screenshots and browser_check.json under outputs/browser/ (several minutes).
browser-test: setup $(DEV_STAMP)
	$(BIN)/python scripts/browser_check.py --out outputs/browser

# GPU VM preflight: every notebook in the gpu profile (4-bit NF4, bf16/fp16, CUDA) with the bundled tiny model, offline.
# scripts/device_day.sh runs this target on the lent GPU machine with its own Python (BIN=...) and output folder;
# CHECK_GPU_PROFILE=cpu is its rehearsal on a machine without CUDA.
CHECK_GPU_OUT ?= $(CURDIR)/outputs/check-gpu
CHECK_GPU_PROFILE ?= gpu
check-gpu: setup
	HF_HUB_OFFLINE=1 WORKSHOP_PROFILE=$(CHECK_GPU_PROFILE) WORKSHOP_BASE_MODEL=$(CURDIR)/models/tiny-ja-mistral WORKSHOP_OUTPUT_DIR=$(CHECK_GPU_OUT) \
		$(BIN)/python -m pytest notebooks --nbmake --nbmake-timeout=1200 -p no:cacheprovider --durations=8

# 7B-shape QLoRA speed and memory on this machine's GPU (README: GPU ベンチマーク).
benchmark: setup
	$(BIN)/python benchmarks/gpu_qlora.py --variants profile,no-gc,8x2,padding-free,fp16

# The interactive workshop: JupyterLab on localhost only; over SSH it prints the port-forwarding command (scripts/lab.py).
lab: setup
	$(BIN)/python scripts/lab.py

# The pinned stack packed for the lent GPU machine, which reaches no package index (scripts/device_kit.py):
# .whl/dict.tar.xz and .whl/stack.tar.xz, each within the 64 MiB carry limit beside the tree; scripts/device_day.sh
# unpacks and runs them there.
device-kit: setup
	$(BIN)/python scripts/device_kit.py

# Rebuild the bundled tiny model (about 1.5 hours on 2 CPU cores; minutes on a GPU).
tiny-model: setup
	$(BIN)/python scripts/build_tiny_model.py

clean-outputs:
	rm -rf outputs/
