# pubsock: `make run` starts the chat example, `make test` runs every gating check.
# Both set up what they need on a fresh machine (virtualenv, packages, browser, Autobahn).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed-stamp
SHARED := ../shared

.PHONY: run echo venv build test test-unit test-pure test-autobahn test-full typecheck browser brokers bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Rebuild the Cython extensions from the current sources (cheap when nothing changed).
build: venv
	$(PY) setup.py -q build_ext --inplace

run: build
	$(PY) examples/chat/app.py --port 3000

echo: build
	$(PY) examples/echo.py 9001

browser:
	bash scripts/install-browser.sh

# Redis and NATS servers for the scale-out tests (Debian packages; the tests start their own on free ports).
brokers:
	bash scripts/install-brokers.sh

typecheck: venv
	$(BIN)/mypy

test-unit: build browser brokers
	PYTHONASYNCIODEBUG=1 $(BIN)/pytest -q -p no:cacheprovider

test-pure: build browser brokers
	PUBSOCK_NO_EXTENSIONS=1 $(BIN)/pytest -q -p no:cacheprovider

test-autobahn: build
	$(PY) scripts/autobahn.py server
	$(PY) scripts/autobahn.py client

test: typecheck test-unit test-pure fuzz-smoke test-autobahn docs

# Slow suites: Autobahn with compression (groups 12 and 13) for server and client.
test-full: build
	$(PY) scripts/autobahn.py server --full
	$(PY) scripts/autobahn.py client --full
	$(MAKE) soak

# Soak (issue 7): 1,000 clients publishing, reconnecting, reading slowly and vanishing for 3 minutes (under 5 in all);
# checks delivery to healthy clients, no handler error, Python's memory and the server's RSS (less allocator caches) back to their baseline. tests/soak/soak.py.
.PHONY: soak
soak: build
	$(PY) tests/soak/soak.py --clients 1000 --seconds 180

bench: build
	bash bench/chat/setup.sh
	$(PY) bench/chat/run.py --clients 16 64 --size 16 1024 --seconds 10

clean:
	rm -rf build src/pubsock/*/_*_c.c src/pubsock/*/_*_c.py src/pubsock/*/*.so

# Fuzzing (atheris, fuzz/): the frame reader, the HTTP connection and handshake, the inflater.
# Crashers land in fuzz/crashers/ and replay in tests/fuzz_regressions. `fuzz`: 10 minutes each;
# `fuzz-smoke` (part of `test`): 12 s each, under a minute in all.
FUZZ_HARNESSES := frames http inflate
.PHONY: fuzz fuzz-smoke
fuzz: build
	for h in $(FUZZ_HARNESSES); do $(PY) fuzz/fuzz_$$h.py -max_total_time=600 -print_final_stats=1 || exit 1; done

fuzz-smoke: build
	mkdir -p build
	for h in $(FUZZ_HARNESSES); do \
	  if $(PY) fuzz/fuzz_$$h.py -max_total_time=12 -print_final_stats=1 >build/fuzz-$$h.log 2>&1; \
	  then grep -e '^Done' -e '^stat::' build/fuzz-$$h.log; else tail -n 60 build/fuzz-$$h.log; exit 1; fi; \
	done

# The documentation site (mkdocs.yml, docs/): built with --strict, so a warning (a broken link, a missing
# snippet, a docstring mkdocstrings cannot read) fails it. tests/docs runs every code sample.
DOCS_STAMP := $(VENV)/.docs-stamp
.PHONY: docs
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d build/site
