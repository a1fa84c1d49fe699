# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=
SOAK_POSTGRES ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: install demo serve test lint format migration constraints audit bench soak

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: install  ## migrate a SQLite database under var/, load the demo data, serve on :8000
	$(BIN)/weft demo

serve: install
	$(BIN)/weft serve

test: install  ## the whole suite (PostgreSQL too when WEFT_TEST_DATABASE_URL is set)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; \
	exit $$status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install  ## every benchmark on SQLite and PostgreSQL (builds the reference dataset once)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } \
	  || { echo "wrk is needed: apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench.http sqlite postgresql
	$(BIN)/python -m bench.inprocess sqlite postgresql
	$(BIN)/python -m bench.budget
	$(BIN)/python -m bench.import_findings
	$(BIN)/python -m bench.webhooks

soak: install  ## 10 min of mixed reads, writes and webhook deliveries on PostgreSQL (not in CI); SOAK_ARGS="--minutes 1"
	$(BIN)/python -m bench.soak --postgres $(SOAK_POSTGRES) $(SOAK_ARGS)

audit: install  ## known vulnerabilities in the pinned dependencies (needs the PyPI JSON API)
	$(BIN)/pip-audit --progress-spinner off -r constraints.txt --no-deps --desc on

migration: install  ## autogenerate a migration: make migration m="what changed"
	$(BIN)/alembic revision --autogenerate -m "$(m)"

constraints: install  ## re-pin every dependency after changing pyproject.toml
	$(BIN)/python -m pip freeze --exclude-editable | grep -vi '^weft' > constraints.txt
