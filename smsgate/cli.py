"""The operator CLI (SPEC §7). Every command exits non-zero with a one-line reason on bad
input; every command takes --database or SMSGATE_DATABASE_URL."""

import argparse
import asyncio
import csv
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from . import __version__, config


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


# serve's options that set a setting (config.FLAGS; --database is every command's)
SERVE_OPTIONS = tuple(name for name in config.FLAGS if name != "database_url")


def _setting_options(parser: argparse.ArgumentParser, names) -> None:
    """Options that set settings (config.py): an option not given is no attribute at
    all (SUPPRESS), so it never hides the TOML file or the environment. Values stay
    text: config.load checks them as it checks the environment's."""
    for name in names:
        setting = config.settings()[name]
        flag = setting.flag
        assert flag is not None
        if flag.switch:
            parser.add_argument(flag.option, dest=name, action="store_true",
                                default=argparse.SUPPRESS, help=config.flag_help(setting))
        else:
            parser.add_argument(flag.option, dest=name, metavar=flag.metavar,
                                default=argparse.SUPPRESS, help=config.flag_help(setting))


def _given_options(args) -> dict[str, object]:
    """The settings given on the command line, by name (for config.load)."""
    return {name: value for name, value in vars(args).items() if name in config.FLAGS}


def build_parser() -> argparse.ArgumentParser:
    db = argparse.ArgumentParser(add_help=False)
    _setting_options(db, ["database_url"])
    parser = _Parser(
        prog="smsgate", description="SMS gateway: SMPP 3.4 server, HTTP API, routing, credits.")
    parser.add_argument("--version", action="version", version=f"smsgate {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[db], help="run the gateway")
    serve.add_argument("--config", metavar="FILE", help="TOML settings file")
    _setting_options(serve, SERVE_OPTIONS)
    serve.set_defaults(handler=cmd_serve)
    _config_commands(sub, db)

    migrate = sub.add_parser("migrate", parents=[db], help="create / upgrade the schema")
    migrate.set_defaults(handler=cmd_migrate)

    purge = sub.add_parser("purge", parents=[db],
                           help="delete history (sent messages, ledger details, callbacks, "
                                "MO, unmatched reports) older than DAYS now")
    purge.add_argument("--older-than", type=float, required=True, metavar="DAYS",
                       help="age in days (0: everything already final)")
    purge.set_defaults(handler=cmd_purge)

    _account_commands(sub, db)

    credit = sub.add_parser("credit", parents=[db],
                            help="top up an account (negative to debit), with a ledger entry")
    credit.add_argument("system_id")
    credit.add_argument("amount", help="credits, e.g. 100 or -2.5")
    credit.set_defaults(handler=cmd_credit)

    nodes = sub.add_parser("nodes", parents=[db],
                           help="list the gateway's nodes: alive, dead or stopped")
    nodes.set_defaults(handler=cmd_nodes)

    _admin_commands(sub, db)
    _route_commands(sub, db)
    _connector_commands(sub, db)
    _number_commands(sub, db)

    coverage = sub.add_parser("coverage", help="coverage table").add_subparsers(metavar="ACTION")
    imp = coverage.add_parser("import", parents=[db],
                              help="replace coverage from CSV: country, iso, operator, mcc, mnc,"
                                   " prefix, price")
    imp.add_argument("file")
    imp.set_defaults(handler=cmd_coverage_import)
    return parser


def _config_commands(sub, db: argparse.ArgumentParser) -> None:
    commands = sub.add_parser("config", help="serve's settings: all of them, or the values"
                              " in effect").add_subparsers(metavar="ACTION")
    table = commands.add_parser("table", help="every setting as a Markdown table: TOML key,"
                                " environment variable, option, type, default")
    table.set_defaults(handler=cmd_config_table)
    show = commands.add_parser("show", parents=[db], help="each setting's value in effect"
                               " and where it came from (the same options as serve)")
    show.add_argument("--config", metavar="FILE", help="TOML settings file")
    _setting_options(show, SERVE_OPTIONS)
    show.set_defaults(handler=cmd_config_show)


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


def _admin_commands(sub, db: argparse.ArgumentParser) -> None:
    admin = sub.add_parser("admin", help="the admin API").add_subparsers(metavar="WHAT")
    token = admin.add_parser("token", help="admin API bearer tokens").add_subparsers(
        metavar="ACTION")
    add = token.add_parser("add", parents=[db], help="make a token: printed once")
    add.add_argument("name")
    add.set_defaults(handler=cmd_admin_token_add)
    lst = token.add_parser("list", parents=[db], help="list tokens (never their value)")
    lst.set_defaults(handler=cmd_admin_token_list)
    revoke = token.add_parser("revoke", parents=[db], help="revoke a token")
    revoke.add_argument("name")
    revoke.set_defaults(handler=cmd_admin_token_revoke)


def _route_commands(sub, db: argparse.ArgumentParser) -> None:
    route = sub.add_parser("route", help="routes by destination prefix").add_subparsers(
        metavar="ACTION")
    add = route.add_parser("add", parents=[db], help="add a route")
    add.add_argument("prefix", help="destination prefix digits; '' for catch-all")
    add.add_argument("connector")
    add.add_argument("--price", default="1", metavar="P",
                     help="credits per SMS part the customer pays (default 1)")
    add.add_argument("--cost", default="0", metavar="C",
                     help="credits per SMS part the upstream charges (default 0); among routes"
                          " of equal priority the lower cost is tried first")
    add.add_argument("--account", metavar="SYSTEM_ID", help="only for this account")
    add.add_argument("--priority", type=int, default=0, metavar="N",
                     help="LOWER first among routes of the longest matching prefix (default 0)")
    add.add_argument("--weight", type=int, default=1, metavar="W",
                     help="share of the load among routes equal in priority and cost"
                          " (default 1)")
    add.add_argument("--sender", nargs="+", default=[], metavar="SID",
                     help="only for messages from these sender ids")
    add.set_defaults(handler=cmd_route_add)
    lst = route.add_parser("list", parents=[db], help="list routes")
    lst.set_defaults(handler=cmd_route_list)
    remove = route.add_parser("remove", parents=[db], help="remove a route")
    remove.add_argument("id", type=int, metavar="ID", help="as `route list` shows it")
    remove.set_defaults(handler=cmd_route_remove)


SMPP, HTTP = ("smpp",), ("http",)
# connector add's options: (option, settings key, the types it is for, metavar, help).
# The settings (connectors/settings.py) check the values: one rule, one home.
CONNECTOR_OPTIONS: tuple[tuple[str, str, tuple[str, ...], str, str], ...] = (
    ("--host", "host", SMPP, "H", "the SMSC's host name or address"),
    ("--port", "port", SMPP, "P", "its port"),
    ("--system-id", "system_id", SMPP, "ID", "bind system_id"),
    ("--password", "password", SMPP, "PW", "bind password (never shown again)"),
    ("--system-type", "system_type", SMPP, "T", "bind system_type (default empty)"),
    ("--mode", "mode", SMPP, "trx|tx+rx", "TRx sessions, or Tx sessions + Rx (default trx)"),
    ("--binds", "binds", SMPP, "N", "sending sessions, cluster-wide (default 1)"),
    ("--rx-binds", "rx_binds", SMPP, "N", "receiver sessions in tx+rx mode (default 1)"),
    ("--window", "window", SMPP, "N", "unanswered submit_sm per session (default 10)"),
    ("--tps", "tps", SMPP + HTTP, "N", "messages a second in all (default 0 = no limit)"),
    ("--tls-ca", "tls_ca", SMPP, "FILE", "PEM CAs to trust with --tls (default: system's)"),
    ("--id-format", "id_format", SMPP, "auto|dec|hex",
     "upstream message ids in receipts (default auto)"),
    ("--enquire-link", "enquire_link", SMPP, "S", "seconds between enquire_links (default 30)"),
    ("--response-timeout", "response_timeout", SMPP, "S",
     "seconds to wait for a response (default 30)"),
    ("--reconnect-min", "reconnect_min", SMPP, "S", "first reconnect delay (default 1)"),
    ("--reconnect-max", "reconnect_max", SMPP, "S",
     "reconnect delay doubles up to this (default 60)"),
    ("--src-ton", "src_ton", SMPP, "N", "source TON (with --src-npi; default: as given)"),
    ("--src-npi", "src_npi", SMPP, "N", "source NPI"),
    ("--dst-ton", "dst_ton", SMPP, "N", "destination TON (with --dst-npi; default: as given)"),
    ("--dst-npi", "dst_npi", SMPP, "N", "destination NPI"),
    ("--coding-default", "coding_default", SMPP, "gsm|latin1",
     "data_coding of GSM text upstream: 0 or 3 (default gsm)"),
    ("--url", "url", HTTP, "TEMPLATE", "request URL: {to} {from} {text} {text_hex_ucs2}"
     " {coding} {id} {parts}"),
    ("--method", "method", HTTP, "GET|POST", "default GET"),
    ("--body", "body", HTTP, "TEMPLATE", "POST body, placeholders as in --url"),
    ("--content-type", "content_type", HTTP, "TYPE",
     "of the body (default application/x-www-form-urlencoded)"),
    ("--ok", "ok", HTTP, "REGEX", "success = 2xx and this matches the body (default any)"),
    ("--id", "id", HTTP, "REGEX", "the upstream id is its first group"),
    ("--timeout", "timeout", HTTP, "S", "seconds per request (default 10)"),
    ("--concurrency", "concurrency", HTTP, "N", "requests in flight at once (default 10)"),
    ("--dlr-token", "dlr_token", HTTP, "TOKEN",
     "delivery reports must carry token=TOKEN (16-128 of A-Z a-z 0-9 - _ . ~)"),
)
# (option, settings key, types, value stored when given, help)
CONNECTOR_FLAGS = (
    ("--tls", "tls", SMPP, True, "connect with TLS"),
    ("--tls-insecure", "tls_verify", SMPP, False,
     "with --tls: do not check the SMSC's certificate (a test SMSC)"),
)
# Settings given by repeatable options: settings key -> (option, types).
CONNECTOR_LISTS = {"headers": ("--header", HTTP), "dlr_status": ("--dlr-status", HTTP),
                   "outcomes": ("--outcome", ("simulator",))}


def _connector_commands(sub, db: argparse.ArgumentParser) -> None:
    connector = sub.add_parser("connector", help="upstream connectors").add_subparsers(
        metavar="ACTION")
    cadd = connector.add_parser("add", parents=[db], help="add a connector")
    cadd.add_argument("name")
    cadd.add_argument("--type", required=True, choices=["smpp", "http", "simulator"])
    for option, key, kinds, metavar, text in CONNECTOR_OPTIONS:
        cadd.add_argument(option, dest=f"set_{key}", metavar=metavar,
                          help=f"[{', '.join(kinds)}] {text}")
    for option, key, kinds, _value, text in CONNECTOR_FLAGS:
        cadd.add_argument(option, dest=f"set_{key}", action="store_true",
                          help=f"[{', '.join(kinds)}] {text}")
    cadd.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                      help="[http] a request header (repeatable)")
    cadd.add_argument("--dlr-status", action="append", default=[], metavar="WORD=STATUS",
                      help="[http] the provider's report word or code as our status, e.g."
                           " 3=EXPIRED (repeatable; added to the usual words and codes)")
    cadd.add_argument("--outcome", action="append", default=[], metavar="STATUS=WEIGHT",
                      help="[simulator] outcome mix, e.g. DELIVRD=9 --outcome UNDELIV=1")
    cadd.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                      help="any setting by its name, e.g. min_latency_ms=10 (repeatable)")
    cadd.set_defaults(handler=cmd_connector_add)
    for name, handler, text in (
            ("list", cmd_connector_list, "list connectors with their live state"),
            ("show", cmd_connector_show, "show a connector's settings and state"),
            ("remove", cmd_connector_remove, "remove a connector no route uses"),
            ("enable", cmd_connector_enable, "enable a connector"),
            ("disable", cmd_connector_disable, "disable a connector")):
        p = connector.add_parser(name, parents=[db], help=text)
        if name != "list":
            p.add_argument("name")
        p.set_defaults(handler=handler)


