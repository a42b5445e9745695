# The two commands a newcomer needs:
#   make demo   set up (if needed) and run the main job: GRPO on the embedded SmolLM2-135M
#   make test   set up (if needed) and run the test suite
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rltk-installed

.PHONY: setup demo test test-fast bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/rltk demo

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=20 tests --doctest-modules rltk rewards evals

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not ray and not netns" tests

clean:
	rm -rf $(VENV) runs .pytest_cache
