"""The error codes each route of the app can answer, read from the source.

From a route's endpoint and its dependencies, every function of the project they reach is
followed: a name in its body that is a project function (called, or handed on as in
`partial(access.readable_post, ...)`), a project class (then all its methods: an object made
here has its methods called elsewhere), `self.method`, and the project classes in its type hints
(what it is handed, what it returns). In each function reached, a domain error made
(`NotFound("post")`, `Conflict(..., code="name_taken")`) or a `code="..."` handed to a helper
that makes one (`_refuse(..., code="empty_file")`, its default too) is a code the route can
answer. This over-approximates (a branch never taken still counts), which is the safe side for
a document a client switches on: it must never meet a code it was not told of."""

import ast
import builtins
import inspect
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

from errors import DomainError, NotFound

PROJECT = Path(__file__).resolve().parents[1]
OUTSIDE = (PROJECT / ".venv", PROJECT / "tests", PROJECT / "bench", PROJECT / "migrations")
Function = types.FunctionType


@dataclass(frozen=True)
class Raised:
    """A code made somewhere: its status (None when a helper makes the error and its class is
    not in sight) and a pattern of its detail (None when the detail is not written out)."""

    code: str
    status: int | None
    detail: re.Pattern[str] | None
    where: str


def is_project(thing: object) -> bool:
    try:
        path = Path(inspect.getfile(thing))  # type: ignore[arg-type]
    except (TypeError, OSError):
        return False
    if not path.is_absolute():  # made at run time (a dataclass's or SQLAlchemy's __init__)
        return False
    path = path.resolve()
    return path.is_relative_to(PROJECT) and not any(path.is_relative_to(outside) for outside in OUTSIDE)


def unwrapped(thing: object) -> Function | None:
    """The plain function behind a method, property, static or class method, or None."""
    if isinstance(thing, staticmethod | classmethod):
        thing = thing.__func__
    if isinstance(thing, property):
        thing = thing.fget
    thing = inspect.unwrap(thing) if callable(thing) else thing  # type: ignore[arg-type]
    return thing if isinstance(thing, Function) else None


@cache
def syntax(function: Function) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return None
    tree = ast.parse(source).body[0]
    return tree if isinstance(tree, ast.FunctionDef | ast.AsyncFunctionDef) else None


def owner(function: Function) -> type | None:
    """The class a method is defined in (from its qualified name), or None."""
    *path, _ = function.__qualname__.split(".")
    if not path or "<locals>" in path:
        return None
    found: Any = inspect.getmodule(function)
    for part in path:
        found = getattr(found, part, None)
    return found if isinstance(found, type) else None


@cache
def local_names(code: types.CodeType) -> frozenset[str]:
    """The parameters and local variables of a function and of the functions inside it."""
    inner = [local_names(const) for const in code.co_consts if isinstance(const, types.CodeType)]
    return frozenset(code.co_varnames + code.co_cellvars).union(*inner)


def resolve(node: ast.expr, function: Function) -> object | None:
    """What a name or a dotted name in the function's body stands for, through its module's
    globals (`self.x`: its class's); None for a local, a parameter, or anything not found."""
    if isinstance(node, ast.Name):
        return resolve_name(node.id, function)
    if not isinstance(node, ast.Attribute):
        return None
    if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
        base: object | None = owner(function)
    else:
        base = resolve(node.value, function)
    return None if base is None else inspect.getattr_static(base, node.attr, None)


def resolve_name(name: str, function: Function) -> object | None:
    if name in local_names(function.__code__):
        return None
    free = dict(zip(function.__code__.co_freevars, function.__closure__ or (), strict=True))
    if name in free:
        return free[name].cell_contents
    return next((scope[name] for scope in (function.__globals__, vars(builtins)) if name in scope), None)


def classes_in(hint: object) -> Iterator[type]:
    """The project classes in a type hint (through Annotated, unions, generics)."""
    if isinstance(hint, type) and is_project(hint):
        yield hint
    for argument in typing.get_args(hint):
        yield from classes_in(argument)


def hinted_classes(thing: Function | type) -> Iterator[type]:
    try:
        hints = typing.get_type_hints(thing, include_extras=True)
    except Exception:  # a hint that names what the module imports only for type checking
        return
    for hint in hints.values():
        yield from classes_in(hint)


@cache
def methods(cls: type) -> tuple[tuple[str, Function], ...]:
    """The class's methods (its project bases' too), by name."""
    found: dict[str, Function] = {}
    for klass in reversed(cls.__mro__):
        if is_project(klass):
            for name, member in vars(klass).items():
                function = unwrapped(member)
                if function is not None and is_project(function):
                    found[name] = function
    return tuple(found.items())


def reached(roots: list[Callable[..., Any]]) -> set[Function]:
    """Every project function the roots reach (themselves included). A method of a class the
    functions reached know of (they name it, are handed or return one, or hold one in an
    attribute) counts when they use its name (`upload.feed`, `runtime.ai`): what an object is,
    this does not follow, its type hints aside; special methods (`__init__`, `__aenter__`) count
    always, they run unnamed."""
    found: set[Function] = set()
    classes: set[type] = set()
    names: set[str] = set()
    pending = [function for function in map(unwrapped, roots) if function is not None]

    def add_class(cls: type) -> None:
        if cls in classes or issubclass(cls, DomainError):
            return
        classes.add(cls)
        pending.extend(method for name, method in methods(cls) if name in names or name.startswith("__"))
        for hinted in hinted_classes(cls):
            add_class(hinted)

    while pending:
        function = pending.pop()
        if function in found or not is_project(function):
            continue
        found.add(function)
        new_names = attribute_names(function) - names
        names.update(new_names)
        pending.extend(method for cls in classes for name, method in methods(cls) if name in new_names)
        for cls in hinted_classes(function):
            add_class(cls)
        if (cls := owner(function)) is not None:
            add_class(cls)
        for thing in references(function):
            if isinstance(thing, type):
                add_class(thing)
            else:
                pending.append(thing)
    return found