def _number_commands(sub, db: argparse.ArgumentParser) -> None:
    number = sub.add_parser("number", help="inbound numbers and short codes (MO)"
                            ).add_subparsers(metavar="ACTION")
    add = number.add_parser("add", parents=[db], help="give an account a number or short code")
    add.add_argument("number", help="digits; MO to any number starting with them")
    add.add_argument("system_id")
    add.add_argument("--mo-url", metavar="URL", default="",
                     help="also send its MO to this http(s) URL")
    add.set_defaults(handler=cmd_number_add)
    lst = number.add_parser("list", parents=[db], help="list numbers")
    lst.set_defaults(handler=cmd_number_list)
    remove = number.add_parser("remove", parents=[db], help="remove a number")
    remove.add_argument("number")
    remove.set_defaults(handler=cmd_number_remove)


# -- helpers -----------------------------------------------------------------------------

def _with_store(args, work: Callable) -> int:
    async def run() -> int:
        from .app import seed
        from .store import open_store

        store = open_store(config.resolve_database(vars(args).get("database_url")))
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
    from .app import serve

    loaded = config.load(args.config, _given_options(args))
    for warning in loaded.warnings:
        print(f"smsgate: warning: {warning}", file=sys.stderr)
    settings = loaded.settings
    from .servers import log_format, log_redaction
    log_format.configure(settings.log_level, settings.log_format, settings.node_id)
    log_redaction.install()  # no password or token in any line (the App adds its loggers)
    runner: Callable[[Awaitable], object]
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency, but stay runnable
        runner = asyncio.run
    from .core.ports import NodeInUse
    if settings.workers > 1:
        from .cluster import workers
        try:
            return workers.run(settings, serve, runner)
        except workers.WorkerError as exc:
            raise CliError(str(exc)) from None
    try:
        runner(serve(settings))
    except NodeInUse as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_config_table(args) -> int:
    sys.stdout.write(config.markdown_table())
    return 0


