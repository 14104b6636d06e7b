# `make run` serves the API on the embedded defaults; `make test` runs the whole suite
# (SQLite pass, then MariaDB pass). Both set up the virtual environment first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
MARIADB_TEST_URL ?= mysql+pymysql://root@127.0.0.1:3306/madang_test?charset=utf8mb4
PYTEST_ARGS ?=
# `make bench` / `make bench-mariadb`: the board benchmark (bench/run.py); the MariaDB database is
# dropped and created again, so it must be a throwaway one named madang_bench...
MARIADB_BENCH_URL ?= mysql+pymysql://root@127.0.0.1:3306/madang_bench?charset=utf8mb4
BENCH_ARGS ?=

.PHONY: install migrate run test test-sqlite test-mariadb bench bench-mariadb bench-ai bench-train lint format clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

migrate: install
	$(BIN)/alembic upgrade head

run: migrate
	$(BIN)/uvicorn main:app --host $(HOST) --port $(PORT)

test: test-sqlite test-mariadb

test-sqlite: install
	$(BIN)/pytest $(PYTEST_ARGS)

test-mariadb: install
	TEST_DATABASE_URL='$(MARIADB_TEST_URL)' $(BIN)/pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-mariadb: install
	$(BIN)/python -m bench --database-url '$(MARIADB_BENCH_URL)' $(BENCH_ARGS)

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

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
