"""A frontend's TypeScript client, generated from /openapi.json with openapi-typescript, type-checks
a small program that signs in, reads a board's posts and switches on the error `code` of each
answer (tests/ts_client/client.ts); a program that switches on a code the document does not list
does not compile. The tools are pinned in tests/ts_client/package-lock.json, installed with
`npm ci` into a temporary copy of that directory."""

import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from main import app
from tests.conftest import skip_unless_ci

# Database-independent (a TypeScript compiler over the schema) and slow: `make test` runs it in
# its MariaDB pass, the shorter one (the Makefile's `test`); `make test-sqlite` alone runs it too.
pytestmark = pytest.mark.either_pass

PROJECT = Path(__file__).parent / "ts_client"
SOURCES = ("package.json", "package-lock.json", "tsconfig.json", "client.ts")
GENERATED = "generated/openapi.d.ts"  # client.ts imports "./generated/openapi"
# Request bodies declare their defaults (the login form's `scope`): with the generator's default
# those fields would be required of the client.
GENERATOR_OPTIONS = ("--default-non-nullable", "false")
INSTALL_SECONDS = 600
CHECK_SECONDS = 300

# A 403 of GET /boards/{board_id}/posts carries `banned` or `no_board_access`, nothing else.
UNLISTED_CODE = """
import type { paths } from "./generated/openapi";

type Forbidden =
  paths["/api/v1/boards/{board_id}/posts"]["get"]["responses"][403]["content"]["application/json"];

export function label(error: Forbidden): string {
  switch (error.code) {
    case "banned":
      return "This account is banned.";
    case "board_is_private":
      return "This board is for its members.";
  }
  return "";
}
"""


def run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def typescript_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of tests/ts_client with its pinned tools installed and the types generated from
    the app's /openapi.json."""
    npm = shutil.which("npm")
    if npm is None:
        skip_unless_ci("npm (with Node.js) is not installed: the TypeScript client cannot be generated")
    project = tmp_path_factory.mktemp("ts_client")
    for name in SOURCES:
        shutil.copy(PROJECT / name, project / name)
    installed = run([str(npm), "ci", "--no-audit", "--no-fund", "--prefer-offline"], project, INSTALL_SECONDS)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    document = TestClient(app).get("/openapi.json")
    assert document.status_code == 200
    (project / "openapi.json").write_bytes(document.content)
    generator = project / "node_modules" / ".bin" / "openapi-typescript"
    generated = run(
        [str(generator), "openapi.json", "--output", GENERATED, *GENERATOR_OPTIONS], project, CHECK_SECONDS
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    return project


def type_check(project: Path, config: str = "tsconfig.json") -> subprocess.CompletedProcess[str]:
    compiler = project / "node_modules" / ".bin" / "tsc"
    return run([str(compiler), "--noEmit", "--project", config], project, CHECK_SECONDS)


def test_a_frontend_typed_by_the_generated_client_type_checks(typescript_project: Path) -> None:
    checked = type_check(typescript_project)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_frontend_switching_on_a_code_the_document_does_not_list_does_not_compile(
    typescript_project: Path,
) -> None:
    (typescript_project / "unlisted_code.ts").write_text(UNLISTED_CODE, encoding="utf-8")
    (typescript_project / "tsconfig.unlisted.json").write_text(
        '{"extends": "./tsconfig.json", "files": ["unlisted_code.ts"]}', encoding="utf-8"
    )
    checked = type_check(typescript_project, "tsconfig.unlisted.json")
    assert checked.returncode != 0
    errors = [line for line in checked.stdout.splitlines() if "error TS" in line]
    assert len(errors) == 1 and "TS2678" in errors[0] and '"board_is_private"' in errors[0], checked.stdout
