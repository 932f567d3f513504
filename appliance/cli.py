"""The `salesboost` command.

Exit codes: 0 success; 1 the command ran and failed (doctor found a problem, a user
is missing, the server could not start); 2 bad usage or bad configuration (the message
names the key).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from appliance import __version__
from appliance.config import ConfigError, LoadedSettings, Settings, describe_fields, load_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

T = TypeVar("T")
EXIT_FAILED = 1
EXIT_USAGE = 2
SECRET_WORDS = (
    "password",
    "secret",
    "token",
    "api_key",
    "apikey",
    "credential",
    "credentials",
    "passphrase",
)


class Ctx:
    """What the group's options resolved to."""

    def __init__(self, config_file: Path | None, state_dir: str | None) -> None:
        self.config_file = config_file
        self.state_dir = state_dir

    def load(self, **cli: Any) -> LoadedSettings:
        """Effective settings, or exit 2 naming the bad key."""
        overrides = {"paths.state_dir": self.state_dir, **cli}
        try:
            return load_settings(self.config_file, cli=overrides)
        except ConfigError as err:
            click.echo(f"salesboost: {err}", err=True)
            sys.exit(EXIT_USAGE)

    def settings(self, **cli: Any) -> Settings:
        """Effective settings only."""
        return self.load(**cli).settings


pass_ctx = click.make_pass_decorator(Ctx)


def fail(message: str, code: int = EXIT_FAILED) -> None:
    """Print an error and exit."""
    click.echo(f"salesboost: {message}", err=True)
    sys.exit(code)


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine function to completion; AppErrors become a clean exit 1."""
    from appliance.errors import AppError

    try:
        return asyncio.run(fn())  # type: ignore[arg-type]
    except AppError as err:
        fail(err.message)
        raise AssertionError from None  # unreachable: fail() exits


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="salesboost")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="SALESBOOST_CONFIG",
    help="TOML config file (default: ./salesboost.toml if present).",
)
@click.option("--state-dir", help="State directory (overrides paths.state_dir).")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, state_dir: str | None) -> None:
    """SalesBoost Appliance: on-prem AI sales training.

    Exit codes: 0 ok, 1 failed, 2 bad usage or configuration.
    """
    ctx.obj = Ctx(config_file, state_dir)


# --- serve ------------------------------------------------------------------------------
@main.command()
@click.option("--host", help="Listen address (overrides server.host).")
@click.option("--port", type=int, help="Listen port (overrides server.port).")
@click.option("--state-dir", "serve_state_dir", help="State directory (overrides paths.state_dir).")
@pass_ctx
def serve(obj: Ctx, host: str | None, port: int | None, serve_state_dir: str | None) -> None:
    """Migrate, check models and secrets, then serve HTTP + WebSocket until SIGTERM/SIGINT.

    On SIGTERM the listener closes at once, in-flight requests get server.graceful_timeout_s
    to finish, then the database closes cleanly.
    """
    import uvicorn

    from appliance.app import create_app
    from appliance.db.migrations import MigrationError, migrate
    from appliance.errors import AppError
    from appliance.logs import configure_logging
    from appliance.models import HASH_CACHE, HashCache, ModelError, load_manifest, verify
    from appliance.secrets import SecretError, SecretStore

    if serve_state_dir:
        obj.state_dir = serve_state_dir
    settings = obj.settings(**{"server.host": host, "server.port": port})
    configure_logging(settings.log)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    state_lock = _hold_serve_lock(settings.state_dir)  # held (open) until the process ends
    try:
        migrate(settings.db_path)
        secrets = SecretStore(settings)
        secrets.ensure_generated()
    except (MigrationError, SecretError) as err:
        fail(str(err))
    if settings.readiness.require_models:
        try:
            statuses = verify(
                settings.models_dir,
                load_manifest(settings.models_dir),
                HashCache(settings.state_dir / HASH_CACHE),
            )
        except ModelError as err:
            fail(str(err))
        bad = [s for s in statuses if s.state != "ok"]
        if bad:
            fail(
                "; ".join(f"model {s.model}: {s.path} {s.state} ({s.detail})" for s in bad)
                + " — run ./install.sh or `salesboost models place`"
            )
    try:
        app = create_app(settings, secrets)
    except (ModelError, SecretError, AppError) as err:  # e.g. llm.model not in the manifest
        fail(str(err))
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        lifespan="on",
        workers=1,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.server.graceful_timeout_s,
        ssl_certfile=settings.server.tls_certfile or None,
        ssl_keyfile=settings.server.tls_keyfile or None,
        server_header=False,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit as stop:  # uvicorn exits 3 when it cannot start (a port in use...)
        if stop.code in (0, None):
            raise
        fail(
            f"could not serve on {settings.server.host}:{settings.server.port}: "
            "see the error above (a port in use, a bad TLS file...)"
        )
    if not server.started:
        sys.exit(EXIT_FAILED)
    del state_lock  # an fd number: the kernel drops the lock when the process exits


def _hold_serve_lock(state_dir: Path) -> int:
    """The state dir's lock (appliance/statelock.py): a second serve on it exits 1."""
    from appliance.statelock import StateInUse, hold_state_lock

    try:
        return hold_state_lock(state_dir)
    except StateInUse as err:
        fail(err.message)
        raise AssertionError from None  # unreachable: fail() exits


# --- migrate ----------------------------------------------------------------------------
@main.command()
@pass_ctx
def migrate(obj: Ctx) -> None:
    """Apply pending database migrations (each file in one transaction)."""
    from appliance.db.migrations import MigrationError
    from appliance.db.migrations import migrate as run

    settings = obj.settings()
    try:
        done = run(settings.db_path)
    except MigrationError as err:
        fail(str(err))
    for m in done:
        click.echo(f"applied {m.path.name}")
    click.echo(f"database {settings.db_path} is up to date")


# --- backup / restore ---------------------------------------------------------------------
def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _counts_line(manifest: dict[str, Any]) -> str:
    counts = manifest.get("counts", {})
    return ", ".join(f"{n} {k}" for k, n in counts.items())


