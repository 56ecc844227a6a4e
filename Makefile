# Two entry points, each sets itself up on a fresh machine:
#   make demo   train, export, verify parity, benchmark, write plots, demo/report.md, docs/results.md, docs/report.md
#   make test   lint, the full test suite, the docs site built strictly, then the runtime tests in a torch-free venv
# and one for readers: make docs builds the documentation site (MkDocs) into site/.
PYTHON ?= python3
VENV := .venv
RT_VENV := .venv-runtime
PY := $(VENV)/bin/python
RT_PY := $(RT_VENV)/bin/python

.PHONY: demo test lint test-full test-runtime docs docs-strict soak mcu clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,plot,dev,archive,docs]'
	touch $@

# The lean install: numpy + onnxruntime only (plus the test tools), no torch, no onnx.
$(RT_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(RT_VENV)
	$(RT_PY) -m pip install --quiet --upgrade pip
	$(RT_PY) -m pip install --quiet .
	du -sm $(RT_VENV) | awk '{print "runtime-only venv (numpy + onnxruntime): " $$1 " MB"}'
	$(RT_PY) -m pip install --quiet pytest hypothesis
	touch $@

demo: $(VENV)/.installed
	$(PY) -m ecgae.demo --results docs/results.md --readme README.md

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

test-full: $(VENV)/.installed
	$(VENV)/bin/pytest

test-runtime: $(VENV)/.installed $(RT_VENV)/.installed
	$(RT_PY) -m pip install --quiet --no-deps --force-reinstall . && rm -rf build
	rm -rf .test-bundles && $(PY) -m ecgae.export.fixtures .test-bundles
	cd tests && ECGAE_TEST_BUNDLES=../.test-bundles ../$(RT_VENV)/bin/pytest -p no:cacheprovider \
		--rootdir=. -c /dev/null --import-mode=importlib -q $(notdir $(wildcard tests/test_runtime*.py))

# The site is the project's own Markdown (docs/ and mkdocs.yml); --strict fails on a broken link or a page
# missing from the navigation.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --quiet --site-dir site

docs-strict: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --quiet --strict --site-dir site

test: lint test-full docs-strict test-runtime

# Long reliability run (minutes): 8 threads x 10,000 calls, 1,000,000 score calls, kill -9 during score and
# export, 100,000+ malformed inputs; make test runs the same checks at a small size.
soak: $(VENV)/.installed
	rm -rf .soak-bundles && $(PY) -m ecgae.export.fixtures .soak-bundles
	$(PY) -m ecgae.benchmarks.soak .soak-bundles --full --docs docs/measured/soak.md
	ECGAE_TEST_BUNDLES=.soak-bundles ECGAE_TAMPER_PER_FILE=2000 $(VENV)/bin/pytest -q tests/test_runtime_readers.py -k single_byte

# The bundle's graphs as C on an emulated Cortex-M4F (minutes): every arch's generated C built with
# arm-none-eabi-gcc, run in QEMU (MPS2 AN386) and compared with onnxruntime; flash, RAM and instructions per
# beat into $(MCU_OUT)/mcu.json and mcu.md, and the table into docs/measured/mcu.md (the docs include it).
# Installs Debian's cross compiler, newlib and QEMU when missing.
MCU_APT := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
MCU_OUT ?= mcu-report
mcu: $(VENV)/.installed
	dpkg -s $(MCU_APT) >/dev/null 2>&1 || (apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(MCU_APT))
	$(PY) -m ecgae.benchmarks.mcu --fixtures .mcu-bundles --out $(MCU_OUT) --docs docs/measured/mcu.md

clean:
	rm -rf $(VENV) $(RT_VENV) .test-bundles .soak-bundles .mcu-bundles $(MCU_OUT) demo site
