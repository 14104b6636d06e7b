"""Settings: production refuses to run without a real SECRET_KEY; development makes one and
keeps it in a private file so tokens survive restarts."""

import os
import socket
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from config import BASE_DIR, Settings
from services import security

STRONG_KEY = "k" * 48
MAIL_HOST = "mail.example.com"


def make_settings(**values: object) -> Settings:
    """Settings from these values alone: no `.env` file; init values beat the environment."""
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_production_without_a_secret_key_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        make_settings(ENV="production", SECRET_KEY="")


def test_production_with_a_short_secret_key_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        make_settings(ENV="production", SECRET_KEY="too-short")


def test_production_reads_its_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_production_signs_with_the_given_key_and_writes_no_file(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    settings = make_settings(
        ENV="production", SECRET_KEY=STRONG_KEY, SMTP_HOST=MAIL_HOST, SECRET_KEY_FILE=key_file
    )
    assert settings.signing_key == STRONG_KEY
    assert not key_file.exists()


def test_unknown_environment_name_is_refused() -> None:
    with pytest.raises(ValidationError):
        make_settings(ENV="staging")


@pytest.mark.parametrize("seconds", ["0", "-5", "0.5"])
def test_a_job_lease_too_short_to_renew_is_refused(seconds: str) -> None:
    # A lease that runs out before its heartbeat renews it hands running jobs to another process.
    with pytest.raises(ValidationError, match="AI_LEASE_SECONDS must be at least 1 second"):
        make_settings(AI_LEASE_SECONDS=seconds)


def test_a_negative_sqlite_memory_map_is_refused() -> None:
    with pytest.raises(ValidationError, match="SQLITE_MMAP_MIB"):
        make_settings(SQLITE_MMAP_MIB="-1")


def test_production_without_an_smtp_host_refuses_to_start() -> None:
    # Else every mail, password reset codes included, would be written to the log.
    with pytest.raises(ValidationError, match="SMTP_HOST must be set"):
        make_settings(ENV="production", SECRET_KEY=STRONG_KEY, SMTP_HOST="")


def test_production_with_an_smtp_host_starts() -> None:
    assert make_settings(ENV="production", SECRET_KEY=STRONG_KEY, SMTP_HOST=MAIL_HOST).SMTP_HOST == MAIL_HOST


def test_development_without_an_smtp_host_starts_and_logs_its_mail() -> None:
    assert make_settings(ENV="development", SMTP_HOST="").SMTP_HOST == ""


SERVER_COMMANDS = {
    "uvicorn main:app": [sys.executable, "-m", "uvicorn", "main:app", "--port"],
    "cli.py serve": [sys.executable, "cli.py", "serve", "--port"],
}


@pytest.mark.parametrize("command", SERVER_COMMANDS.values(), ids=SERVER_COMMANDS.keys())
def test_server_refuses_to_start_in_production_without_an_smtp_host_saying_why_in_one_line(
    command: list[str],
) -> None:
    env = {**os.environ, "ENV": "production", "SECRET_KEY": STRONG_KEY, "SMTP_HOST": ""}
    # On a port already taken: a server that accepted the settings would stop too, not serve.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        completed = subprocess.run(
            [*command, port], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr  # a reason, not pydantic's traceback
    assert "SMTP_HOST must be set when ENV=production" in lines[0]
    assert STRONG_KEY[:8] not in completed.stderr  # the settings' values are never echoed


def test_server_process_refuses_to_start_in_production_without_a_secret_key() -> None:
    env = {**os.environ, "ENV": "production", "SECRET_KEY": ""}
    completed = subprocess.run(
        [sys.executable, "-c", "import main"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert "SECRET_KEY must be set" in completed.stderr


# --- the development key file ---------------------------------------------------------------------


def test_development_without_a_secret_key_creates_a_random_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key = make_settings(SECRET_KEY="", SECRET_KEY_FILE=key_file).signing_key
    assert len(key) >= 32
    assert key_file.read_text() == key


def test_development_key_file_is_private_to_its_owner(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    make_settings(SECRET_KEY="", SECRET_KEY_FILE=key_file).signing_key  # noqa: B018
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_development_key_is_read_back_on_the_next_start(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    first_start = make_settings(SECRET_KEY="", SECRET_KEY_FILE=key_file).signing_key
    next_start = make_settings(SECRET_KEY="", SECRET_KEY_FILE=key_file).signing_key
    assert next_start == first_start


def test_each_new_development_key_is_different(tmp_path: Path) -> None:
    one = make_settings(SECRET_KEY="", SECRET_KEY_FILE=tmp_path / "one").signing_key
    two = make_settings(SECRET_KEY="", SECRET_KEY_FILE=tmp_path / "two").signing_key
    assert one != two


def test_processes_starting_together_share_one_development_key(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(
            pool.map(lambda _: make_settings(SECRET_KEY="", SECRET_KEY_FILE=key_file).signing_key, range(8))
        )
    assert keys == {key_file.read_text()}
    assert [path.name for path in tmp_path.iterdir()] == ["secret_key"]  # no temporary files left


def test_an_empty_key_file_is_refused_not_used(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("\n")
    with pytest.raises(RuntimeError, match="empty"):
        make_settings(SECRET_KEY="", SECRET_KEY_FILE=key_file).signing_key  # noqa: B018


def test_tokens_signed_before_a_restart_still_verify_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "secret_key"
    monkeypatch.setattr(security, "settings", make_settings(SECRET_KEY="", SECRET_KEY_FILE=key_file))
    token = security.create_access_token(7, 0)
    monkeypatch.setattr(security, "settings", make_settings(SECRET_KEY="", SECRET_KEY_FILE=key_file))
    assert security.decode_access_token(token).user_id == 7


def test_the_embedding_model_is_multilingual_by_default() -> None:
    assert make_settings().EMBEDDING_MODEL == "multilingual-e5-small"


def test_the_embedding_model_is_named_in_any_case() -> None:
    assert make_settings(EMBEDDING_MODEL=" All-MiniLM-L6-v2 ").EMBEDDING_MODEL == "all-minilm-l6-v2"


def test_an_unknown_embedding_model_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="EMBEDDING_MODEL"):
        make_settings(EMBEDDING_MODEL="bert-base-uncased")