@main.command()
@click.argument("dest", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--with-secrets",
    is_flag=True,
    help="Also archive the file keyring (secrets/): the archive then holds the session key and"
    " any LLM API key IN PLAIN TEXT; keep it like a password. Without it a restore keeps the"
    " target's own secrets or generates a new session key (everyone signs in again).",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Do not back up: check the archive DEST (sha256 of every member).",
)
@pass_ctx
def backup(obj: Ctx, dest: Path, with_secrets: bool, verify: bool) -> None:
    """Write ONE archive of the state dir to DEST, online (a running server keeps serving).

    DEST ending .tar.gz or .tgz is gzip-compressed; anything else is a plain tar. The
    archive (mode 0600) holds a manifest, a SQLite snapshot (online backup API), the live
    knowledge index (LanceDB) and the uploaded originals; not caches, logs or login sessions.
    """
    from appliance.backup import backup as run_backup
    from appliance.errors import AppError

    if verify:
        _verify_archive(dest)
        return
    settings = obj.settings()
    try:
        result = run_backup(settings, dest, with_secrets=with_secrets)
    except AppError as err:
        fail(err.message)
        raise AssertionError from None  # unreachable: fail() exits
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    for sha in result.missing_documents:
        click.echo(
            f"warning: documents/{sha} is referenced but gone (deleted meanwhile?)", err=True
        )
    manifest = result.manifest
    click.echo(
        f"wrote {result.path} ({_mib(result.size)}, {len(manifest['members'])} files) in "
        f"{result.seconds:.1f} s"
    )
    click.echo(f"contents: {_counts_line(manifest)}")
    click.echo(
        f"schema version {manifest['schema_version']}, secrets "
        + (
            "INCLUDED (plain text: keep the archive safe)"
            if manifest["with_secrets"]
            else "not included"
        )
    )


def _verify_archive(archive: Path) -> None:
    from appliance.backup import read_archive
    from appliance.errors import AppError

    try:
        manifest = read_archive(archive)
    except AppError as err:
        fail(f"{err.code}: {err.message}")
        raise AssertionError from None  # unreachable: fail() exits
    click.echo(
        f"{archive}: ok, {len(manifest['members'])} files checked; taken "
        f"{manifest.get('created_at')} on {manifest.get('host')} (salesboost "
        f"{manifest.get('appliance_version')}, schema {manifest.get('schema_version')})"
    )
    click.echo(f"contents: {_counts_line(manifest)}")
    click.echo(f"secrets: {'included' if manifest.get('with_secrets') else 'not included'}")


@main.command()
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing state (it is moved aside to <state>.before-restore-<time>).",
)
@click.option("--check", is_flag=True, help="Only check the archive; restore nothing.")
@pass_ctx
def restore(obj: Ctx, archive: Path, force: bool, check: bool) -> None:
    """Restore ARCHIVE (from `salesboost backup`) into the configured state dir.

    Refused while a server runs on that state dir. Every member's sha256 is checked before
    anything is replaced; pending migrations run on the restored database.
    """
    from appliance.backup import restore as run_restore
    from appliance.errors import AppError

    if check:
        _verify_archive(archive)
        return
    settings = obj.settings()
    try:
        result = run_restore(settings, archive, force=force)
    except AppError as err:
        fail(f"{err.code}: {err.message}")
        raise AssertionError from None  # unreachable: fail() exits
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    manifest = result.manifest
    click.echo(
        f"restored {archive} (taken {manifest.get('created_at')} on {manifest.get('host')}) "
        f"into {result.state_dir} in {result.seconds:.1f} s"
    )
    click.echo(f"contents: {_counts_line(manifest)}")
    if result.moved_aside:
        click.echo(f"the previous state is kept in {result.moved_aside}")
    done = result.replayed
    if done.users or done.sessions or done.purged:
        click.echo(
            "erased and deleted since the backup, and so again now: "
            f"{done.users} people, {done.sessions} sessions, {done.purged} purged sessions"
            f" (as recorded in {done.source})"
        )
    if done.tokens or done.accounts:
        click.echo(
            "revoked since the backup, and so still: "
            f"{done.tokens} API tokens deleted; {done.accounts} accounts keep their password, "
            f"disabled flag and role as they are now, signed out (as recorded in {done.source})"
        )
    if not done.anything and done.source and not done.skipped:
        click.echo(f"nothing was erased, deleted or revoked since the backup ({done.source})")
    for name in result.migrations:
        click.echo(f"applied {name}")
    click.echo(
        {
            "archive": "secrets: restored from the archive (sessions and API tokens stay valid)",
            "kept": "secrets: this box's own kept (sign-ins and API tokens made on this box"
            " stay valid; those of another appliance's archive do not: sign in again and"
            " re-issue its tokens)",
            "none": "secrets: none; `serve` generates a new session key (everyone signs in again)",
        }[result.secrets]
    )


# --- config -----------------------------------------------------------------------------
@main.group()
def config() -> None:
    """Inspect the configuration."""


def _redact(key: str, value: Any) -> Any:
    """A value as `config show` prints it: a string under a secret-sounding key is masked.

    Only the key's own name counts, word by word (not its section: `secrets.keyring` is a backend name), only
    strings can hold a secret (`llm.context_tokens` is a count), and a `*_secret` key names a
    keyring entry rather than holding one. Credentials inside a URL are masked too.
    """
    if not isinstance(value, str) or not value:
        return value
    name = key.rpartition(".")[2].lower()
    words = set(name.split("_"))  # whole words: `remote_tokenizer` is not a token
    secret = bool(words & set(SECRET_WORDS)) or "api_key" in name or "apikey" in name
    if secret and not name.endswith("_secret"):
        return "********"
    return re.sub(r"(?<=://)[^/@\s]+@", "********@", value)


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML-like lines.")
@pass_ctx
def config_show(obj: Ctx, as_json: bool) -> None:
    """Print the effective configuration with the source of each value (default, file, env, cli)."""
    loaded = obj.load()
    from appliance.config import to_tree

    tree = to_tree(loaded.settings)
    rows = []
    for section, values in tree.items():
        for key, value in values.items():
            dotted = f"{section}.{key}"
            rows.append((dotted, _redact(dotted, value), loaded.sources.get(dotted, "default")))
    if as_json:
        click.echo(json.dumps({k: {"value": v, "source": s} for k, v, s in rows}, indent=2))
        return
    click.echo(f"# config file: {loaded.file or '(none)'}")
    section = ""
    for dotted, value, source in rows:
        sec, _, key = dotted.partition(".")
        if sec != section:
            click.echo(f"\n[{sec}]")
            section = sec
        click.echo(f"{key} = {json.dumps(value)}  # {source}")


