# `make demo` and `make test` do all the setup: a .venv with torch (CPU wheel, pinned first so pip never pulls a
# CUDA build), the package with its test extras, and Debian's graphviz when `dot` is missing and we are root.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-all typecheck pytest pytest-all docs bench train train-torchrl train-sac train-recurrent clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	@if ! command -v dot >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) \
	      || echo "warning: could not install graphviz; rendering will write .dot files only"; \
	  else echo "note: graphviz's 'dot' is missing (apt-get install graphviz); rendering will write .dot only"; fi; \
	fi
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m perceptspec.examples.demo

typecheck: $(STAMP)
	$(PY) -m mypy

# two workers (this machine's cores), each taking whole test files: a file's module-scoped fixtures, warm interpreter
# (tests/warm_python.py) and child processes are set up once (pytest 9 ignores xdist 3.8's xdist_group grouping)
XDIST := -n 2 --dist loadfile

# the fast suite (under two minutes here): Hypothesis's `default` profile, long tests (marked slow) left out
pytest: $(STAMP)
	$(PY) -m pytest -q $(XDIST) -m "not slow"

# mypy beside pytest: a cold mypy cache (a fresh clone) costs about 25 s of one core
test: $(STAMP)
	@$(MAKE) --no-print-directory -j2 typecheck pytest

# everything: the slow tests too (training, DDP on Example 2, inductor compiles of every example), the
# `thorough` Hypothesis profile (2,000 fresh examples per property), then the documentation site (make docs); tests
# spread one by one (`worksteal`): the long ones sit in a few files, which whole-file scheduling leaves to one worker
pytest-all: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist worksteal --hypothesis-profile=thorough

test-all: $(STAMP)
	@$(MAKE) --no-print-directory -j2 typecheck pytest-all
	@$(MAKE) --no-print-directory docs

# the documentation site (docs/, mkdocs.yml) into site/, every warning an error; installs the `docs` extra if missing
docs: $(STAMP)
	$(PY) -c "import mkdocs, material, mkdocstrings_handlers.python" 2>/dev/null || $(PY) -m pip install --quiet -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

bench: $(STAMP)
	$(PY) -m benchmarks.forward

# PPO (Stable-Baselines3) on CartPole-v1 with perceptspec networks until a mean return of 475 (docs/training.md);
# a progress bar, and the learning curve in out/train_cartpole/learning_curve.png
train: $(STAMP)
	$(PY) -c "import stable_baselines3, tqdm, matplotlib" 2>/dev/null || $(PY) -m pip install --quiet -e '.[sb3]'
	$(PY) -m perceptspec.examples.train_cartpole

# PPO in TorchRL (a collector, ClipPPOLoss with its own GAE) on CartPole-v1 with the same networks until solved
train-torchrl: $(STAMP)
	$(PY) -c "import torchrl, tqdm, matplotlib" 2>/dev/null || $(PY) -m pip install --quiet -e '.[torchrl]'
	$(PY) -m perceptspec.examples.train_cartpole_torchrl

# SAC (Stable-Baselines3) on Pendulum-v1 with perceptspec networks until a mean return of -250 (docs/training.md)
train-sac: $(STAMP)
	$(PY) -c "import stable_baselines3, tqdm, matplotlib" 2>/dev/null || $(PY) -m pip install --quiet -e '.[sb3]'
	$(PY) -m perceptspec.examples.train_pendulum_sac

# RecurrentPPO (sb3-contrib) with StatefulLSTM networks on CartPole-v1 without velocities until a mean return of 300,
# then PPO with a feed-forward policy for as many steps, which stays below 150 (docs/training.md)
train-recurrent: $(STAMP)
	$(PY) -c "import sb3_contrib, tqdm, matplotlib" 2>/dev/null || $(PY) -m pip install --quiet -e '.[sb3]'
	$(PY) -m perceptspec.examples.train_recurrent_cartpole

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache
