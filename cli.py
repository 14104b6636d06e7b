"""Server-side administration. `python cli.py create-superuser` is the only way to make an
administrator: the API never grants that right. `python cli.py serve` runs the API."""

import re
import sys
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import TypeAdapter, ValidationError

from config import settings
from database import session_scope
from errors import Conflict
from ml import tabular
from schemas import Email, Password, UserName
from services import admin as admin_service
from services import search as search_service
from services import storage_maintenance as maintenance
from services.ai import jobs as ai_service
from services.storage import StorageUnavailable, get_storage
from serving import KEEP_ALIVE_SECONDS, WS_MAX_BYTES

app = typer.Typer(help="Madang server administration.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Madang server administration."""
    # A callback keeps `create-superuser` a named sub-command: a Typer app with a single
    # command would otherwise run it bare and refuse `python cli.py create-superuser`.


def _valid(kind: Any, value: str, label: str) -> str:  # kind: an annotated type, e.g. UserName
    try:
        return str(TypeAdapter(kind).validate_python(value))
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"], param_hint=label) from exc


@app.command("create-superuser")
def create_superuser(
    name: Annotated[str, typer.Option(prompt=True, help="The administrator's user name.")],
    email: Annotated[str, typer.Option(help="Required for a new account.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (scripts).")
    ] = False,
    promote: Annotated[
        bool, typer.Option("--promote", help="Make an existing user (by name) an administrator.")
    ] = False,
) -> None:
    """Create an administrator, or promote an existing user with --promote."""
    name = _valid(UserName, name, "--name")
    with session_scope() as session:
        if promote:
            try:
                user = admin_service.promote_to_superuser(session, name=name)
            except Conflict as exc:
                typer.echo(f"error: {exc.detail}", err=True)
                raise typer.Exit(1) from exc
            typer.echo(f"{user.name} (id {user.id}) is now an administrator")
            return
        if not email:
            email = typer.prompt("Email")
        email = _valid(Email, email, "--email")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        password = _valid(Password, password, "password")
        try:
            user = admin_service.create_superuser(session, name=name, email=email, password=password)
        except Conflict as exc:
            typer.echo(
                f"error: {exc.detail} (use --promote to make an existing user an administrator)", err=True
            )
            raise typer.Exit(1) from exc
        typer.echo(f"administrator {user.name} (id {user.id}) created")


@app.command("reindex")
def reindex(
    everything: Annotated[
        bool, typer.Option("--all", help="Embed every post again, not only those missing or out of date.")
    ] = False,
) -> None:
    """Compute the similar-posts embeddings of posts that have none (or an outdated one)."""
    stored = ai_service.reindex(everything=everything)
    typer.echo(f"{stored} post(s) embedded")


search_app = typer.Typer(help="The search index.", no_args_is_help=True)
app.add_typer(search_app, name="search")


@search_app.command("reindex")
def search_reindex() -> None:
    """Write every post's and comment's search terms again, a batch at a time (searching goes on
    meanwhile): after a change to the analyzer (search_text.py), or when rows went missing."""
    with session_scope() as session:
        total = search_service.to_reindex(session)
        with typer.progressbar(length=total, label="indexing posts and comments", file=sys.stderr) as bar:
            posts, comments = search_service.reindex(session, progress=bar.update)
    typer.echo(f"{posts} post(s) and {comments} comment(s) indexed")


storage_app = typer.Typer(help="Where attachments are stored.", no_args_is_help=True)
app.add_typer(storage_app, name="storage")


class Backend(StrEnum):  # services/storage.py BACKENDS
    local = "local"
    s3 = "s3"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str, label: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise typer.BadParameter("a number and a unit: 90s, 30m, 1h, 2d", param_hint=label)
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def _storage_or_exit(name: str) -> None:
    try:
        get_storage(name)
    except StorageUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@storage_app.command("migrate")
def storage_migrate(
    to: Annotated[Backend, typer.Option("--to", help="The backend to move every attachment to.")],
    keep_source: Annotated[
        bool,
        typer.Option(
            "--keep-source", help="Leave each source object in place (`storage sweep` removes it later)."
        ),
    ] = False,
) -> None:
    """Copy every attachment whose row names another backend to this one, a row at a time: the
    copy is read back and checked against the row's sha256, the row switched in a transaction of
    its own, then the source deleted. Resumable (rows already moved are skipped) and safe while
    the API serves. Exits 1 if a row could not be moved (object missing, or bytes that differ)."""
    target = to.value
    _storage_or_exit(target)
    with session_scope() as session:
        total = maintenance.to_migrate(session, target)
        with typer.progressbar(length=total, label=f"moving attachments to {target}", file=sys.stderr) as bar:
            try:
                report = maintenance.migrate(
                    session, target=target, delete_source=not keep_source, progress=bar.update
                )
            except StorageUnavailable as exc:  # rows on a backend these settings do not reach
                typer.echo(f"\nerror: {exc} (rows moved so far stay moved; run again once fixed)", err=True)
                raise typer.Exit(1) from exc
    for attachment_id in report.missing:
        typer.echo(f"attachment {attachment_id}: its object is missing, not moved", err=True)
    for attachment_id in report.mismatched:
        typer.echo(f"attachment {attachment_id}: its bytes do not match its sha256, not moved", err=True)
    typer.echo(
        f"{report.copied} copied, {report.skipped} skipped, {len(report.missing)} missing, "
        f"{len(report.mismatched)} mismatched"
    )
    if not report.complete:
        raise typer.Exit(1)


@storage_app.command("sweep")
def storage_sweep(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Spare objects written more recently (90s, 30m, 1h, 2d).")
    ] = "1h",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be removed; remove nothing.")
    ] = False,
    backend: Annotated[
        list[Backend] | None,
        typer.Option(
            "--backend",
            help="Sweep this backend (repeatable); default: the configured one and any rows name.",
        ),
    ] = None,
) -> None:
    """Remove the objects no attachment row names that are older than --older-than (what a crash
    between an object's write and its row's commit leaves; an upload in flight is younger), and
    list the rows whose object is missing. Exits 1 if any row's object is missing."""
    threshold = _duration(older_than, "--older-than")
    with session_scope() as session:
        names = [name.value for name in backend or ()] or maintenance.backends_to_sweep(
            session, settings.STORAGE_BACKEND
        )
        for name in names:
            _storage_or_exit(name)
        reports = [
            maintenance.sweep(session, backend=name, older_than=threshold, dry_run=dry_run) for name in names
        ]
    verb = "would be removed" if dry_run else "removed"
    for report in reports:
        for attachment_id in report.missing:
            typer.echo(f"attachment {attachment_id}: its object is missing from {report.backend}", err=True)
        typer.echo(
            f"{report.backend}: {report.objects} objects, {report.removed} unnamed {verb}, "
            f"{report.young} unnamed kept (younger than {older_than}), "
            f"{report.unfinished} unfinished uploads {verb}, {len(report.missing)} rows missing their object"
        )
    if any(report.missing for report in reports):
        raise typer.Exit(1)


