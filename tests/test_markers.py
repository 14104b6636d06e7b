"""`make test` runs the suite twice: on SQLite, then on MariaDB. The MariaDB pass runs only the
tests marked `db` (behaviour that depends on the database: they run in both passes) or `mariadb`
(they need MariaDB), `pytest -m "db or mariadb"`; what the database cannot change (request
parsing, schemas, tokens, settings, the model runner, pages in a browser) runs once.

A test left unmarked would silently stop running on MariaDB, so the checks below read every test
module and fail for a test that touches the database's own behaviour without either mark. What
"touches" means here, mechanically, is what the test's own code reaches, in its body, its
decorators and, transitively, the helpers, fixtures and constants of its module it uses:

- the database in use: `IS_MARIADB`, `TEST_DATABASE_URL` (tests/conftest.py);
- SQL below the ORM: sqlalchemy's `text` and `event` (statements counted), an engine (the app's
  `engine` or one made with `create_engine`/`make_engine`), `with_for_update`;
- migrations: anything from alembic (`alembic_config` included);
- the database's refusals: `IntegrityError`, `OperationalError`;
- concurrent clients: `threading.Thread`, `threading.Barrier`, `ThreadPoolExecutor`;
- text beyond ASCII in a string literal (letters, marks, digits, symbols: emoji too; not in a
  docstring): storage, length and collation of Unicode.

That is a floor: modules and tests are marked by hand more generously (case folding of names and
emails, counters, paging and search, the access rule's conditions, AI job storage, chat history,
dates stored and compared, the fuzzer), as each module's `pytestmark` or a test's decorator shows.
Where a signal is incidental (threads that start model processes, a page in a browser),
NOT_THE_DATABASE names the test and why; an entry no longer needed fails too.
"""

import ast
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
MARKS = {"db", "mariadb"}

# Qualified names (module.attribute as the test module imports them): any name at or under one.
SIGNAL_NAMES = (
    "tests.conftest.IS_MARIADB",
    "tests.conftest.TEST_DATABASE_URL",
    "tests.conftest.alembic_config",
    "tests.conftest.recreate_mariadb_database",
    "sqlalchemy.text",
    "sqlalchemy.event",
    "sqlalchemy.create_engine",
    "sqlalchemy.exc.IntegrityError",
    "sqlalchemy.exc.OperationalError",
    "alembic",
    "threading.Thread",
    "threading.Barrier",
    "concurrent.futures.ThreadPoolExecutor",
)
# Names imported from the app's modules, whatever module they come from.
SIGNAL_IMPORTED = {"engine", "make_engine"}
SIGNAL_ATTRIBUTES = {"with_for_update"}


# Tests the checks take for the database's but are not, each with why (its signal is incidental).
NOT_THE_DATABASE = {
    "tests/test_ai_models.py::test_a_batch_never_waits_for_another_model_processs_batch": (
        "threads load and run the model processes; no statement"
    ),
    "tests/test_chat_page.py::test_a_user_and_an_administrator_chat_through_the_page": (
        "the page in a browser; how messages are stored is tests/test_chat_rest.py's"
    ),
    "tests/test_chat_page.py::test_the_page_shows_edited_and_deleted_messages": (
        "the page in a browser; how messages are stored is tests/test_chat_rest.py's"
    ),
    "tests/test_errors.py::test_odd_authorization_headers_are_a_401": "refused before any statement",
    "tests/test_openapi.py::test_a_body_over_the_json_limit_gets_the_declared_413": (
        "refused before any statement"
    ),
    "tests/test_openapi.py::test_an_upload_and_its_download_match_their_declarations": (
        "the answers' schemas; stored names are tests/test_attachments.py's"
    ),
    "tests/test_settings.py::test_processes_starting_together_share_one_development_key": (
        "threads start processes that share a key file"
    ),
}


@dataclass(frozen=True)
class Unmarked:
    test: str
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.test}: {', '.join(self.reasons)}"