@config.command("docs")
def config_docs() -> None:
    """Print every configuration key as a Markdown table (docs/configuration.md)."""
    click.echo(render_config_docs(), nl=False)


def render_config_docs() -> str:
    """The Markdown reference of every key."""
    lines = [
        "# Configuration reference",
        "",
        "Generated by `salesboost config docs`; a test keeps it in step with `appliance/config.py`.",
        "",
        "Precedence, lowest first: default, `salesboost.toml` (or `--config` / `$SALESBOOST_CONFIG`),",
        "environment `SALESBOOST__SECTION__KEY`, command-line flags.",
        "",
        "| key | type | default | env | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, type_name, default, description in describe_fields():
        env = "SALESBOOST__" + key.replace(".", "__").upper()
        shown = "(project dir)" + default.split("/")[-1] if key.startswith("paths.") else default
        lines.append(
            f"| `{key}` | {type_name.replace('|', '/')} | `{json.dumps(shown)}` | `{env}` | {description} |"
        )
    return "\n".join(lines) + "\n"


# --- secrets ----------------------------------------------------------------------------
@main.group()
def secrets() -> None:
    """Named secrets: systemd credentials first, then the OS keyring (values are never printed)."""


def _store(obj: Ctx) -> Any:
    from appliance.secrets import SecretStore

    settings = obj.settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return SecretStore(settings)


def _read_secret_stdin(name: str) -> str:
    if sys.stdin.isatty():
        return str(click.prompt(f"value for {name}", hide_input=True, confirmation_prompt=True))
    value = sys.stdin.read().rstrip("\n")
    if not value:
        fail(f"no value for {name} on standard input", EXIT_USAGE)
    return value


@secrets.command("set")
@click.argument("name")
@pass_ctx
def secrets_set(obj: Ctx, name: str) -> None:
    """Store NAME, reading its value from standard input (or a hidden prompt)."""
    from appliance.secrets import SecretError

    store = _store(obj)
    try:
        store.set(name, _read_secret_stdin(name))
    except SecretError as err:
        fail(str(err))
    click.echo(f"secret {name} stored in the {store.backend.kind} keyring")


@secrets.command("list")
@pass_ctx
def secrets_list(obj: Ctx) -> None:
    """Secret names, where each is read from, and the backend; never values."""
    store = _store(obj)
    info = store.describe()
    click.echo(
        f"backend: {info['backend']} ({info['name']}{', ' + info['path'] if info['path'] else ''})"
    )
    if info["credentials_dir"]:
        click.echo(f"systemd credentials: {info['credentials_dir']}")
    for name in store.names():
        click.echo(f"{name}\t{store.source_of(name) or 'missing'}")


@secrets.command("rotate")
@click.argument("name")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the new value from standard input.")
@pass_ctx
def secrets_rotate(obj: Ctx, name: str, from_stdin: bool) -> None:
    """Replace NAME: generated secrets get a fresh random value; others read one from stdin.

    Rotating session_key signs everyone out and voids every API token.
    """
    from appliance.secrets import SecretError

    store = _store(obj)
    try:
        store.rotate(name, _read_secret_stdin(name) if from_stdin else None)
    except SecretError as err:
        fail(str(err))
    click.echo(f"secret {name} rotated")


@secrets.command("ensure")
@pass_ctx
def secrets_ensure(obj: Ctx) -> None:
    """Create the secrets the appliance generates itself (session_key) when missing."""
    store = _store(obj)
    for name in store.ensure_generated():
        click.echo(f"generated secret {name}")
    click.echo(f"secrets ready ({store.backend.kind} keyring)")


# --- users ------------------------------------------------------------------------------
@main.group()
def users() -> None:
    """Manage user accounts."""


def _with_auth(obj: Ctx, fn: Callable[[Any], Awaitable[T]]) -> T:
    from appliance.auth.service import AuthService
    from appliance.db.database import Database
    from appliance.db.migrations import MigrationError
    from appliance.db.migrations import migrate as run_migrations
    from appliance.secrets import SESSION_KEY, SecretStore

    settings = obj.settings()
    try:
        run_migrations(settings.db_path)
    except MigrationError as err:
        fail(str(err))
    store = SecretStore(settings)
    store.ensure_generated()
    key = store.require(SESSION_KEY).reveal().encode()

    async def go() -> T:
        async with Database(settings.db_path) as db:
            return await fn(AuthService(db, settings.auth, key))

    return run_async(go)


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "manager", "trainee"]), required=True)
@click.option("--team", help="Team name (created if new).")
@click.option("--display-name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def users_add(
    obj: Ctx, username: str, role: str, team: str | None, display_name: str, password_stdin: bool
) -> None:
    """Create USERNAME; without --password-stdin a password is generated and printed once."""
    from appliance.auth.service import CLI_ACTOR

    password = sys.stdin.read().rstrip("\n") if password_stdin else None

    async def go(auth: Any) -> Any:
        return await auth.create_user(
            CLI_ACTOR,
            username=username,
            role=role,
            team=team,
            password=password,
            display_name=display_name,
            must_change_password=False if password else None,
        )

    user, generated = _with_auth(obj, go)
    click.echo(f"created {user.role} {user.username} (id {user.id}, team {user.team or '-'})")
    if generated:
        click.echo(f"password (shown once, must be changed at first login): {generated}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def users_list(obj: Ctx, as_json: bool) -> None:
    """Every user with role, team and state."""
    rows = _with_auth(obj, lambda auth: auth.users.list())
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": u.id,
                        "username": u.username,
                        "role": u.role,
                        "team": u.team,
                        "disabled": u.disabled,
                    }
                    for u in rows
                ],
                indent=2,
            )
        )
        return
    for u in rows:
        click.echo(
            f"{u.id}\t{u.username}\t{u.role}\t{u.team or '-'}\t"
            f"{'disabled' if u.disabled else 'active'}"
        )