@app.command("sample-dataset")
def sample_dataset(
    rows: Annotated[int, typer.Option(min=10, max=1_000_000, help="Data rows.")] = 10_000,
    seed: Annotated[int, typer.Option(help="The same seed writes the same file.")] = 20261126,
) -> None:
    """Write a CSV for training a tabular-regression model to standard output: columns x0..x7
    (uniform in [0, 10)) and y = 4x0 + 5x1 + 2x2 + 7x3 + 0.1x4 + 15x5 + 0.05x6 + x7."""
    columns, values = tabular.sample_dataset(rows=rows, seed=seed)
    tabular.write_csv(sys.stdout, columns, values)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port to listen on.")] = 8000,
) -> None:
    """Serve the API with uvicorn (what `make run` does): the client address is the socket's
    peer, or the one TRUSTED_PROXIES forward, never a header uvicorn believed on its own; a
    WebSocket message over 64 KiB closes the socket; an idle connection stays open 75 s (longer
    than clients and proxies keep theirs). The app logs each request itself."""
    uvicorn.run(
        "main:app",
        host=host,
        port=port,
        proxy_headers=False,  # see serving.py
        ws_max_size=WS_MAX_BYTES,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        log_config=None,  # the app sets logging up (logs.py) when main is imported
        access_log=False,  # the app writes its own access line
    )


if __name__ == "__main__":
    app()