def cmd_config_show(args) -> int:
    loaded = config.load(args.config, _given_options(args))
    for warning in loaded.warnings:
        print(f"# warning: {warning}")
    print("\n".join(config.effective_lines(loaded)))
    return 0


def _age(seconds: float) -> str:
    if seconds < 100:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.0f}m" if seconds < 6000 else f"{seconds / 3600:.0f}h"


def cmd_nodes(args) -> int:
    async def work(store) -> None:
        nodes = await store.list_nodes()
        if not nodes:
            print("no nodes: no `smsgate serve` has run on this database yet")
            return
        print(f"{'ID':20} {'STATE':7} {'ADDRESS':36} {'STARTED':20} {'HEARTBEAT':>9} "
              f"{'SESSIONS':>8} {'BINDS':>5} {'MSG/S':>8}")
        for n in nodes:
            started = datetime.fromtimestamp(n.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
            f = n.figures
            print(f"{n.id:20} {n.state:7} {n.address or '-':36} {started:20} "
                  f"{_age(n.silent_for) + ' ago':>9} {f.smpp_sessions:>8} "
                  f"{f.upstream_binds:>5} {f.messages_per_second:>8.1f}")
    return _with_store(args, work)


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


def cmd_purge(args) -> int:
    from .core.retention import DAY, PAUSE, purge
    if not 0 <= args.older_than < 100_000:
        raise CliError(f"--older-than must be 0 or more days, not {args.older_than:g}")
    before = time.time() - args.older_than * DAY
    shown: dict[str, int] = {}

    def progress(table: str, deleted: int) -> None:
        if deleted - shown.get(table, 0) >= 100_000:  # a line now and then on big tables
            shown[table] = deleted
            print(f"{table}: {deleted:,} deleted so far", flush=True)

    async def work(store) -> None:
        deleted = await purge(store, before, pause=PAUSE, progress=progress)
        for table, count in deleted.items():
            print(f"{table}: {count:,} deleted")
    return _with_store(args, work)


def cmd_admin_token_add(args) -> int:
    from .core.admin_tokens import AdminTokens, TokenExists, check_token_name
    check_token_name(args.name)

    async def work(store) -> None:
        try:
            token = await AdminTokens(store).issue(args.name)
        except TokenExists as exc:
            raise CliError(str(exc)) from None
        print(f"token {args.name}: {token}\n(shown only once: it is stored hashed)")
    return _with_store(args, work)


def _when(at: float | None) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def cmd_admin_token_list(args) -> int:
    from .core.admin_tokens import AdminTokens

    async def work(store) -> None:
        print(f"{'NAME':24} {'CREATED':20} {'LAST USED':20} REVOKED")
        for t in await AdminTokens(store).list():
            print(f"{t.name:24} {_when(t.created_at):20} {_when(t.last_used_at):20} "
                  f"{_when(t.revoked_at) if t.revoked_at else 'no'}")
    return _with_store(args, work)


def cmd_admin_token_revoke(args) -> int:
    from .core.admin_tokens import AdminTokens

    async def work(store) -> None:
        if not await AdminTokens(store).revoke(args.name):
            raise CliError(f"no token {args.name!r}")
        print(f"token {args.name} revoked")
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
    from .core.validation import well_formed_sender
    prefix = args.prefix.lstrip("+")
    if prefix and not (prefix.isascii() and prefix.isdigit()):
        raise CliError(f"PREFIX {args.prefix!r} must be digits")
    price, cost = _units(args.price, "--price"), _units(args.cost, "--cost")
    for amount, option in ((price, "--price"), (cost, "--cost")):
        if amount < 0:
            raise CliError(f"{option} must not be negative")
    if not 1 <= args.weight <= 1_000_000:
        raise CliError(f"--weight must be 1 to 1000000, not {args.weight}")
    for sender in args.sender:
        if not well_formed_sender(sender):
            raise CliError(f"--sender {sender!r} is not a sender id (up to 15 digits or 11"
                           " letters and digits)")

    async def work(store) -> None:
        connectors = {c.name for c in await store.list_connectors()}
        if args.connector not in connectors:
            have = ", ".join(sorted(connectors))
            raise CliError(f"no connector {args.connector!r} (have: {have})")
        account_id = (await _account(store, args.account)).id if args.account else None
        route = await store.add_route(Route(
            prefix=prefix, connector=args.connector, price=price, account_id=account_id,
            priority=args.priority, cost=cost, weight=args.weight,
            senders=tuple(dict.fromkeys(args.sender))))
        print(f"route {route.id}: {prefix or '*'} -> {args.connector}")
    return _with_store(args, work)


def cmd_route_list(args) -> int:
    from .core.models import format_credits

    async def work(store) -> None:
        names = {a.id: a.system_id for a in await store.list_accounts()}
        print(f"{'ID':>4} {'PREFIX':16} {'CONNECTOR':16} {'PRICE':>10} {'COST':>10} "
              f"{'PRIO':>4} {'WEIGHT':>6} {'ACCOUNT':16} SENDERS")
        for r in await store.list_routes():
            account = names.get(r.account_id, '-') if r.account_id else '(all)'
            print(f"{r.id:>4} {r.prefix or '*':16} {r.connector:16} "
                  f"{format_credits(r.price):>10} {format_credits(r.cost):>10} "
                  f"{r.priority:>4} {r.weight:>6} {account:16} {' '.join(r.senders) or 'any'}")
    return _with_store(args, work)


def cmd_route_remove(args) -> int:
    async def work(store) -> None:
        if not await store.remove_route(args.id):
            raise CliError(f"no route {args.id}")
        print(f"route {args.id} removed")
    return _with_store(args, work)


def _option_name(key: str) -> str:
    """A setting as the operator spells it on this command line."""
    for option, name, *_rest in (*CONNECTOR_OPTIONS, *CONNECTOR_FLAGS):
        if name == key:
            return option
    return CONNECTOR_LISTS[key][0] if key in CONNECTOR_LISTS else f"--option {key}"


def _pairs(items: list[str], option: str, sep: str, form: str) -> dict[str, str]:
    """KEY<sep>VALUE items of a repeatable option; the last of a key wins."""
    pairs = {}
    for item in items:
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise CliError(f"{option} {item!r} is not {form}")
        pairs[key.strip()] = value.strip()
    return pairs


def _given_settings(args) -> list[tuple[str, str, tuple[str, ...], object]]:
    """(option, settings key, types it is for, value) of each setting option given."""
    given = []
    for option, key, kinds, *_rest in CONNECTOR_OPTIONS:
        value = getattr(args, f"set_{key}")
        if value is not None:
            given.append((option, key, kinds, value))
    for option, key, kinds, value, _help in CONNECTOR_FLAGS:
        if getattr(args, f"set_{key}"):
            given.append((option, key, kinds, value))
    lists = {"headers": _pairs(args.header, "--header", ":", "NAME:VALUE"),
             "dlr_status": _pairs(args.dlr_status, "--dlr-status", "=", "WORD=STATUS"),
             "outcomes": _outcomes(args.outcome)}
    for key, value in lists.items():
        if value:
            option, kinds = CONNECTOR_LISTS[key]
            given.append((option, key, kinds, value))
    return given


def _connector_config(args) -> dict:
    """The settings given on the command line, by the JSON config's keys. An option of
    another connector type is refused: it would be ignored in silence."""
    config: dict = dict(_pairs(args.option, "--option", "=", "KEY=VALUE"))
    for option, key, kinds, value in _given_settings(args):
        if args.type not in kinds:
            raise CliError(f"{option} is for --type {' or '.join(kinds)}, not {args.type}")
        if key in config:
            raise CliError(f"{option} and --option {key}=... both set {key}")
        config[key] = value
    if isinstance(config.get("dlr_status"), dict):  # added to the usual words and codes
        from .connectors.settings import DEFAULT_DLR_STATUS
        config["dlr_status"] = {**DEFAULT_DLR_STATUS, **config["dlr_status"]}
    return config


def _outcomes(items: list[str]) -> dict[str, float]:
    outcomes = {}
    for item in items:
        status, _, weight = item.partition("=")
        try:
            outcomes[status.upper()] = float(weight)
        except ValueError:
            raise CliError(f"--outcome {item!r} is not STATUS=WEIGHT") from None
    return outcomes


def cmd_connector_add(args) -> int:
    from .connectors.settings import SettingsError, check_connector_name, settings_for
    from .core.models import Connector
    check_connector_name(args.name)
    try:
        settings = settings_for(args.type, _connector_config(args))
    except SettingsError as exc:
        raise CliError(exc.render(_option_name)) from None

    async def work(store) -> None:
        from .core.ports import Conflict
        try:
            await store.add_connector(Connector(args.name, args.type, settings.to_config()))
        except Conflict:
            raise CliError(f"connector {args.name!r} exists already") from None
        print(f"connector {args.name} ({args.type}) added: {settings.summary()}")
    return _with_store(args, work)


STALE_AFTER = 15.0  # seconds: a state older than this is shown with its age


def _state_summary(state: dict) -> str:
    """The figures an operator scans a list for: up or down, binds, window in use, rate,
    errors (`connector show` prints every reported figure)."""
    parts = []
    if "available" in state:
        parts.append("up" if state["available"] else "down")
    if "binds_wanted" in state:
        parts.append(f"binds {state.get('binds_up', 0)}/{state['binds_wanted']}")
    if "window" in state:
        parts.append(f"window {state.get('window_in_use', 0)}/{state['window']}")
    elif "in_flight" in state:
        parts.append(f"in flight {state['in_flight']}")
    if "sent_per_second" in state:
        parts.append(f"{state['sent_per_second']}/s")
    if "errors" in state:
        parts.append(f"errors {state['errors']}")
    return " ".join(parts)


def _state_text(states: list, now: float, full: bool = False) -> str:
    """A connector's live state as the nodes last reported it; "-" before any."""
    parts = []
    for state in states:
        text = (" ".join(f"{k}={v}" for k, v in state.state.items()) if full
                else _state_summary(state.state)) or "reported"
        age = now - state.reported_at
        if age > STALE_AFTER:
            text += f" ({age:.0f}s ago)"
        parts.append(f"{state.node}: {text}" if len(states) > 1 else text)
    return "; ".join(parts) or "-"


def _described(connector) -> tuple[str, dict]:
    """(one-line summary, settings with secrets masked) of a stored connector; a config
    that no longer passes the checks is shown, masked by name, with the reason."""
    from .connectors.settings import MASK, SettingsError, settings_for
    try:
        settings = settings_for(connector.type, connector.config)
    except SettingsError as exc:
        return f"(bad settings: {exc})", {k: MASK if "pass" in k.lower() else v
                                          for k, v in connector.config.items()}
    return settings.summary(), settings.masked()


async def _states_by_connector(store) -> dict[str, list]:
    states: dict[str, list] = {}
    for state in await store.connector_states():
        states.setdefault(state.connector, []).append(state)
    return states


def cmd_connector_list(args) -> int:
    async def work(store) -> None:
        states, now = await _states_by_connector(store), time.time()
        print(f"{'NAME':16} {'TYPE':9} {'ENABLED':7} {'STATE':32} SETTINGS")
        for c in await store.list_connectors():
            print(f"{c.name:16} {c.type:9} {'yes' if c.enabled else 'no':7} "
                  f"{_state_text(states.get(c.name, []), now):32} {_described(c)[0]}")
    return _with_store(args, work)


def _setting_text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return "-" if value is None or value == "" else str(value)


def cmd_connector_show(args) -> int:
    async def work(store) -> None:
        connector = await _connector(store, args.name)
        _summary, settings = _described(connector)
        routes = [str(r.id) for r in await store.list_routes() if r.connector == args.name]
        now = time.time()
        lines = {"name": connector.name, "type": connector.type,
                 "enabled": connector.enabled, **settings,
                 "routes": " ".join(routes) or "none"}
        width = max(map(len, lines)) + 2
        for key, value in lines.items():
            print(f"{key + ':':{width}}{_setting_text(value)}")
        states = (await _states_by_connector(store)).get(connector.name, [])
        if not states:
            print(f"{'state:':{width}}- (no gateway has reported it)")
        for state in states:
            print(f"{'state:':{width}}{state.node}: "
                  f"{_setting_text(state.state)} ({now - state.reported_at:.0f}s ago)")
    return _with_store(args, work)


async def _connector(store, name: str):
    connector = await store.get_connector(name)
    if connector is None:
        raise CliError(f"no connector {name!r}")
    return connector


def cmd_connector_remove(args) -> int:
    async def work(store) -> None:
        from .core.ports import InUse
        try:
            removed = await store.remove_connector(args.name)
        except InUse as exc:
            raise CliError(f"{exc}: remove those routes first (route remove ID)") from None
        if not removed:
            raise CliError(f"no connector {args.name!r}")
        print(f"connector {args.name} removed")
    return _with_store(args, work)


def _set_connector_enabled(args, enabled: bool) -> int:
    async def work(store) -> None:
        if not await store.set_connector_enabled(args.name, enabled):
            raise CliError(f"no connector {args.name!r}")
        print(f"connector {args.name} {'enabled' if enabled else 'disabled'}")
    return _with_store(args, work)


def cmd_connector_enable(args) -> int:
    return _set_connector_enabled(args, True)


def cmd_connector_disable(args) -> int:
    return _set_connector_enabled(args, False)


def _mo_url(url: str) -> str:
    from urllib.parse import urlsplit
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port raises ValueError when it is bad
    except ValueError as exc:
        raise CliError(f"--mo-url {url!r} is not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname \
            or any(c.isspace() for c in url):
        raise CliError(f"--mo-url {url!r} must be an http:// or https:// URL")
    return url


def cmd_number_add(args) -> int:
    from .core.models import InboundNumber
    from .core.numbers import number_digits
    digits = number_digits(args.number)
    mo_url = _mo_url(args.mo_url) if args.mo_url else ""

    async def work(store) -> None:
        from .core.ports import Conflict
        account = await _account(store, args.system_id)
        try:
            await store.add_number(InboundNumber(digits, account.id, mo_url))
        except Conflict:
            raise CliError(f"number {digits} exists already") from None
        print(f"number {digits} -> {args.system_id}")
    return _with_store(args, work)


def cmd_number_list(args) -> int:
    async def work(store) -> None:
        names = {a.id: a.system_id for a in await store.list_accounts()}
        print(f"{'NUMBER':16} {'ACCOUNT':16} MO_URL")
        for n in await store.list_numbers():
            print(f"{n.number:16} {names.get(n.account_id, '-'):16} {n.mo_url or '-'}")
    return _with_store(args, work)


def cmd_number_remove(args) -> int:
    from .core.numbers import number_digits
    digits = number_digits(args.number)

    async def work(store) -> None:
        if not await store.remove_number(digits):
            raise CliError(f"no number {digits}")
        print(f"number {digits} removed")
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