def _set_disabled(obj: Ctx, username: str, disabled: bool) -> None:
    from appliance.auth.service import CLI_ACTOR

    async def go(auth: Any) -> Any:
        user = await auth.user_by_name(username)
        return await auth.update_user(CLI_ACTOR, user.id, disabled=disabled)

    _with_auth(obj, go)
    click.echo(f"{'disabled' if disabled else 'enabled'} {username}")


@users.command("disable")
@click.argument("username")
@pass_ctx
def users_disable(obj: Ctx, username: str) -> None:
    """Disable USERNAME; their sessions and tokens stop working at once."""
    _set_disabled(obj, username, True)


@users.command("enable")
@click.argument("username")
@pass_ctx
def users_enable(obj: Ctx, username: str) -> None:
    """Re-enable USERNAME."""
    _set_disabled(obj, username, False)


@users.command("reset-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@pass_ctx
def users_reset_password(obj: Ctx, username: str, password_stdin: bool) -> None:
    """Give USERNAME a new password (generated and printed once unless read from stdin)."""
    from appliance.auth.service import CLI_ACTOR

    given = sys.stdin.read().rstrip("\n") if password_stdin else None

    async def go(auth: Any) -> str:
        user = await auth.user_by_name(username)
        return str(await auth.reset_password(CLI_ACTOR, user.id, given))

    password = _with_auth(obj, go)
    if given is None:
        click.echo(
            f"new password for {username} (shown once, must be changed at login): {password}"
        )
    else:
        click.echo(f"password for {username} reset; it must be changed at next login")


@users.command("bootstrap-admin")
@click.option("--username", default="admin", show_default=True)
@pass_ctx
def users_bootstrap_admin(obj: Ctx, username: str) -> None:
    """Create the first admin with a generated password, printed exactly once; no-op if one exists."""
    password = _with_auth(obj, lambda auth: auth.bootstrap_admin(username))
    if password is None:
        click.echo("an admin account already exists; nothing to do")
    else:
        click.echo(f"admin user: {username}")
        click.echo(f"admin password (shown once, change it at first login): {password}")


@users.command("erase")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Confirm: the erasure cannot be undone.")
@pass_ctx
def users_erase(obj: Ctx, username: str, yes: bool) -> None:
    """Erase USERNAME: the account, their practice sessions, API tokens and logins.

    Documents they uploaded stay; the audit log keeps their numeric id, not their name.
    """
    from appliance.auth.service import CLI_ACTOR

    if not yes:
        fail(f"erasing {username} deletes their account and practice data for good: add --yes", 2)

    async def go(auth: Any) -> Any:
        user = await auth.user_by_name(username)
        return user.id, await auth.erase_user(CLI_ACTOR, user.id)

    user_id, counts = _with_auth(obj, go)
    click.echo(
        f"erased user #{user_id}: {counts.sessions} practice sessions and {counts.tokens} API "
        f"tokens deleted; {counts.documents_kept} uploaded documents kept"
    )


# --- sessions (retention) ---------------------------------------------------------------
@main.group()
def sessions() -> None:
    """Practice sessions: retention."""


@sessions.command("purge")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=0),
    required=True,
    help="Delete ended sessions that ended more than DAYS days ago.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@pass_ctx
def sessions_purge(obj: Ctx, days: int, dry_run: bool) -> None:
    """Delete ended practice sessions older than --older-than days (live ones are never touched).

    Works with or without a server running: deletion goes in short batches.
    """
    from appliance.db.audit import AuditRepository
    from appliance.db.database import Database
    from appliance.db.migrations import MigrationError
    from appliance.db.migrations import migrate as run_migrations
    from appliance.db.practice import PracticeRepository
    from appliance.practice import retention

    settings = obj.settings()
    try:
        run_migrations(settings.db_path)
    except MigrationError as err:
        fail(str(err))
    cutoff = retention.cutoff_for(days)

    async def go() -> int:
        async with Database(settings.db_path) as db:
            repo = PracticeRepository(db)
            if dry_run:
                return await repo.count_expired(cutoff)
            total = await retention.purge(
                repo,
                cutoff,
                batch=settings.practice.retention_batch,
                delete=retention.direct_delete(db),
            )
            if total:
                await AuditRepository(db).record(
                    "sessions_purged",
                    actor="cli",
                    target="practice_sessions",
                    detail={"sessions": total, "older_than_days": days, "cutoff": cutoff},
                )
                await db.checkpoint()
            return total

    count = run_async(go)
    if dry_run:
        click.echo(f"would delete {count} ended practice sessions that ended before {cutoff}")
    else:
        click.echo(f"deleted {count} ended practice sessions that ended before {cutoff}")


# --- models -----------------------------------------------------------------------------
@main.group()
def models() -> None:
    """Model files under models/ (manifest.toml)."""


@models.command("place")
@pass_ctx
def models_place(obj: Ctx) -> None:
    """Copy or assemble the bundled models from their installed packages and verify sha256."""
    from appliance.models import ModelError, load_manifest, place_bundled

    settings = obj.settings()
    try:
        placed = place_bundled(settings.models_dir, load_manifest(settings.models_dir))
    except ModelError as err:
        fail(str(err))
    click.echo(f"placed: {', '.join(placed)}" if placed else "bundled models already in place")
    from appliance.knowledge.embedding import EmbeddingModelError, place_onnx_export

    try:  # the CPU embedding path's ONNX export, made once here rather than at first start
        exported = place_onnx_export(settings.models_dir, settings.knowledge.embedding_model)
    except EmbeddingModelError as err:
        fail(str(err))
    if exported is not None:
        click.echo(f"exported: {exported.relative_to(settings.models_dir)}")


