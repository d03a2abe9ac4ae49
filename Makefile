# Two commands set everything up on a fresh machine (see README):
#   make demo   - install, pull the default models, transcribe pyannote's two-speaker sample
#   make test   - install, pull the models, install the test tools, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= out

.PHONY: demo test setup models system-deps bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

models: setup
	$(BIN)/transcribe models pull

demo: models
	$(BIN)/transcribe run "$$($(BIN)/python -m transcribe.samples sample)" -o $(OUT) --overwrite
	@echo "Outputs in $(OUT)/:"; ls $(OUT)

system-deps:
	bash scripts/system-deps.sh

test: models system-deps
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
