"""The benchmark's own promises (bench/): seeded counters agree with their rows, and the ceiling
serves the same page as the app from the SQL captured off the app."""

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from bench import corpus, run, seed
from database import engine
from services import security
from tests.conftest import TEST_DATABASE_URL

pytestmark = pytest.mark.db  # the benchmark's seeding writes raw SQL

# Enough posts that the page captured (board 3, offset 60) is not empty.
SEARCH_TABLES = ("post_search", "comment_search")
SMALL = seed.Sizes(boards=3, users=30, posts=600, comments=2_000, likes=300)


@pytest.fixture
def seeded() -> seed.SeededData:
    return seed.seed(TEST_DATABASE_URL, password_hash=security.hash_password("bench password"), sizes=SMALL)


@pytest.fixture
def ceiling_client(
    seeded: seed.SeededData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    token = security.create_access_token(seeded.user_ids[0], 0)
    sql_file = tmp_path / "list_sql.json"
    sql_file.write_text(run.json.dumps(run.capture_list_sql(token)))
    monkeypatch.setenv("BENCH_LIST_SQL", str(sql_file))
    sys.modules.pop("bench.ceiling", None)
    ceiling = importlib.import_module("bench.ceiling")
    with TestClient(ceiling.app) as client:
        yield client
    ceiling.engine.dispose()
    sys.modules.pop("bench.ceiling", None)


def test_seeding_makes_the_rows_asked_for(seeded: seed.SeededData) -> None:
    assert seeded.rows == {"boards": 3, "users": 30, "posts": 600, "comments": 2_000, "likes": 300}


def test_seeded_comment_and_like_counters_match_their_rows(seeded: seed.SeededData) -> None:
    with engine.connect() as conn:
        wrong = {name: conn.execute(text(query)).scalar_one() for name, query in seed.COUNT_CHECKS.items()}
    assert wrong == {"number_of_comment": 0, "number_of_like": 0}


def test_ceiling_serves_the_same_page_as_the_app(
    client: TestClient, seeded: seed.SeededData, ceiling_client: TestClient
) -> None:
    headers = {"Authorization": f"Bearer {security.create_access_token(seeded.user_ids[0], 0)}"}
    path = "/api/v1/boards/2/posts?offset=20&limit=20"
    ours = client.get(path, headers=headers).json()
    assert run.same_page(ours, ceiling_client.get(path).json())


def test_seeding_fills_the_search_index(client: TestClient, seeded: seed.SeededData) -> None:
    with engine.connect() as conn:
        indexed = [conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one() for name in SEARCH_TABLES]
    assert indexed == [600, 2_000]
    headers = {"Authorization": f"Bearer {security.create_access_token(seeded.user_ids[0], 0)}"}
    found = client.get("/api/v1/search", params={"q": "the", "mode": "keyword"}, headers=headers).json()
    assert found["total"] > 0


def test_ceiling_like_search_counts_what_like_matches(
    seeded: seed.SeededData, ceiling_client: TestClient
) -> None:
    word = corpus.SEARCH_QUERIES[0]
    with engine.connect() as conn:
        expected = conn.execute(
            text("SELECT count(*) FROM post WHERE is_visible = 1 AND (name LIKE :p OR content LIKE :p)"),
            {"p": f"%{word}%"},
        ).scalar_one()
    answer = ceiling_client.get(run.LIKE_SEARCH_PATH, params={"q": word}).json()
    assert answer["total"] == expected > 0
    assert len(answer["items"]) == min(20, expected)


def test_search_scenarios_ask_for_every_bench_query() -> None:
    assert len(run.search_paths("keyword")) == len(run.like_paths()) == len(corpus.SEARCH_QUERIES)
    assert all("mode=keyword" in path for path in run.search_paths("keyword"))


def test_the_no_match_scenario_searches_a_word_in_no_post_nor_comment(
    client: TestClient, seeded: seed.SeededData
) -> None:
    """The "nothing" scenario measures what a search costs before it finds anything."""
    headers = {"Authorization": f"Bearer {security.create_access_token(seeded.user_ids[0], 0)}"}
    [path] = run.search_paths("keyword", [corpus.NO_MATCH_QUERY])
    answer = client.get(path, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["total"] == 0 and answer.json()["mode"] == "keyword"
    with engine.connect() as conn:
        holding = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM post WHERE content LIKE :p OR name LIKE :p)"
                " + (SELECT count(*) FROM comment WHERE content LIKE :p)"
            ),
            {"p": f"%{corpus.NO_MATCH_QUERY}%"},
        ).scalar_one()
    assert holding == 0


def test_reusing_a_seeded_database_keeps_its_search_index(seeded: seed.SeededData) -> None:
    reused = seed.reuse(TEST_DATABASE_URL, sizes=SMALL)
    assert reused is not None
    with engine.connect() as conn:
        indexed = [conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one() for name in SEARCH_TABLES]
    assert indexed == [600, 2_000]


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--rounds", "0"]])
def test_the_bench_refuses_fewer_than_one_worker_or_round(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        run.parse_args(argv)
    assert refused.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