@models.command("add")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--role",
    type=click.Choice(["chat", "embedding", "reranker"]),
    required=True,
    help="What the model is for: chat (a GGUF file), embedding or reranker (a model directory).",
)
@click.option("--name", default="", help="Name in the manifest (default: from the file name).")
@click.option(
    "--languages",
    default="",
    help="An embedding model's languages, comma-separated (en,zh); left out: any. Hybrid "
    "search uses full text alone for a query in another language.",
)
@pass_ctx
def models_add(obj: Ctx, path: Path, role: str, name: str, languages: str) -> None:
    """Register a model copied under models/: reads its metadata, hashes it, updates manifest.toml.

    A chat model is one GGUF file; an embedding model (BGE-M3, a sentence-transformers model)
    or a reranker (a cross-encoder such as bge-reranker) is a Hugging Face model directory.
    """
    from appliance.models import ModelError, add_model

    settings = obj.settings()
    try:
        langs = [x.strip() for x in languages.split(",") if x.strip()]
        if langs and role != "embedding":
            fail("--languages is for an embedding model")
        entry = add_model(settings.models_dir, path, role=role, name=name, languages=langs)
    except ModelError as err:
        fail(str(err))
    if entry.role == "chat":
        click.echo(
            f"added {entry.name}: {entry.arch or 'unknown arch'}, context {entry.context_length}, "
            f"chat template {'yes' if entry.chat_template else 'no (transcript prompts)'}, "
            f"sha256 {entry.files[0].sha256[:12]}…"
        )
        click.echo(f"use it with: [llm] model = {json.dumps(entry.name)}")
        return
    click.echo(
        f"added {entry.name}: {entry.arch or 'unknown arch'} ({entry.format}), "
        f"{len(entry.files)} files hashed"
    )
    if entry.role == "embedding":
        click.echo(
            f"use it with: [knowledge] embedding_model = {json.dumps(entry.name)}, "
            "then `salesboost reindex` and restart the server"
        )
    else:
        click.echo(f"use it with: [knowledge] reranker_model = {json.dumps(entry.name)}")


@models.command("list")
@click.option("--deep", is_flag=True, help="Re-hash every file instead of trusting the hash cache.")
@pass_ctx
def models_list(obj: Ctx, deep: bool) -> None:
    """Each model with role, source and the state of its files."""
    from appliance.models import HASH_CACHE, HashCache, ModelError, load_manifest, verify

    settings = obj.settings()
    try:
        manifest = load_manifest(settings.models_dir)
    except ModelError as err:
        fail(str(err))
    statuses = verify(
        settings.models_dir, manifest, HashCache(settings.state_dir / HASH_CACHE), deep=deep
    )
    for entry in manifest.model:
        states = {s.state for s in statuses if s.model == entry.name}
        state = "ok" if states == {"ok"} else ",".join(sorted(states - {"ok"}))
        extra = ""
        if entry.role == "chat":
            template = "chat-template" if entry.chat_template else "transcript"
            extra = f"\tctx {entry.context_length} {template}"
        click.echo(f"{entry.name}\t{entry.role}\t{state}\t{entry.path}\t{entry.source}{extra}")