@cache
def attribute_names(function: Function) -> frozenset[str]:
    """The attribute names a function's body reads or calls (`x.feed`)."""
    tree = syntax(function)
    return (
        frozenset(node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute))
        if tree
        else frozenset()
    )


@cache
def references(function: Function) -> tuple[Function | type, ...]:
    """The project functions and classes a function's body names."""
    found: list[Function | type] = []
    tree = syntax(function)
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.Name | ast.Attribute):
            thing = resolve(node, function)
            if isinstance(thing, type) and is_project(thing):
                found.append(thing)
            elif (target := unwrapped(thing)) is not None and is_project(target):
                found.append(target)
    return tuple(found)


def detail_pattern(node: ast.expr | None, cls: type | None) -> re.Pattern[str] | None:
    """The detail a call writes, as a pattern: an f-string's holes match anything."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = re.escape(node.value)
    elif isinstance(node, ast.JoinedStr):
        text = "".join(
            re.escape(part.value) if isinstance(part, ast.Constant) else ".+" for part in node.values
        )
    else:
        return None
    if cls is not None and issubclass(cls, NotFound):
        text += " not found"
    return re.compile(text, re.DOTALL)


def error_class(thing: object) -> type[DomainError] | None:
    return thing if isinstance(thing, type) and issubclass(thing, DomainError) else None


def helper_status(function: Function) -> int | None:
    """The status of the error a helper makes from its `code` parameter (`_refuse`)."""
    tree = syntax(function)
    for node in ast.walk(tree) if tree else ():
        if (
            isinstance(node, ast.Call)
            and (cls := error_class(resolve(node.func, function)))
            and any(k.arg == "code" and isinstance(k.value, ast.Name) for k in node.keywords)
        ):
            return cls.status
    return None


@cache
def raised_in(function: Function) -> tuple[Raised, ...]:
    return tuple(_raised_in(function))


def code_default(function: Function) -> str | None:
    """A helper's default code (`_refuse(detail, code="invalid_training_data")`)."""
    tree = syntax(function)
    if tree is None:
        return None
    arguments = tree.args
    positional = zip(reversed(arguments.args), reversed(arguments.defaults), strict=False)
    for parameter, default in [*positional, *zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)]:
        if parameter.arg == "code" and isinstance(default, ast.Constant) and isinstance(default.value, str):
            return default.value
    return None


def _raised_in(function: Function) -> Iterator[Raised]:
    tree = syntax(function)
    if tree is None:
        return
    path = Path(inspect.getfile(function)).relative_to(PROJECT)
    first = function.__code__.co_firstlineno - 1
    if (default := code_default(function)) is not None:
        yield Raised(default, helper_status(function), None, f"{path}:{first + 1}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = resolve(node.func, function)
        cls, helper = error_class(callee), unwrapped(callee)
        code = next((k.value for k in node.keywords if k.arg == "code"), None)
        if code is None and cls is None and helper is not None and is_project(helper):
            code = ast.Constant(code_default(helper))  # the helper's default (None: no helper)
        if isinstance(code, ast.Constant) and isinstance(code.value, str):
            status = cls.status if cls else helper_status(helper) if helper else None
        elif cls is not None and code is None:
            code, status = ast.Constant(cls.code), cls.status
        else:
            continue
        detail = detail_pattern(node.args[0] if node.args else None, cls)
        yield Raised(code.value, status, detail, f"{path}:{first + node.lineno}")


def api_routes(routes: list[Any]) -> Iterator[Any]:
    """The app's API routes (an APIRoute, or the effective route of one in an included router:
    FastAPI keeps an included router as one entry), each with its full path."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        for effective in [route] if contexts is None else contexts():
            if isinstance(getattr(effective, "original_route", effective), APIRoute):
                yield effective


def dependency_calls(route: Any) -> list[Callable[..., Any]]:
    calls: list[Callable[..., Any]] = [route.endpoint]
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if dependant.call is not None:
            calls.append(dependant.call)
        pending.extend(dependant.dependencies)
    return calls


def route_raises(route: Any) -> set[Raised]:
    """The codes a route's own code can answer (the framework's: see FRAMEWORK in the tests)."""
    return {raised for function in reached(dependency_calls(route)) for raised in raised_in(function)}


def project_functions() -> Iterator[Function]:
    """Every function and method defined in the app's modules (for the codes made anywhere)."""
    for module in list(sys.modules.values()):
        if not is_project(module):
            continue
        for thing in vars(module).values():
            if isinstance(thing, type) and inspect.getmodule(thing) is module:
                yield from (method for _, method in methods(thing))
            elif (function := unwrapped(thing)) is not None and inspect.getmodule(function) is module:
                yield function
