"""``cti-bridge``: the one console script.

Every problem a user can cause (bad config, unreachable database, out-of-date schema,
bad import row) ends the command with one clear line on stderr and exit status 2, not
a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence

from cti_bridge.vocabulary import ROLES

from .config import Config, ConfigError, load_config


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise CommandError(f"environment variable {args.password_env} is not set")
        return value
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            raise CommandError("the passwords differ")
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def cmd_run(args: argparse.Namespace) -> int:
    from cti_bridge.store import SchemaOutOfDate  # noqa: PLC0415 - keep `--help` fast

    from .daemon import run_daemon  # noqa: PLC0415

    try:
        return run_daemon(_config(args))
    except SchemaOutOfDate as error:
        # Say exactly which command to run, with this config file.
        where = f"--config {args.config}" if args.config else ""
        raise CommandError(str(error).replace("--config FILE", where)) from None


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # noqa: PLC0415

    return run_demo(
        web_port=args.port,
        data_dir=args.data_dir,
        calls_per_minute=args.calls_per_minute,
        seed_value=args.seed,
    )


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from cti_bridge.store.schema import upgrade  # noqa: PLC0415

    config = _config(args)
    upgrade(config.database.url)
    print(f"database is up to date: {_safe_url(config.database.url)}")
    return 0


def _store(config: Config):  # type: ignore[no-untyped-def]
    from cti_bridge.store import open_store  # noqa: PLC0415

    return open_store(config.database.url, default_region=config.phone.default_region)


def cmd_operators_add(args: argparse.Namespace) -> int:
    config = _config(args)
    password = _read_password(args)
    if len(password) < 8:
        raise CommandError("the password must have at least 8 characters")
    store = _store(config)
    operator = store.accounts.add_operator(
        args.username,
        role=args.role,
        password=password,
        name=args.name,
        devices=args.device,
    )
    print(f"operator {operator['username']} ({operator['role']}) added")
    return 0


def cmd_operators_set_password(args: argparse.Namespace) -> int:
    config = _config(args)
    password = _read_password(args)
    if len(password) < 8:
        raise CommandError("the password must have at least 8 characters")
    _store(config).accounts.set_password(args.username, password)
    print(f"password of {args.username} changed")
    return 0


def cmd_operators_bind_device(args: argparse.Namespace) -> int:
    config = _config(args)
    _store(config).accounts.bind_device(args.username, args.device)
    print(f"{args.device} now belongs to {args.username}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from cti_bridge.store.importer import import_file  # noqa: PLC0415

    config = _config(args)
    count = import_file(_store(config), args.kind, args.file)
    print(f"imported {count} {args.kind} from {args.file}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import run_replay  # noqa: PLC0415

    config = _config(args) if (args.config or os.environ.get("CTI_BRIDGE_CONFIG")) else None
    return run_replay(
        args.trace, config=config, pbx=args.pbx, gap=args.gap, as_json=args.json, out=sys.stdout
    )


def cmd_check_config(args: argparse.Namespace) -> int:
    """Findings on stdout, one a line (``error: WHERE: ...``, ``warning: ...``), then a
    summary; exit 1 when there is an error, 0 otherwise (warnings included). A config
    that does not load is exit 2, as for every command."""
    from .checks import check_config  # noqa: PLC0415

    config = _config(args)
    path = args.config or os.environ.get("CTI_BRIDGE_CONFIG")
    given: dict[str, str] = {}
    for item in args.manager_conf:
        name, sep, file = item.rpartition("=")
        if not sep:
            if len(config.pbx) != 1:
                raise CommandError("--manager-conf FILE: give NAME=FILE with several [[pbx]]")
            name, file = config.pbx[0].name, item
        if name not in {p.name for p in config.pbx}:
            raise CommandError(f"--manager-conf {item}: no [[pbx]] named {name!r}")
        given[name] = file
    found, notes = check_config(config, path, given)
    for finding in sorted(found, key=lambda f: f.severity != "error"):
        print(finding.line())
    for note in notes:
        print(f"note: {note}")
    errors = sum(f.severity == "error" for f in found)
    warnings = len(found) - errors
    if not found:
        print("check-config: no findings")
    else:
        print(f"check-config: {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    return make_url(url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cti-bridge",
        description="Computer-telephony middleware for helpdesks on Asterisk.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config",
            metavar="FILE",
            default=None,
            help="TOML config file (default: $CTI_BRIDGE_CONFIG)",
        )
        return p

    run = with_config(sub.add_parser("run", help="run the daemon"))
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="everything on embedded defaults with a simulated PBX")
    demo.add_argument("--port", type=int, default=8080, help="web port (default 8080)")
    demo.add_argument("--data-dir", default=None, help="where the demo database goes")
    demo.add_argument("--calls-per-minute", type=float, default=6.0)
    demo.add_argument("--seed", type=int, default=None)
    demo.set_defaults(func=cmd_demo)

    db = sub.add_parser("db", help="database schema")
    dbsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    with_config(dbsub.add_parser("upgrade", help="create or migrate the schema")).set_defaults(
        func=cmd_db_upgrade
    )

    ops = sub.add_parser("operators", help="operator accounts")
    opsub = ops.add_subparsers(dest="operators_command", required=True, metavar="ACTION")
    add = with_config(opsub.add_parser("add", help="add an operator"))
    add.add_argument("username")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--name", default=None, help="display name")
    add.add_argument("--device", action="append", default=[], help="e.g. PJSIP/1001 (repeatable)")
    add.add_argument("--password-env", metavar="VAR", help="read the password from $VAR")
    add.set_defaults(func=cmd_operators_add)
    setpw = with_config(opsub.add_parser("set-password", help="change a password"))
    setpw.add_argument("username")
    setpw.add_argument("--password-env", metavar="VAR")
    setpw.set_defaults(func=cmd_operators_set_password)
    bind = with_config(opsub.add_parser("bind-device", help="give a device to an operator"))
    bind.add_argument("username")
    bind.add_argument("device")
    bind.set_defaults(func=cmd_operators_bind_device)

    replay = with_config(
        sub.add_parser(
            "replay",
            help="recorded AMI streams through the call model into call records",
            description="Each TRACE is the raw bytes of one AMI connection. Without a "
            "config the records go to a temporary database.",
        )
    )
    replay.add_argument("trace", nargs="+", help="a recorded AMI byte stream (.ami)")
    replay.add_argument("--pbx", default=None, help="PBX name for the records")
    replay.add_argument(
        "--gap",
        type=float,
        default=0.01,
        help="seconds between messages when the recording has no Timestamp headers",
    )
    replay.add_argument("--json", action="store_true", help="one JSON record per line")
    replay.set_defaults(func=cmd_replay)

    check = with_config(
        sub.add_parser(
            "check-config",
            help="what the config allows that start-up does not refuse (docs/security.md)",
            description="Checks the AMI user's write permissions and where AMI listens "
            "(in the PBX's manager.conf: [[pbx]] manager_conf or --manager-conf) and "
            "secrets written in the TOML file. Exit 1 on an error, 0 otherwise.",
        )
    )
    check.add_argument(
        "--manager-conf",
        action="append",
        default=[],
        metavar="[PBX=]FILE",
        help="the PBX's manager.conf (repeatable; PBX= with several [[pbx]])",
    )
    check.set_defaults(func=cmd_check_config)

    imp = with_config(sub.add_parser("import", help="import customers, contracts or scripts"))
    imp.add_argument("kind", choices=("customers", "contracts", "scripts"))
    imp.add_argument("file")
    imp.set_defaults(func=cmd_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except (ConfigError, CommandError) as error:
        print(f"cti-bridge: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        # Store and import errors carry user-facing messages; name the kind, not a trace.
        from cti_bridge.app.errors import user_message  # noqa: PLC0415

        message = user_message(error)
        if message is None:
            raise
        print(f"cti-bridge: {message}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
