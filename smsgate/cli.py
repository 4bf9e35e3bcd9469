"""The operator CLI (SPEC §7). Every command exits non-zero with a one-line reason on bad
input; every command takes --database or SMSGATE_DATABASE_URL."""

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import logging
import os
import sys
import time
import tomllib
import types
import typing
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from . import __version__

DEFAULT_DATABASE_URL = "sqlite:///smsgate.db"


class CliError(Exception):
    """Bad input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (SPEC §7), not argparse's usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        return 130
    except (CliError, ValueError, LookupError, OSError) as exc:
        print(f"smsgate: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # storage errors and the like: still one line
        print(f"smsgate: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--database", metavar="URL",
                    default=os.environ.get("SMSGATE_DATABASE_URL", DEFAULT_DATABASE_URL),
                    help="sqlite:///path.db (default ./smsgate.db) or postgresql://user@host/db;"
                         " env SMSGATE_DATABASE_URL")
    parser = _Parser(
        prog="smsgate", description="SMS gateway: SMPP 3.4 server, HTTP API, routing, credits.")
    parser.add_argument("--version", action="version", version=f"smsgate {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[db], help="run the gateway")
    serve.add_argument("--config", metavar="FILE", help="TOML settings file")
    serve.add_argument("--smpp-port", type=int, metavar="N", help="SMPP port (default 8899)")
    serve.add_argument("--http-port", type=int, metavar="N", help="HTTP port (default 8080)")
    serve.add_argument("--smpp-tls-port", type=int, metavar="N",
                       help="also serve SMPP over TLS on this port (default off)")
    serve.add_argument("--tls-cert", metavar="FILE", help="PEM certificate for --smpp-tls-port")
    serve.add_argument("--tls-key", metavar="FILE", help="PEM private key for --tls-cert")
    serve.add_argument("--host", metavar="ADDR", help="listen address (default 127.0.0.1)")
    serve.add_argument("--node-id", metavar="NAME", help="this node's name (default hostname)")
    serve.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    serve.add_argument("--callbacks-allow-private", action="store_true", default=None,
                       help="let dlrurl callbacks reach loopback/private/link-local addresses")
    serve.set_defaults(handler=cmd_serve)

    migrate = sub.add_parser("migrate", parents=[db], help="create / upgrade the schema")
    migrate.set_defaults(handler=cmd_migrate)

    _account_commands(sub, db)

    credit = sub.add_parser("credit", parents=[db],
                            help="top up an account (negative to debit), with a ledger entry")
    credit.add_argument("system_id")
    credit.add_argument("amount", help="credits, e.g. 100 or -2.5")
    credit.set_defaults(handler=cmd_credit)

    route = sub.add_parser("route", help="routes by destination prefix").add_subparsers(
        metavar="ACTION")
    add = route.add_parser("add", parents=[db], help="add a route")
    add.add_argument("prefix", help="destination prefix digits; '' for catch-all")
    add.add_argument("connector")
    add.add_argument("--price", default="1", help="credits per SMS part (default 1)")
    add.add_argument("--account", metavar="SYSTEM_ID", help="only for this account")
    add.add_argument("--priority", type=int, default=0)
    add.set_defaults(handler=cmd_route_add)
    lst = route.add_parser("list", parents=[db], help="list routes")
    lst.set_defaults(handler=cmd_route_list)

    connector = sub.add_parser("connector", help="upstream connectors").add_subparsers(
        metavar="ACTION")
    cadd = connector.add_parser("add", parents=[db], help="add a connector")
    cadd.add_argument("name")
    cadd.add_argument("--type", required=True, choices=["smpp", "http", "simulator"])
    cadd.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                      help="connector setting, e.g. min_latency_ms=10 (repeatable)")
    cadd.add_argument("--outcome", action="append", default=[], metavar="STATUS=WEIGHT",
                      help="simulator outcome mix, e.g. DELIVRD=9 --outcome UNDELIV=1")
    cadd.set_defaults(handler=cmd_connector_add)
    clist = connector.add_parser("list", parents=[db], help="list connectors")
    clist.set_defaults(handler=cmd_connector_list)

    coverage = sub.add_parser("coverage", help="coverage table").add_subparsers(metavar="ACTION")
    imp = coverage.add_parser("import", parents=[db],
                              help="replace coverage from CSV: country, iso, operator, mcc, mnc,"
                                   " prefix, price")
    imp.add_argument("file")
    imp.set_defaults(handler=cmd_coverage_import)
    return parser


def _account_commands(sub, db: argparse.ArgumentParser) -> None:
    account = sub.add_parser("account", help="customer accounts").add_subparsers(
        metavar="ACTION")
    add = account.add_parser("add", parents=[db], help="create an account")
    add.add_argument("system_id")
    add.add_argument("--password", required=True)
    add.add_argument("--credits", default="0", help="opening balance")
    add.add_argument("--expires", metavar="YYYY-MM-DD", help="last day the account works")
    add.add_argument("--max-tx", type=int, default=10, help="transmitter sessions (default 10)")
    add.add_argument("--tps", type=int, default=0, help="messages per second (0 = unlimited)")
    add.add_argument("--sender", nargs="+", default=[], metavar="SID", help="allowed sender ids")
    add.add_argument("--allow-ip", nargs="+", default=[], metavar="CIDR", help="allowed IPs")
    add.add_argument("--no-http", action="store_true", help="refuse HTTP API access")
    add.add_argument("--no-smpp", action="store_true", help="refuse SMPP binds")
    add.add_argument("--status-auth", action="store_true",
                     help="HTTP status queries must give this account's user/pass")
    add.set_defaults(handler=cmd_account_add)
    for name, handler, text in (("list", cmd_account_list, "list accounts"),
                                ("show", cmd_account_show, "show one account"),
                                ("disable", cmd_account_disable, "disable an account"),
                                ("enable", cmd_account_enable, "enable an account"),
                                ("passwd", cmd_account_passwd, "set a new password")):
        p = account.add_parser(name, parents=[db], help=text)
        if name != "list":
            p.add_argument("system_id")
        if name == "passwd":
            p.add_argument("--password", help="the new password (asked for when omitted)")
        p.set_defaults(handler=handler)
    auth = account.add_parser("status-auth", parents=[db],
                              help="whether HTTP status queries must give user/pass")
    auth.add_argument("system_id")
    auth.add_argument("mode", choices=["on", "off"])
    auth.set_defaults(handler=cmd_account_status_auth)


# -- helpers -----------------------------------------------------------------------------

def _with_store(args, work: Callable) -> int:
    async def run() -> int:
        from .app import seed
        from .store import open_store

        store = open_store(args.database)
        await store.open()
        try:
            await store.migrate()
            await seed(store)
            return await work(store) or 0
        finally:
            await store.close()

    return asyncio.run(run())


async def _account(store, system_id: str):
    account = await store.get_account(system_id)
    if account is None:
        raise CliError(f"no account {system_id!r}")
    return account


def _expiry(text: str | None) -> float | None:
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise CliError(f"--expires {text!r} is not YYYY-MM-DD") from None
    return day.timestamp() + 86400  # the account works through that whole day (UTC)


def _units(text: str, what: str) -> int:
    from .core.models import credits_to_units
    try:
        return credits_to_units(text)
    except ValueError:
        raise CliError(f"{what} {text!r} is not a number") from None


def _print_account(account) -> None:
    from .core.models import format_credits
    expires = (datetime.fromtimestamp(account.expires_at - 86400, UTC).date().isoformat()
               if account.expires_at else "never")
    print(f"system_id:   {account.system_id}\n"
          f"balance:     {format_credits(account.balance)}\n"
          f"enabled:     {'yes' if account.enabled else 'no'}\n"
          f"expires:     {expires}\n"
          f"max_tx:      {account.max_tx}\n"
          f"tps:         {account.tps or 'unlimited'}\n"
          f"senders:     {' '.join(account.allowed_senders) or 'any'}\n"
          f"allowed ips: {' '.join(account.allowed_ips) or 'any'}\n"
          f"access:      {'smpp ' if account.smpp_enabled else ''}"
          f"{'http' if account.http_enabled else ''}\n"
          f"status auth: {'required' if account.status_auth else 'optional'}")


# -- commands ----------------------------------------------------------------------------

def cmd_serve(args) -> int:
    from .app import Settings, serve

    settings = Settings()
    if args.config:
        _apply_config(settings, args.config)
    if args.database != DEFAULT_DATABASE_URL or not args.config:
        settings.database_url = args.database
    for name in ("smpp_port", "http_port", "smpp_tls_port", "tls_cert", "tls_key", "host",
                 "node_id"):
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    if args.callbacks_allow_private:
        settings.http.callbacks.allow_private = True
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .servers import log_redaction
    log_redaction.install()  # no password or token in any line (the App adds its loggers)
    runner: Callable[[Awaitable], object]
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency, but stay runnable
        runner = asyncio.run
    runner(serve(settings))
    return 0


def _apply_config(settings, path: str) -> None:
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"{path}: {exc}") from None
    _apply_table(settings, data, f"{path}: ")


def _apply_table(target, table: dict, where: str, prefix: str = "") -> None:
    """Set a dataclass's fields from a TOML table; a nested table goes into the field's
    own dataclass, to any depth. Values are checked against the field's type hint."""
    hints = typing.get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if key not in names:
            raise CliError(f"{where}unknown setting {name}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise CliError(f"{where}{name} must be a table ([{name}]), not {value!r}")
            _apply_table(current, value, where, f"{name}.")
        else:
            setattr(target, key, _typed(value, hints[key], f"{where}{name}"))


def _typed(value, hint, name: str):
    """`value` as `hint` (str, int, float, bool, X | None, tuple[X, ...], list[X],
    dict); a one-line CliError when it does not fit."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            if arm is not type(None):
                with contextlib.suppress(CliError):
                    return _typed(value, arm, name)
    elif hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif hint in (bool, int, str):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
    elif origin in (tuple, list) and isinstance(value, list):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise CliError(f"{name} must be a list of {len(args)} items, not {value!r}")
            return tuple(_typed(v, a, f"{name}[{i}]") for i, (v, a) in
                         enumerate(zip(value, args, strict=True)))
        items = [_typed(v, args[0], f"{name}[{i}]") if args else v
                 for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    elif hint is typing.Any or (dict in (hint, origin) and isinstance(value, dict)):
        return value
    raise CliError(f"{name} must be {_type_name(hint)}, not {value!r}")


def _type_name(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin in (tuple, list):
        return f"a list of {_type_name(args[0]) if args else 'values'}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            dict: "a table"}.get(origin or hint, str(hint))


def cmd_migrate(args) -> int:
    async def work(store) -> None:
        print(f"schema up to date ({store.backend})")
    return _with_store(args, work)


def cmd_account_add(args) -> int:
    from .core.accounts import hash_password
    from .core.models import Account
    if not 1 <= len(args.system_id) <= 16:
        raise CliError("system_id must be 1 to 16 characters")
    if not args.password:
        raise CliError("--password must not be empty")
    credits = _units(args.credits, "--credits")
    account = Account(system_id=args.system_id, password_hash=hash_password(args.password),
                      expires_at=_expiry(args.expires), max_tx=args.max_tx, tps=args.tps,
                      allowed_senders=tuple(args.sender), allowed_ips=tuple(args.allow_ip),
                      http_enabled=not args.no_http, smpp_enabled=not args.no_smpp,
                      status_auth=args.status_auth, created_at=time.time())
    _check_cidrs(args.allow_ip)

    async def work(store) -> None:
        from .core.ports import Conflict
        try:
            created = await store.add_account(account)
        except Conflict:
            raise CliError(f"account {args.system_id!r} exists already") from None
        if credits:
            await store.adjust_balance(created.id, credits, "opening balance")
        print(f"account {args.system_id} created")
    return _with_store(args, work)


def _check_cidrs(cidrs: list[str]) -> None:
    import ipaddress
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise CliError(f"--allow-ip {cidr!r} is not an IP address or CIDR") from None


def cmd_account_list(args) -> int:
    from .core.models import format_credits

    async def work(store) -> None:
        accounts = await store.list_accounts()
        print(f"{'SYSTEM_ID':16} {'BALANCE':>14} {'ENABLED':7} {'TPS':>5} {'MAX_TX':>6}")
        for a in accounts:
            print(f"{a.system_id:16} {format_credits(a.balance):>14} "
                  f"{'yes' if a.enabled else 'no':7} {a.tps or '-':>5} {a.max_tx:>6}")
    return _with_store(args, work)


def cmd_account_show(args) -> int:
    async def work(store) -> None:
        _print_account(await _account(store, args.system_id))
    return _with_store(args, work)


def _set_enabled(args, enabled: bool) -> int:
    async def work(store) -> None:
        account = await _account(store, args.system_id)
        account.enabled = enabled
        await store.update_account(account)
        print(f"account {args.system_id} {'enabled' if enabled else 'disabled'}")
    return _with_store(args, work)


def cmd_account_disable(args) -> int:
    return _set_enabled(args, False)


def cmd_account_enable(args) -> int:
    return _set_enabled(args, True)


def cmd_account_status_auth(args) -> int:
    required = args.mode == "on"

    async def work(store) -> None:
        account = await _account(store, args.system_id)
        account.status_auth = required
        await store.update_account(account)
        print(f"account {args.system_id}: status queries "
              f"{'must give' if required else 'need not give'} its user/pass")
    return _with_store(args, work)


def cmd_account_passwd(args) -> int:
    from .core.accounts import hash_password
    password = args.password
    if password is None:
        if not sys.stdin.isatty():
            raise CliError("no terminal to ask for the password: use --password")
        import getpass
        password = getpass.getpass("new password: ")
    if not password:
        raise CliError("the password must not be empty")

    async def work(store) -> None:
        account = await _account(store, args.system_id)
        account.password_hash = hash_password(password)
        await store.update_account(account)
        print(f"password of {args.system_id} changed")
    return _with_store(args, work)


def cmd_credit(args) -> int:
    from .core.models import format_credits
    amount = _units(args.amount, "AMOUNT")
    if amount == 0:
        raise CliError("AMOUNT must not be zero")

    async def work(store) -> None:
        account = await _account(store, args.system_id)
        reason = "top-up" if amount > 0 else "debit"
        balance = await store.adjust_balance(account.id, amount, f"{reason} (cli)")
        print(f"{args.system_id}: balance {format_credits(balance)}")
    return _with_store(args, work)


def cmd_route_add(args) -> int:
    from .core.models import Route
    prefix = args.prefix.lstrip("+")
    if prefix and not prefix.isdigit():
        raise CliError(f"PREFIX {args.prefix!r} must be digits")
    price = _units(args.price, "--price")
    if price < 0:
        raise CliError("--price must not be negative")

    async def work(store) -> None:
        connectors = {c.name for c in await store.list_connectors()}
        if args.connector not in connectors:
            have = ", ".join(sorted(connectors))
            raise CliError(f"no connector {args.connector!r} (have: {have})")
        account_id = (await _account(store, args.account)).id if args.account else None
        route = await store.add_route(Route(prefix=prefix, connector=args.connector,
                                            price=price, account_id=account_id,
                                            priority=args.priority))
        print(f"route {route.id}: {prefix or '*'} -> {args.connector}")
    return _with_store(args, work)


def cmd_route_list(args) -> int:
    from .core.models import format_credits

    async def work(store) -> None:
        names = {a.id: a.system_id for a in await store.list_accounts()}
        print(f"{'ID':>4} {'PREFIX':16} {'CONNECTOR':16} {'PRICE':>10} {'PRIO':>4} ACCOUNT")
        for r in await store.list_routes():
            print(f"{r.id:>4} {r.prefix or '*':16} {r.connector:16} "
                  f"{format_credits(r.price):>10} {r.priority:>4} "
                  f"{names.get(r.account_id, '-') if r.account_id else '(all)'}")
    return _with_store(args, work)


def cmd_connector_add(args) -> int:
    from .core.models import Connector
    config: dict = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--option {item!r} is not KEY=VALUE")
        config[key] = value
    if args.outcome:
        outcomes = {}
        for item in args.outcome:
            status, sep, weight = item.partition("=")
            try:
                outcomes[status.upper()] = float(weight)
            except ValueError:
                raise CliError(f"--outcome {item!r} is not STATUS=WEIGHT") from None
        config["outcomes"] = outcomes
    if args.type != "simulator":
        raise CliError(f"connector type {args.type!r} is not available yet in this version")
    from .connectors.simulator import SimulatorConnector
    SimulatorConnector(args.name, config)  # validates the settings

    async def work(store) -> None:
        from .core.ports import Conflict
        try:
            await store.add_connector(Connector(args.name, args.type, config))
        except Conflict:
            raise CliError(f"connector {args.name!r} exists already") from None
        print(f"connector {args.name} ({args.type}) added")
    return _with_store(args, work)


def cmd_connector_list(args) -> int:
    async def work(store) -> None:
        for c in await store.list_connectors():
            print(f"{c.name:16} {c.type:10} {'enabled' if c.enabled else 'disabled':9} "
                  f"{c.config}")
    return _with_store(args, work)


def cmd_coverage_import(args) -> int:
    from .core.models import CoverageEntry
    entries = []
    with open(args.file, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), 1):
            if not row or (number == 1 and row[0].strip().lower() == "country"):
                continue
            if len(row) < 6:
                raise CliError(f"{args.file}:{number}: expected country, iso, operator, mcc,"
                               " mnc, prefix[, price]")
            country, iso, operator, mcc, mnc, prefix = (c.strip() for c in row[:6])
            if not prefix.isdigit():
                raise CliError(f"{args.file}:{number}: prefix {prefix!r} must be digits")
            price = _units(row[6], f"{args.file}:{number}: price") if len(row) > 6 and \
                row[6].strip() else None
            entries.append(CoverageEntry(country, iso, operator, mcc, mnc, prefix, price))

    async def work(store) -> None:
        await store.replace_coverage(entries)
        print(f"coverage: {len(entries)} rows imported")
    return _with_store(args, work)


if __name__ == "__main__":
    sys.exit(main())
