# cos-jax: `make test` and `make demo` work on a fresh machine (they build .venv themselves).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# 8 fake CPU devices so the sharding tests run without accelerators.
TEST_ENV := JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=8

.PHONY: test demo selfcheck lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff format --check cos_jax tests scripts
	$(VENV)/bin/ruff check cos_jax tests scripts
	$(TEST_ENV) $(PY) -m pytest -q -n 2 --dist worksteal tests

demo: $(STAMP)
	JAX_PLATFORMS=cpu $(VENV)/bin/cos-jax demo

selfcheck: $(STAMP)
	JAX_PLATFORMS=cpu $(VENV)/bin/cos-jax selfcheck

lint: $(STAMP)
	$(VENV)/bin/ruff format cos_jax tests scripts
	$(VENV)/bin/ruff check --fix cos_jax tests scripts

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