class Module:
    """One test module as its source says: imports, module-level definitions, marks."""

    def __init__(self, source: str, name: str) -> None:
        self.name = name
        self.tree = ast.parse(source)
        self.imports: dict[str, str] = {}
        self.definitions: dict[str, ast.AST] = {}
        self.tests: list[ast.FunctionDef] = []
        self.conditions: dict[str, list[ast.expr]] = {}  # a test's module-level `if`s
        self.module_marks: set[str] = set()
        self.docstrings = {
            id(node.body[0].value)
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        self.imports = imports_in(self.tree.body)
        for node, conditions in self._top_level(self.tree.body, []):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.definitions[node.name] = node
                if node.name.startswith("test_"):
                    self.tests.append(node)  # type: ignore[arg-type]
                    self.conditions[node.name] = conditions
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.definitions[target.id] = node
                        if target.id == "pytestmark":
                            self.module_marks = marks_in(node.value)
            elif isinstance(node, ast.ClassDef):
                self.definitions[node.name] = node

    @staticmethod
    def _top_level(
        body: list[ast.stmt], conditions: list[ast.expr]
    ) -> Iterator[tuple[ast.stmt, list[ast.expr]]]:
        """Module-level statements, those under a module-level `if` too (tests defined only on
        MariaDB), each with the conditions of the `if`s it is under."""
        for node in body:
            if isinstance(node, ast.If):
                yield from Module._top_level(node.body, [*conditions, node.test])
                yield from Module._top_level(node.orelse, [*conditions, node.test])
            else:
                yield node, conditions

    def scope(self, node: ast.AST) -> dict[str, str]:
        """The imports a function sees: the module's, but for the names it binds itself, and its
        own."""
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return self.imports
        arguments = node.args
        bound = {arg.arg for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
        bound |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        seen = {name: value for name, value in self.imports.items() if name not in bound}
        return seen | imports_in(list(ast.walk(node)))

    def signals(self, node: ast.AST, seen: set[str]) -> set[str]:
        """What of SIGNAL_* this code reaches, itself or through the module's definitions."""
        found: set[str] = set()
        imports = self.scope(node)
        for child in ast.walk(node):
            if isinstance(child, ast.Name | ast.Attribute):
                name = qualified(child, imports)
                if name and any(name == s or name.startswith(s + ".") for s in SIGNAL_NAMES):
                    found.add(name)
                if (
                    isinstance(child, ast.Name)
                    and child.id in SIGNAL_IMPORTED
                    and child.id in imports
                    and not imports[child.id].startswith("sqlalchemy")
                ):
                    found.add(imports[child.id])
                if isinstance(child, ast.Attribute) and child.attr in SIGNAL_ATTRIBUTES:
                    found.add(child.attr)
            if (
                isinstance(child, ast.Constant)
                and isinstance(child.value, str)
                and id(child) not in self.docstrings
                and any(unicodedata.category(c)[0] in "LMNS" for c in child.value if not c.isascii())
            ):
                found.add("text beyond ASCII")
            for used in self._used_definitions(child):
                if used not in seen:
                    seen.add(used)
                    found |= self.signals(self.definitions[used], seen)
        return found

    def _used_definitions(self, node: ast.AST) -> list[str]:
        names = []
        if isinstance(node, ast.Name) and node.id in self.definitions:
            names.append(node.id)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):  # fixtures named as arguments
            names += [arg.arg for arg in node.args.args if arg.arg in self.definitions]
        return names

    def unmarked(self) -> list[Unmarked]:
        if self.module_marks & MARKS:
            return []
        found = []
        for test in self.tests:
            if any(marks_in(decorator) & MARKS for decorator in test.decorator_list):
                continue
            reasons = self.signals(test, {test.name})
            for condition in self.conditions[test.name]:
                reasons |= self.signals(condition, {test.name})
            if reasons:
                found.append(Unmarked(f"{self.name}::{test.name}", tuple(sorted(reasons))))
        return found


def imports_in(nodes: list[ast.AST]) -> dict[str, str]:
    """Local name -> what it names (`Thread` -> `threading.Thread`), for these statements."""
    imports = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                imports[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return imports


def qualified(node: ast.expr, imports: dict[str, str]) -> str | None:
    """`threading.Thread` for `threading.Thread` or an imported `Thread`; None for a local."""
    if isinstance(node, ast.Name):
        return imports.get(node.id)
    if isinstance(node, ast.Attribute):
        base = qualified(node.value, imports)
        return f"{base}.{node.attr}" if base else None
    return None


def marks_in(node: ast.AST) -> set[str]:
    """The `pytest.mark.<name>` in this expression (a decorator, a list of marks)."""
    return {
        child.attr
        for child in ast.walk(node)
        if isinstance(child, ast.Attribute)
        and isinstance(child.value, ast.Attribute)
        and child.value.attr == "mark"
        and isinstance(child.value.value, ast.Name)
        and child.value.value.id == "pytest"
    }


def unmarked_tests(source: str, name: str = "tests/test_example.py") -> list[Unmarked]:
    return Module(source, name).unmarked()


def every_unmarked_test() -> list[Unmarked]:
    return [
        problem
        for path in sorted(TESTS.glob("test_*.py"))
        for problem in unmarked_tests(path.read_text(), f"tests/{path.name}")
    ]


def test_every_test_that_touches_the_database_is_marked_for_the_mariadb_pass() -> None:
    unmarked = [problem for problem in every_unmarked_test() if problem.test not in NOT_THE_DATABASE]
    assert not unmarked, (
        "these tests touch the database's own behaviour but are marked neither `db` nor `mariadb`, "
        "so the MariaDB pass would not run them:\n" + "\n".join(map(str, unmarked))
    )


def test_every_exception_is_still_one() -> None:
    """An exception whose test was marked, renamed or removed goes from the list."""
    assert sorted(set(NOT_THE_DATABASE) - {problem.test for problem in every_unmarked_test()}) == []


UNMARKED_OF_EACH_KIND = {
    "raw SQL": "from sqlalchemy import text\ndef test_x(client):\n    client.get(text('SELECT 1'))\n",
    "the engine": "from database import engine\ndef test_x():\n    engine.dispose()\n",
    "the database in use": "from tests.conftest import IS_MARIADB\n"
    "def test_x():\n    assert IS_MARIADB or True\n",
    "a row lock": "from sqlalchemy import select\n"
    "def test_x(session):\n    session.execute(select(1).with_for_update())\n",
    "migrations": "from alembic import command\ndef test_x():\n    command.upgrade(None, 'head')\n",
    "a refusal of the database": "import pytest\nfrom sqlalchemy.exc import IntegrityError\n"
    "def test_x():\n    with pytest.raises(IntegrityError):\n        pass\n",
    "raw SQL imported in the test": "def test_x(session):\n"
    "    from sqlalchemy import text\n    session.execute(text('SELECT 1'))\n",
    "concurrent clients": "from concurrent.futures import ThreadPoolExecutor\n"
    "def test_x():\n    ThreadPoolExecutor(4)\n",
    "threads": "import threading\ndef test_x():\n    threading.Thread(target=print).start()\n",
    "statements counted, through a helper and a fixture": "import pytest\nfrom sqlalchemy import event\n"
    "def counting():\n    return event\n"
    "@pytest.fixture\ndef statements():\n    return counting()\n"
    "def test_x(statements):\n    assert statements\n",
    # The test's source holds the two Hangul syllables themselves (this file only their escapes).
    "Unicode text": "def test_x(client):\n    client.post('/boards', json={'name': '\\uB9C8\\uB2F9'})\n",
    "a test defined only on MariaDB": "from tests.conftest import IS_MARIADB\n"
    "if IS_MARIADB:\n    def test_x():\n        pass\n",
}


@pytest.mark.parametrize("source", UNMARKED_OF_EACH_KIND.values(), ids=list(UNMARKED_OF_EACH_KIND))
def test_an_unmarked_test_of_each_kind_is_caught(source: str) -> None:
    assert [problem.test for problem in unmarked_tests(source)] == ["tests/test_example.py::test_x"]
    for mark in ("db", "mariadb"):
        marked = source.replace("def test_x", f"@pytest.mark.{mark}\ndef test_x")
        if "if IS_MARIADB:" in source:
            marked = source.replace("    def test_x", f"    @pytest.mark.{mark}\n    def test_x")
        assert unmarked_tests(marked) == []
        assert unmarked_tests(f"import pytest\npytestmark = [pytest.mark.{mark}]\n{source}") == []


def test_a_test_that_touches_nothing_of_the_database_needs_no_mark() -> None:
    source = (
        "from database import SessionLocal\nimport io\n"
        "def helper():\n    text = io.StringIO()\n    return text\n"
        "def test_x(client):\n    assert client.get('/health').text == helper().getvalue()\n"
    )
    assert unmarked_tests(source) == []


def test_the_mariadb_pass_runs_the_marked_tests() -> None:
    """Alone, the MariaDB pass runs the marked tests; in `make test` the database-independent
    `either_pass` ones too, which the SQLite pass then leaves out (each runs exactly once more)."""
    makefile = (TESTS.parent / "Makefile").read_text()
    recipe = makefile.split("\ntest-mariadb:", 1)[1].split("\n\n", 1)[0]
    assert "$(MARIADB_SELECT)" in recipe
    assert '\nMARIADB_SELECT ?= -m "db or mariadb"\n' in makefile
    both = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "SQLITE_SELECT='-m \"not either_pass\"'" in both
    assert "MARIADB_SELECT='-m \"db or mariadb or either_pass\"'" in both
