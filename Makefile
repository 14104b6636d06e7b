# `make run` serves the API on the embedded defaults; `make test` runs the whole suite
# (the SQLite pass and the MariaDB pass, side by side). Both set up the virtual environment first: `make run` with the
# runtime's requirements only (plus the MariaDB driver when DATABASE_URL names it), `make test`
# with everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
MARIADB_TEST_URL ?= mysql+mysqldb://root@127.0.0.1:3306/madang_test?charset=utf8mb4
PYTEST_ARGS ?=
# `make bench` / `make bench-mariadb`: the board benchmark (bench/run.py); the MariaDB database is
# dropped and created again (BENCH_ARGS=--reuse-seeded keeps one an earlier run seeded), so it must
# be a throwaway one named madang_bench...
MARIADB_BENCH_URL ?= mysql+mysqldb://root@127.0.0.1:3306/madang_bench?charset=utf8mb4
BENCH_ARGS ?=
# `make soak`: the soak test (bench/soak.py), two API processes + a Celery worker on MariaDB and
# Redis under a mixed load, then the database checked; the database is dropped and created again,
# so it must be a throwaway one named madang_soak...; SOAK_ARGS for options (--seconds 120, ...).
MARIADB_SOAK_URL ?= mysql+pymysql://root@127.0.0.1:3306/madang_soak?charset=utf8mb4
SOAK_ARGS ?=

.PHONY: install install-runtime migrate run test test-sqlite test-mariadb bench bench-mariadb bench-ai bench-ai-scale eval-ai bench-train soak lint format clean

# Each requirement set is installed once, and again only when its file changes (a stamp file
# each): `make test` after `make run` installs the rest, `make run` after `make test` nothing.
#   requirements.txt          the runtime: pure Python and binary wheels, no C compiler
#   requirements-mariadb.txt  mysqlclient, the driver of mysql+mysqldb:// URLs (compiled)
#   requirements-dev.txt      both, and the test and lint tools
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(BIN)/.installed-runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

# mysqlclient is compiled when pip installs it, against the MariaDB C client library that
# pkg-config finds: Debian's libmariadb-dev (and pkg-config), installed with apt when missing (as
# root, or through sudo); nothing is done when they are there.
MARIADB_CLIENT_PACKAGES := libmariadb-dev pkg-config
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BIN)/.installed-mariadb: requirements-mariadb.txt | $(BIN)/python
	@pkg-config --exists mysqlclient 2>/dev/null || pkg-config --exists mariadb 2>/dev/null \
	|| pkg-config --exists libmariadb 2>/dev/null || { \
	  command -v apt-get >/dev/null || { echo "install the MariaDB C client library and its headers" \
	    "(mysqlclient builds against them; see README, MariaDB or MySQL)" >&2; exit 1; }; \
	  echo "installing $(MARIADB_CLIENT_PACKAGES) with apt (mysqlclient builds against them)"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(MARIADB_CLIENT_PACKAGES) >/dev/null \
	  || { $(SUDO) apt-get update -qq && \
	       $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(MARIADB_CLIENT_PACKAGES) >/dev/null; }; }
	$(BIN)/python -m pip install -q -r requirements-mariadb.txt
	touch $@

$(BIN)/.installed-dev: requirements-dev.txt $(BIN)/.installed-runtime $(BIN)/.installed-mariadb
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

# Everything: what `make test`, `make lint` and the benchmarks use.
install: $(BIN)/.installed-dev

# What the server needs: the runtime, and the MariaDB driver if the DATABASE_URL the app will read
# (the environment, `make run DATABASE_URL=...`, or .env, as config.py reads them) is a
# mysql+mysqldb:// one (a bare mysql:// or mariadb:// selects that driver too).
# Settings the app would refuse stop here, with the app's own one-line message.
install-runtime: $(BIN)/.installed-runtime
	@$(BIN)/python -c 'import sys; from sqlalchemy.engine import make_url; from config import settings; \
	  sys.exit(3 if make_url(settings.DATABASE_URL).get_driver_name() == "mysqldb" else 0)'; \
	status=$$?; if [ $$status = 3 ]; then $(MAKE) --no-print-directory $(BIN)/.installed-mariadb; \
	else exit $$status; fi

migrate: install-runtime
	$(BIN)/alembic upgrade head

# cli.py serve: uvicorn without its own X-Forwarded-For trust (TRUSTED_PROXIES decides), WebSocket
# messages capped at 64 KiB.
run: migrate
	$(BIN)/python cli.py serve --host $(HOST) --port $(PORT)

# The two passes run side by side: each is mostly one Python process waiting on its database, its
# servers and its model processes, so together they take about the time of the longer one (their
# Redis keys, channels, ports and databases are their own). Each pass's output comes when it ends.
# A few slow tests that no database changes (marked `either_pass`) run in the MariaDB pass, the
# shorter one, so that the two end together; each pass alone runs what it always did.
test: install
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-mariadb \
	  SQLITE_SELECT='-m "not either_pass"' MARIADB_SELECT='-m "db or mariadb or either_pass"'

SQLITE_SELECT ?=
MARIADB_SELECT ?= -m "db or mariadb"

# The short soak (tests/test_soak.py) runs on MariaDB and Redis whatever the pass; once is enough.
test-sqlite: install
	$(BIN)/pytest --ignore=tests/test_soak.py $(SQLITE_SELECT) $(PYTEST_ARGS)

# Only the tests whose behaviour depends on the database (marked `db`) and those that need MariaDB
# (`mariadb`, the soak among them); tests/test_markers.py fails for a test that should be marked.
test-mariadb: install
	TEST_DATABASE_URL='$(MARIADB_TEST_URL)' $(BIN)/pytest $(MARIADB_SELECT) $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-mariadb: install
	$(BIN)/python -m bench --database-url '$(MARIADB_BENCH_URL)' $(BENCH_ARGS)

soak: install
	$(BIN)/python -m bench.soak --database-url '$(MARIADB_SOAK_URL)' $(SOAK_ARGS)

# The AI evaluation (bench/eval_ai.py): each sentence encoder on the project's bilingual set
# (bench/ai_eval_set.json): similar-posts top-1 and hit@3, cross-language, board-suggest accuracy.
eval-ai: install
	$(BIN)/python -m bench.eval_ai $(EVAL_AI_ARGS)

# similar-posts' cost per batch at 20,000 and 200,000 posts (bench/ai_scale.py): reading the
# candidates' vectors and scoring them.
bench-ai-scale: install
	$(BIN)/python -m bench.ai_scale $(AI_SCALE_ARGS)

# The AI benchmark (bench/ai_bench.py): raw model vs served through HTTP; AI_BENCH_ARGS for options.
bench-ai: install
	$(BIN)/python -m bench.ai_bench $(AI_BENCH_ARGS)

# The training benchmark (bench/train_bench.py): training time on the sample data set, and a lone
# similar-posts request's latency idle and while a training job runs; TRAIN_BENCH_ARGS for options.
bench-train: install
	$(BIN)/python -m bench.train_bench $(TRAIN_BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache .mypy_cache