# --- doctor -----------------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@pass_ctx
def doctor(obj: Ctx, as_json: bool) -> None:
    """What this box has: Python, CPU, GPU, models, state dir, secrets, database, port.

    Exits 1 when any check fails (warnings do not fail).
    """
    from appliance.doctor import run_checks

    settings = obj.settings()
    checks = run_checks(settings)
    if as_json:
        click.echo(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            click.echo(f"{c.status.upper():5} {c.name:<{width}}  {c.detail}")
    if any(c.status == "fail" for c in checks):
        sys.exit(EXIT_FAILED)


# --- knowledge --------------------------------------------------------------------------
def _files_under(paths: tuple[Path, ...]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            found.append(path)
    return found


def _collection_name(value: str) -> str:
    """--collection checked like the API checks it (exit 2 naming the rule)."""
    from appliance.knowledge.errors import KnowledgeError
    from appliance.knowledge.service import check_collection

    try:
        return check_collection(value)
    except KnowledgeError as err:
        raise click.BadParameter(f"{err.code}: {err.message}") from err


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--collection",
    default="default",
    show_default=True,
    help="Collection to add to (letters, digits, '_', '-', '.').",
    callback=lambda _ctx, _param, value: _collection_name(value),
)
@click.option("--tags", default="", help="Comma-separated tags for every file.")
@pass_ctx
def ingest(obj: Ctx, paths: tuple[Path, ...], collection: str, tags: str) -> None:
    """Ingest files and folders (recursively) into the knowledge base, with a progress bar.

    Runs the pipeline in this process against the state dir (no server needed; a running
    server keeps serving and sees the new documents once they are done). Exits 1 when any
    file failed or was rejected (an unsupported type is refused before it becomes a document);
    each is printed with its error code and the others go on.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from appliance.db.audit import AuditRepository
    from appliance.db.database import Database
    from appliance.db.migrations import MigrationError
    from appliance.db.migrations import migrate as run_migrations
    from appliance.errors import InvalidInput
    from appliance.knowledge.errors import KnowledgeError
    from appliance.knowledge.service import KnowledgeService

    settings = obj.settings()
    try:
        run_migrations(settings.db_path)
    except MigrationError as err:
        fail(str(err))
    files = _files_under(paths)
    tag_list = [t.strip() for t in tags.split(",") if t.strip()]

    async def go() -> list[tuple[str, str, str]]:
        async with Database(settings.db_path) as db:
            service = KnowledgeService(settings, db, resume=False)
            audit = AuditRepository(db)
            await service.start()
            try:
                jobs: dict[int, str] = {}
                outcome: list[tuple[str, str, str]] = []
                with Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                ) as bar:
                    task = bar.add_task("uploading", total=len(files))
                    for file in files:
                        try:
                            result = await service.upload(
                                filename=file.name,
                                data=file,
                                uploader_id=None,
                                collection=collection,
                                tags=tag_list,
                            )
                        except (KnowledgeError, InvalidInput) as err:  # refused: say so, go on
                            outcome.append((str(file), "rejected", f"{err.code}: {err.message}"))
                            bar.advance(task)
                            continue
                        doc = result.document
                        await audit.record(  # as the API records an upload
                            "document.upload",
                            actor="cli",
                            target=f"document:{doc.id}",
                            detail={
                                "title": doc.title,
                                "version": doc.version,
                                "collection": doc.collection,
                                "filename": doc.filename,
                                "job_id": result.job.id if result.job else None,
                                "duplicate": result.duplicate,
                            },
                        )
                        if result.duplicate or result.job is None:
                            outcome.append((str(file), "duplicate", f"document {doc.id}"))
                            bar.advance(task)
                        else:
                            jobs[result.job.id] = str(file)
                    bar.update(task, description="ingesting")
                    while jobs:
                        await asyncio.sleep(0.2)
                        for job_id in list(jobs):
                            job = await service.jobs.get(job_id)
                            if job is not None and job.state in ("done", "failed"):
                                detail = (
                                    f"{job.error_code}: {job.error_message}"
                                    if job.state == "failed"
                                    else f"document {job.document_id}"
                                )
                                outcome.append((jobs.pop(job_id), job.state, detail))
                                bar.advance(task)
                return outcome
            finally:
                await service.stop()

    outcome = run_async(go)
    failed = [o for o in outcome if o[1] == "failed"]
    rejected = [o for o in outcome if o[1] == "rejected"]
    for path, state, detail in outcome:
        if state != "done":
            click.echo(f"{state}\t{path}\t{detail}")
    done = sum(1 for o in outcome if o[1] == "done")
    duplicates = len(outcome) - done - len(failed) - len(rejected)
    click.echo(
        f"{done} ingested, {duplicates} duplicates, {len(failed)} failed"
        + (f", {len(rejected)} rejected" if rejected else "")
    )
    if failed or rejected:
        sys.exit(EXIT_FAILED)


@main.command()
@pass_ctx
def reindex(obj: Ctx) -> None:
    """Re-embed every chunk with knowledge.embedding_model into a new index, then switch to it.

    Search keeps answering from the current index until the new one is complete. After
    changing the model, restart the server so that it embeds queries with the new one.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from appliance.knowledge.service import reindex as run_reindex

    settings = obj.settings()
    with Progress(
        TextColumn("re-embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("reindex", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = run_reindex(settings, report)
    click.echo(
        f"index generation {summary['from_generation']} -> {summary['to_generation']}: "
        f"{summary['children']} chunks with {summary['model']} "
        f"({summary['embedded']} embedded, the rest from the cache)"
    )


# --- demo -------------------------------------------------------------------------------
@main.group()
def demo() -> None:
    """The bundled demo pack (credit card product, personas, scenarios, rubric, rules, documents)."""


@demo.command("load")
@click.option(
    "--replace", is_flag=True, help="Reset existing demo rows to the pack's content (by name)."
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for the documents' ingestion jobs (with a progress bar).",
)
@pass_ctx
def demo_load(obj: Ctx, replace: bool, wait: bool) -> None:
    """Load (or reload) the demo pack into the state dir; loading twice duplicates nothing.

    Rows are matched by name; documents are deduplicated by sha256 and ingested in this
    process into the collection `demo.collection`. Exits 1 when a document failed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from appliance.db.database import Database
    from appliance.db.migrations import MigrationError
    from appliance.db.migrations import migrate as run_migrations
    from appliance.knowledge.service import KnowledgeService, Upload
    from appliance.practice.demo.loader import load_demo

    settings = obj.settings()
    try:
        run_migrations(settings.db_path)
    except MigrationError as err:
        fail(str(err))

    async def go() -> tuple[dict[str, int], dict[str, int], dict[str, int], list[str]]:
        async with Database(settings.db_path) as db:
            service = KnowledgeService(settings, db, resume=False)
            await service.start()
            try:
                result = await load_demo(
                    db, service, replace=replace, collection=settings.demo.collection
                )
                lines: list[str] = []
                jobs: dict[int, str] = {}
                for upload in result.uploads:
                    assert isinstance(upload, Upload)
                    name = upload.document.filename
                    if upload.duplicate or upload.job is None:
                        lines.append(f"duplicate\t{name}\tdocument {upload.document.id}")
                    elif not wait:
                        lines.append(f"queued\t{name}\tjob {upload.job.id}")
                    else:
                        jobs[upload.job.id] = name
                with Progress(
                    TextColumn("ingesting demo documents"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    disable=not jobs,
                ) as bar:
                    task = bar.add_task("ingest", total=len(jobs))
                    while jobs:
                        await asyncio.sleep(0.2)
                        for job_id in list(jobs):
                            job = await service.jobs.get(job_id)
                            if job is not None and job.state in ("done", "failed"):
                                detail = (
                                    f"{job.error_code}: {job.error_message}"
                                    if job.state == "failed"
                                    else f"document {job.document_id}"
                                )
                                lines.append(f"{job.state}\t{jobs.pop(job_id)}\t{detail}")
                                bar.advance(task)
                return result.created, result.updated, result.kept, lines
            finally:
                await service.stop()

    created, updated, kept, lines = run_async(go)
    for line in lines:
        click.echo(line)

    def summary(counts: dict[str, int]) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "nothing"

    click.echo(f"created: {summary(created)}")
    click.echo(f"updated: {summary(updated)}")
    click.echo(f"kept: {summary(kept)}")
    click.echo(f"collection: {settings.demo.collection}")
    if any(line.startswith("failed") for line in lines):
        sys.exit(EXIT_FAILED)


# --- intent -----------------------------------------------------------------------------
class _DefaultCommandGroup(click.Group):
    """A group whose first argument, when it names no subcommand, goes to ``classify``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["classify", *args]
        return super().parse_args(ctx, args)


@main.group(cls=_DefaultCommandGroup)
def intent() -> None:
    """The intent classifier: `salesboost intent TEXT [--stage S]`, `salesboost intent train`."""


@intent.command("classify")
@click.argument("text")
@click.option("--stage", help="The stage the text was said in (OPENING ... COMPLETED).")
@click.option(
    "--previous", multiple=True, help="An earlier intent of the same speaker (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def intent_classify(
    obj: Ctx, text: str, stage: str | None, previous: tuple[str, ...], as_json: bool
) -> None:
    """Print the label and confidence of TEXT."""
    from appliance.errors import AppError
    from appliance.logs import configure_logging
    from appliance.practice.agents.intent import check_request, load_intent_classifier

    settings = obj.settings()
    configure_logging(settings.log)
    try:
        checked = check_request(text, stage)
    except AppError as err:
        fail(f"{err.code}: {err.message}", EXIT_USAGE)
        raise AssertionError from None  # unreachable: fail() exits
    result = load_intent_classifier(settings).classify(text, stage=checked, previous=previous)
    if as_json:
        click.echo(json.dumps({"label": result.label, "confidence": result.confidence}))
    else:
        click.echo(f"{result.label}\t{result.confidence:.3f}")


@intent.command("train")
@click.option(
    "--features",
    type=click.Choice(["chars", "chars+embedding"]),
    help="Feature variant (default: intent.features).",
)
@click.option(
    "--if-needed",
    is_flag=True,
    help="Do nothing when the stored model matches the training set and intent.features.",
)
@pass_ctx
def intent_train(obj: Ctx, features: str | None, if_needed: bool) -> None:
    """Train the classifier from the bundled training set into <models_dir>/intent (install)."""
    from appliance.practice.agents.intent import (
        TRAIN_FILE,
        load_examples,
        model_status,
        train_and_save,
    )

    settings = obj.settings()
    if if_needed and not features:
        state, detail = model_status(settings)
        if state == "ok":
            click.echo(f"intent model already up to date: {detail}")
            return
    model, path, seconds = train_and_save(settings, features=features)  # type: ignore[arg-type]
    examples = len(load_examples(TRAIN_FILE))
    if path is None:
        fail(f"trained in {seconds:.1f} s but could not write under {settings.models_dir}")
    click.echo(
        f"intent model ({model.features}, {len(model.labels)} labels, {examples} examples)"
        f" trained in {seconds:.1f} s -> {path}"
    )


# --- bench ------------------------------------------------------------------------------
def out_option(bench_name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The ``--out`` option every bench shares: where its JSON results go."""
    return click.option(
        "--out",
        type=click.Path(path_type=Path),
        default=Path(f"bench-{bench_name}.json"),
        show_default=True,
        help="Where to write the JSON results.",
    )


settings_option = click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="A setting for the server under test (repeatable), e.g. llm.threads=1.",
)
"""The ``--set`` option of the benches that start their own server."""


@main.group()
def bench() -> None:
    """Load generators; each prints a table and writes JSON."""


@bench.command("http")
@click.option("--clients", default=64, show_default=True, help="Concurrent keep-alive connections.")
@click.option("--duration", default=10.0, show_default=True, help="Seconds per endpoint.")
@click.option("--url", help="Target an already running appliance (needs --token).")
@click.option("--token", help="API token for the authenticated endpoint when --url is given.")
@out_option("http")
def bench_http(
    clients: int, duration: float, url: str | None, token: str | None, out: Path
) -> None:
    """Requests/s and p50/p99 latency for /healthz and an authenticated JSON endpoint."""
    from appliance.bench.http import run_http_bench

    run_http_bench(clients=clients, duration=duration, url=url, token=token, out=out)


@bench.command("retention")
@click.option("--turns", default=500, show_default=True, help="Turn commits timed per run.")
@click.option("--delete-sessions", default=300, show_default=True, help="Sessions deleted per run.")
@click.option("--repeat", default=3, show_default=True, help="Runs per setting (best is shown).")
@out_option("retention")
def bench_retention(turns: int, delete_sessions: int, repeat: int, out: Path) -> None:
    """PRAGMA secure_delete OFF vs ON: turn commit ms and deletions/s on the real schema."""
    from appliance.bench.retention import run_retention_bench

    run_retention_bench(turns=turns, delete_sessions=delete_sessions, repeat=repeat, out=out)


@bench.command("ingest")
@click.option("--repeat", default=2, show_default=True, help="OCR runs per page and setting.")
@click.option("--pdf-pages", default=200, show_default=True, help="Pages of the text PDF.")
@out_option("ingest")
@pass_ctx
def bench_ingest(obj: Ctx, repeat: int, pdf_pages: int, out: Path) -> None:
    """OCR s/page on dense A4 pages (RapidOCR defaults beside ours) and text-PDF pages/s."""
    from appliance.bench.ingest import run_ingest_bench

    settings = obj.settings()
    run_ingest_bench(models=settings.models_dir, repeat=repeat, pdf_pages=pdf_pages, out=out)


@bench.command("llm")
@click.option("--sessions", default=4, show_default=True, help="Sessions played to turn 10.")
@click.option("--turns", default=3, show_default=True, help="Timed turns per session (10, 11, …).")
@click.option("--repeat", default=3, show_default=True, help="Runs per stream count (median kept).")
@click.option("--fast", is_flag=True, help="Run with llm.exact_reuse = false.")
@out_option("llm")
@pass_ctx
def bench_llm(obj: Ctx, sessions: int, turns: int, repeat: int, fast: bool, out: Path) -> None:
    """TTFT at turn 10 with/without KV reuse, decode tokens/s at 1-16 streams, reference API."""
    import msgspec

    from appliance.bench.llm import run_llm_bench
    from appliance.llm.factory import chat_model_path
    from appliance.models import ModelError

    settings = obj.settings()
    try:
        model = Path(chat_model_path(settings))
    except ModelError as err:
        fail(str(err))
    config = msgspec.structs.replace(
        settings.llm, exact_reuse=not fast and settings.llm.exact_reuse
    )
    run_llm_bench(
        model=model, config=config, sessions=sessions, turns=turns, repeat=repeat, out=out
    )


@bench.command("search")
@click.option("--rows", default=100_000, show_default=True, help="Child chunks in the corpus.")
@click.option("--distinct", default=2000, show_default=True, help="Distinct texts really embedded.")
@click.option("--queries", default=200, show_default=True, help="Timed queries (half codes).")
@click.option(
    "--embed-chunks", default=512, show_default=True, help="Chunks for chunks/s (0: skip)."
)
@click.option("--embed-words", default=75, show_default=True, help="Words per chunk (~100 tokens).")
@click.option(
    "--backend",
    type=click.Choice(["auto", "flagembedding", "onnx"]),
    default=None,
    help="Query embedding backend for the search part (default: knowledge.embedding_backend).",
)
@click.option(
    "--corpus",
    "corpora",
    type=click.Choice(["zipf", "degenerate"]),
    multiple=True,
    help="Search corpus vocabulary, repeatable (default: both): zipf = ~8,000 words with a"
    " Zipf law; degenerate = the old 43 words, uniform (every posting list is long).",
)
@click.option("--no-search", is_flag=True, help="Embedding part only (skip hybrid search).")
@click.option(
    "--served-only",
    is_flag=True,
    help="Search: the default setting only, no flat scan, old IVF_PQ setting or sweep (1M rows).",
)
@out_option("search")
@pass_ctx
def bench_search(
    obj: Ctx,
    rows: int,
    distinct: int,
    queries: int,
    embed_chunks: int,
    embed_words: int,
    backend: str | None,
    corpora: tuple[str, ...],
    no_search: bool,
    served_only: bool,
    out: Path,
) -> None:
    """Embedding chunks/s (torch vs ONNX) and hybrid search p50/p99 on a synthetic corpus."""
    from appliance.bench.search import run_search_bench

    settings = obj.settings()
    run_search_bench(
        models_dir=settings.models_dir,
        rows=rows,
        distinct=distinct,
        queries=queries,
        embed_chunks=embed_chunks,
        embed_words=embed_words,
        backend=backend or settings.knowledge.embedding_backend,
        corpora=() if no_search else corpora or ("zipf", "degenerate"),
        served_only=served_only,
        out=out,
    )


@bench.command("intent")
@click.option("--repeat", default=5, show_default=True, help="Timed calls per held-out text.")
@click.option(
    "--variants",
    default="chars,chars+embedding",
    show_default=True,
    help="Comma-separated feature variants to compare.",
)
@out_option("intent")
@pass_ctx
def bench_intent(obj: Ctx, repeat: int, variants: str, out: Path) -> None:
    """Held-out accuracy (overall, per language, per label) and p50/p95 ms per call, by variant."""
    from appliance.bench.intent import run_intent_bench

    settings = obj.settings()
    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    bad = [v for v in chosen if v not in ("chars", "chars+embedding")]
    if bad or not chosen:
        fail(f"unknown variant(s) {bad}: use chars and/or chars+embedding", EXIT_USAGE)
    run_intent_bench(settings, variants=chosen, repeat=repeat, out=out)


@bench.command("practice")
@click.option(
    "--levels", default="1,2,4,8", show_default=True, help="Concurrent trainees, comma-separated."
)
@click.option("--turns", default=4, show_default=True, help="Turns per trainee.")
@click.option("--think", default=3.0, show_default=True, help="Mean think time between turns (s).")
@click.option("--target", default=1.5, show_default=True, help="p95 TTFT target (s).")
@settings_option
@out_option("practice")
def bench_practice(
    levels: str, turns: int, think: float, target: float, settings: tuple[str, ...], out: Path
) -> None:
    """Simulated trainees over real WebSockets: TTFT p50/p95/p99, turns/min, errors, RSS."""
    from appliance.bench.practice import run_practice_bench

    run_practice_bench(
        levels=[int(x) for x in levels.split(",") if x.strip()],
        turns=turns,
        think_s=think,
        target_s=target,
        settings=list(settings),
        out=out,
    )


@bench.command("fanout")
@click.option("--idle", default=1000, show_default=True, help="Idle connections (idle sessions).")
@click.option("--active", default=100, show_default=True, help="Active sessions (turns running).")
@click.option("--observers", default=1, show_default=True, help="Observers per active session.")
@click.option("--turns", default=2, show_default=True, help="Turns per active session.")
@click.option("--think", default=5.0, show_default=True, help="Mean think time between turns (s).")
@settings_option
@out_option("fanout")
def bench_fanout(
    idle: int,
    active: int,
    observers: int,
    turns: int,
    think: float,
    settings: tuple[str, ...],
    out: Path,
) -> None:
    """Idle + active connections with observers: delivered events/s, delivery p99, RSS."""
    from appliance.bench.practice import run_fanout_bench

    run_fanout_bench(
        idle=idle,
        active=active,
        observers=observers,
        turns=turns,
        think_s=think,
        settings=list(settings),
        out=out,
    )


@bench.command("ui")
@click.option("--repeat", default=10, show_default=True, help="Loads per page (cold + warm each).")
@click.option(
    "--target", default=1000.0, show_default=True, help="Time-to-interactive target (ms)."
)
@out_option("ui")
def bench_ui(repeat: int, target: float, out: Path) -> None:
    """The browser UI in Debian's Chromium: bytes per page and navigation-to-interactive time."""
    from appliance.bench.ui import run_ui_bench

    run_ui_bench(repeat=repeat, target_ms=target, out=out)


if __name__ == "__main__":  # pragma: no cover
    main()
