SHELL := /bin/bash
# Two commands for everything (see README.md):
#   make workshop   set up .venv and run the five notebooks headless (profile: auto)
#   make test       set up .venv and run the unit tests + every notebook (cpu profile, offline)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup workshop test lab tiny-model clean-outputs

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -m pip install --quiet -r requirements.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/python -m pip install --quiet --no-deps -e . 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/python -c "import utils, torch, transformers, trl, peft; print('setup ok: torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__, '| peft', peft.__version__)"
	touch $(STAMP)

# The whole workshop, headless: executed notebooks + results.json under outputs/<profile>/.
workshop: setup
	$(BIN)/python scripts/run_workshop.py

# Unit tests, then nbmake over every notebook in order, offline in the cpu profile.
test: setup
	HF_HUB_OFFLINE=1 WORKSHOP_PROFILE=cpu $(BIN)/python -m pytest tests notebooks --nbmake --nbmake-timeout=1200 -p no:cacheprovider --durations=8

# The interactive workshop.
lab: setup
	$(BIN)/jupyter lab notebooks/

# Rebuild the bundled tiny model (about 2 hours on 2 CPU cores; minutes on a GPU).
tiny-model: setup
	$(BIN)/python scripts/build_tiny_model.py

clean-outputs:
	rm -rf outputs/
