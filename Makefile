# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
# test processes (pytest-xdist): the suite is measured with 2 on the 2-core machine
JOBS   ?= 2
VENV   := .venv
BIN    := $(VENV)/bin
export ORT_DISABLE_TELEMETRY := 1

.PHONY: demo test bench mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch/torchvision are pinned in pyproject.toml to the releases this machine caches locally
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[export,demo,plot,openvino]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed-demo

# The report tests render report.html in headless Chromium: Debian's package (browser
# downloads are not possible here), driven by Playwright from the dev extra.
$(VENV)/.installed-browser: | $(BIN)/python
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/clsbench demo

# Bytecode is cached even where the environment sets PYTHONDONTWRITEBYTECODE (this machine
# does): the suite starts hundreds of Python processes, each of which would otherwise compile
# clsbench and the tests from source again (about 0.2 s each here). __pycache__ is ignored.
test: $(VENV)/.installed-dev $(VENV)/.installed-browser
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n $(JOBS) --dist worksteal

# mutation testing by mutmut (not part of `make test`; docs/testing.md has its table and time)
mutate: $(VENV)/.installed-dev
	PYTHONDONTWRITEBYTECODE= $(BIN)/python scripts/mutmut_run.py --write

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
