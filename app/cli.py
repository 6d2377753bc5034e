"""The `pwbi-gateway` command: run, serve, worker, migrate, tenants, tokens, verify, support."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from app.durations import parse_duration_s
from app.operator_commands import (
    OperatorCommandFailed,
    add_operator_commands,
    run_operator_command,
)
from app.security.jwt_auth import ALL_SCOPES, issue_token
from app.settings import Settings, SettingsError, load_settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
CLI_ACTOR = "operator:cli"
DEFAULT_GATEWAY = "http://127.0.0.1:8080"  # where `run` serves by default


class CommandFailed(Exception):
    """A command could not do its job; the message is printed and the exit code is 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pwbi-gateway",
        description="Integration gateway: provider and POS events in, signed webhooks out.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="everything for local use: migrate, Redis, gateway, worker")
    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    commands.add_parser("worker", help="run a delivery worker")
    commands.add_parser("migrate", help="bring the database schema up to date")

    tenants = commands.add_parser("tenants", help="manage tenants").add_subparsers(
        dest="tenants_command", required=True, metavar="ACTION"
    )
    create = tenants.add_parser("create", help="create a tenant and print its id")
    create.add_argument("name")
    tenants.add_parser("list", help="list tenants")
    for action in ("disable", "enable"):
        sub = tenants.add_parser(action, help=f"{action} a tenant (its tokens stop/start working)")
        sub.add_argument("tenant_id")

    add_operator_commands(commands)

    verify = commands.add_parser(
        "verify",
        help="check a saved webhook request (headers + body, on stdin or --file) against a secret",
    )
    verify.add_argument("--secret", required=True, help="the subscription's whsec_... secret")
    verify.add_argument("--file", help="read the saved request from this file instead of stdin")
    verify.add_argument(
        "--ignore-timestamp",
        action="store_true",
        help="check only the signature (for requests saved more than 5 minutes ago)",
    )

    listen = commands.add_parser(
        "listen",
        help="receive webhooks here: subscribe a local receiver, print each delivery verified",
    )
    listen.add_argument("--token", help="partner token (default: $TOKEN, as `run` prints it)")
    listen.add_argument(
        "--gateway", default=DEFAULT_GATEWAY, help=f"gateway URL (default {DEFAULT_GATEWAY})"
    )
    listen.add_argument(
        "--events",
        default="*",
        help="comma-separated event types or patterns (default '*', every event)",
    )
    listen.add_argument(
        "--port", type=int, default=0, help="receiver port on 127.0.0.1 (default: a free one)"
    )

    tokens = commands.add_parser("tokens", help="issue partner tokens").add_subparsers(
        dest="tokens_command", required=True, metavar="ACTION"
    )
    issue = tokens.add_parser("issue", help="issue a JWT for a tenant (printed on the last line)")
    issue.add_argument("--tenant", required=True, help="tenant id (ten_...)")
    issue.add_argument(
        "--scope",
        action="append",
        choices=ALL_SCOPES,
        metavar="SCOPE",
        help=f"repeatable; default all: {' '.join(ALL_SCOPES)}",
    )
    issue.add_argument("--ttl", default="30d", help="lifetime such as 1h, 30d (default 30d)")
    issue.add_argument("--kid", help="which GATEWAY_JWT_SECRETS key signs (default: the first)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "verify":
            # A partner's debugging tool: needs no gateway configuration at all.
            return _verify(args)
        if args.command == "listen":
            # A client of the HTTP API, like verify: the gateway's settings are not read.
            return _listen(args)
        settings = load_settings()
        return _dispatch(args, settings)
    except SettingsError as exc:
        print(f"pwbi-gateway: configuration error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except CommandFailed as exc:
        print(f"pwbi-gateway: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from app.delivery.verify_command import explain_verification

    if args.file:
        try:
            with open(args.file, "rb") as saved:
                raw = saved.read()
        except OSError as exc:
            raise CommandFailed(f"--file: {exc.strerror}") from None
    else:
        raw = sys.stdin.buffer.read()
    ok, message = explain_verification(
        args.secret, raw, tolerance_s=None if args.ignore_timestamp else 300
    )
    print(message if ok else f"FAILED: {message}")
    return EXIT_OK if ok else EXIT_FAILURE


def _listen(args: argparse.Namespace) -> int:
    from app.listen_command import ListenFailed, run_listen

    token = (args.token or os.environ.get("TOKEN", "")).strip()
    if not token:
        raise CommandFailed("listen needs a token: --token, or TOKEN in the environment")
    events = [part.strip() for part in args.events.split(",") if part.strip()]
    if not 0 <= args.port <= 65535:
        raise CommandFailed("--port must be between 0 and 65535")
    try:
        run_listen(gateway=args.gateway, token=token, events=events or ["*"], port=args.port)
    except ListenFailed as exc:
        raise CommandFailed(str(exc)) from None
    return EXIT_OK


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "migrate":
        from app.store.migrate import upgrade_to_head

        upgrade_to_head(settings.database_url)
        print("database is up to date")
        return EXIT_OK
    if args.command == "serve":
        from app.serve import serve

        serve(settings, workers=args.workers)
        return EXIT_OK
    if args.command == "worker":
        from app.worker_process import run_worker

        run_worker(settings)
        return EXIT_OK
    if args.command == "run":
        from app.local_run import run_everything

        return run_everything(settings)
    if args.command == "tenants":
        return asyncio.run(_tenants(args, settings))
    if args.command == "tokens":
        return asyncio.run(_issue_token(args, settings))
    if args.command in ("deliveries", "subscriptions"):
        try:
            asyncio.run(run_operator_command(args, settings))
        except OperatorCommandFailed as exc:
            raise CommandFailed(str(exc)) from None
        return EXIT_OK
    raise AssertionError(args.command)


async def _tenants(args: argparse.Namespace, settings: Settings) -> int:
    from app.store.engine import create_engine
    from app.store.tenants import (
        create_tenant,
        list_tenants,
        set_tenant_status,
    )

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            if args.tenants_command == "create":
                name = args.name.strip()
                if not name or len(name) > 200:
                    raise CommandFailed("tenant name must be 1-200 characters")
                tenant = await create_tenant(conn, name, actor=CLI_ACTOR)
                print(tenant.id)
            elif args.tenants_command == "list":
                for tenant in await list_tenants(conn):
                    print(
                        f"{tenant.id}\t{tenant.status}\t{tenant.created_at:%Y-%m-%dT%H:%M:%SZ}\t{tenant.name}"
                    )
            else:
                status = "enabled" if args.tenants_command == "enable" else "disabled"
                if not await set_tenant_status(conn, args.tenant_id, status, actor=CLI_ACTOR):
                    raise CommandFailed(f"no tenant {args.tenant_id}")
                print(f"{args.tenant_id} {status}")
    finally:
        await engine.dispose()
    return EXIT_OK


async def _issue_token(args: argparse.Namespace, settings: Settings) -> int:
    from app.store.engine import create_engine
    from app.store.tenants import get_tenant

    try:
        ttl_s = parse_duration_s(args.ttl)
    except ValueError as exc:
        raise CommandFailed(f"--ttl: {exc}") from None
    if not settings.jwt_secrets:
        raise CommandFailed(
            "tokens issue signs with an HS256 key from GATEWAY_JWT_SECRETS (KID=SECRET); "
            "none is configured"
        )
    kid = args.kid or next(iter(settings.jwt_secrets))
    if kid not in settings.jwt_secrets:
        raise CommandFailed(f"--kid: no key {kid!r} in GATEWAY_JWT_SECRETS")
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            tenant = await get_tenant(conn, args.tenant)
    finally:
        await engine.dispose()
    if tenant is None:
        raise CommandFailed(f"no tenant {args.tenant}")
    if not tenant.enabled:
        raise CommandFailed(f"tenant {args.tenant} is disabled")
    try:
        token = issue_token(
            kid=kid,
            secret=settings.jwt_secrets[kid],
            subject=tenant.id,
            scopes=args.scope or ALL_SCOPES,
            ttl_s=ttl_s,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except ValueError as exc:
        raise CommandFailed(str(exc)) from None
    print(token)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
