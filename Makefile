# Entry points. Every target first makes sure the machine is set up (idempotent, quick when done).
SHELL := /bin/bash
.DEFAULT_GOAL := help
RUN := source tools/env.sh &&

.PHONY: help setup demo test unit integration bench clean lock lint prune

help:
	@echo "make demo   - set up (Debian ROS packages, .venv, catkin workspace) and run the main demo (ARGS=\"--frames 6\": options of scripts/intradp_demo)"
	@echo "make test   - set up and run the unit tests and every rostest suite"
	@echo "make unit / make integration - one half of the tests"
	@echo "make bench  - set up and run the benchmarks (ARGS=--quick: fewer frames; ARGS=\"--only engine\": ROS-free part)"
	@echo "make setup  - only the set-up"
	@echo "make lock   - regenerate constraints.txt (the lock of every Python package) from requirements.txt"
	@echo "make lint   - ruff check, ruff format --check and mypy (strict on intradp_ros/core), as in make test"
	@echo "make prune  - remove venvs (~5.8 GB each) and workspaces no existing clone uses (DRY=1: only list)"

setup:
	@bash tools/setup_env.sh

demo: setup
	@$(RUN) bash tools/demo.sh $(ARGS)

test: setup
	@$(RUN) bash tools/run_tests.sh all

unit: setup
	@$(RUN) bash tools/run_tests.sh unit

integration: setup
	@$(RUN) bash tools/run_tests.sh integration

# Not yet part of `make test`: switched on after the wave-2 branches merge (see pyproject.toml).
lint: setup
	@$(RUN) bash tools/run_tests.sh lint

bench: setup
	@$(RUN) bash tools/bench.sh $(ARGS)

clean:
	source tools/paths.sh && rm -rf "$$IDP_WS" .venv .pytest_cache

lock:
	bash tools/lock_requirements.sh

prune:
	@bash tools/prune.sh

# Not part of `make test`: 2 robots for 30 min under a changing trace, memory/thread slopes (docs/scale_soak.md).
# ARGS="--minutes 3 --warmup-minutes 1" for a short version.
.PHONY: soak scale
soak: setup
	@$(RUN) python -m intradp_ros.eval.soak $(ARGS)
scale: setup
	@$(RUN) python -m intradp_ros.eval.bench_scale $(ARGS)
