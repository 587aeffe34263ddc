"""The ``hotline`` command. Each slice adds its own subcommands (``add_commands``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from cti import config as config_mod
from cti import logsetup, preflight
from cti.errors import ApiError, CommandError, ConfigError

log = logging.getLogger("hotline")

# Each slice's module and the commands it adds. Only the module of the command given is
# imported (all of them for --help or an unknown command): `hotline report` does not load the
# console's web framework, and every command starts sooner.
SLICE_COMMANDS = {
    "routing.cli": ("simulate", "staffing"),
    "tickets.cli": ("report",),
    "recordings.cli": ("transcribe", "transcribe-worker"),
    "cti.seats.cli": ("seats",),
    "console.users": ("users",),
    "cti.demo": ("demo",),
}


def _load(args: argparse.Namespace) -> config_mod.Settings:
    return config_mod.load(getattr(args, "config", None))


# --- serve -------------------------------------------------------------------------------


def _source(args: argparse.Namespace) -> str:
    return getattr(args, "config", None) or os.environ.get(config_mod.ENV_VAR) or ""


def _require_source(args: argparse.Namespace) -> str:
    """The configuration file ``serve`` runs on (and ``config check`` checks): the built-in
    defaults are the demo's (its AMI secret, ports and a PBX on this machine)."""
    source = _source(args)
    if not source:
        raise CommandError(
            "no configuration: pass --config FILE or set $"
            f"{config_mod.ENV_VAR} (start from config/example.toml); the built-in defaults"
            " are for hotline demo only."
        )
    return source


def cmd_serve(args: argparse.Namespace) -> int:
    _require_source(args)
    settings = _load(args)
    # What `hotline config check` checks, so that a configuration it passed starts.
    for warning in preflight.validate(settings, _source(args), starting=True):
        log.warning("configuration: %s", warning)
    from cti.app import Hotline

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # One Hotline per leadership: with another CTI leading on the database this one waits
        # on standby; a leader that loses its lease stops everything and waits again, anew.
        lost_once = False
        while not stop.is_set():
            hotline = Hotline(settings)
            try:
                led = await hotline.start(until=stop)
            except Exception as exc:
                if not lost_once:
                    raise
                # Stepped down because the database was away: it may be away still.
                from cti.db import first_line

                log.warning(
                    "hotline serve: standby not resumed yet (%s); trying again", first_line(exc)
                )
                with contextlib.suppress(Exception):
                    await hotline.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)
                continue
            if not led:
                await hotline.stop()
                return
            print(
                f"hotline: console on http://{settings.console.host}:{hotline.console_port}/, "
                f"FastAGI on {settings.agi.host}:{hotline.agi.port}",
                flush=True,
            )
            ended = asyncio.ensure_future(stop.wait())
            lost = asyncio.ensure_future(hotline.lost.wait())
            await asyncio.wait({ended, lost}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            lost.cancel()
            await hotline.stop()
            if hotline.lost.is_set() and not stop.is_set():
                lost_once = True
                log.error("hotline serve: this CTI lost the lead; it waits on standby again")

    asyncio.run(run())
    return 0


# --- config ------------------------------------------------------------------------------


def cmd_config_check(args: argparse.Namespace) -> int:
    """Everything ``serve`` checks before it starts (``cti.preflight``), nothing started."""
    path = _require_source(args)
    try:
        settings = config_mod.load(path)
        warnings = config_mod.check_permissions(Path(path), report=False)
        warnings += preflight.validate(settings, path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    summary = {
        "ok": True,
        "source": path,
        "asterisk_nodes": [n.name for n in settings.asterisk],
        "hotlines": len(settings.hotlines),
        "seats": len(settings.seats),
        "agents": len(settings.agents),
        "windows": len(settings.windows),
        "departments": len(settings.departments),
        "warnings": warnings,
    }
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = _load(args)
    from cti.db import create_schema, open_database
    from cti.migrate import current

    engine = open_database(settings.database.url)
    try:
        create_schema(engine)
        print(f"database at revision {current(engine)}")
    finally:
        engine.dispose()
    return 0


# --- main --------------------------------------------------------------------------------


def _command_word(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (the first word that is no option), if it is one a
    slice adds; None otherwise."""
    word = next((a for a in argv if not a.startswith("-")), None)
    known = {c for commands in SLICE_COMMANDS.values() for c in commands}
    return word if word in known else None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``argv``, of the built-in ones and the one
    command ``argv`` names."""
    parser = argparse.ArgumentParser(
        prog="hotline",
        description="Call-centre core for 12345 government service hotlines on Asterisk.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the CTI, FastAGI and the console against Asterisk")
    p.add_argument("--config", help=f"TOML configuration (or ${config_mod.ENV_VAR})")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="validate the configuration and print a summary")
    c.add_argument("--config", help=f"TOML configuration (or ${config_mod.ENV_VAR})")
    c.set_defaults(func=cmd_config_check)

    p = sub.add_parser("db", help="database tools")
    dsub = p.add_subparsers(dest="db_command", required=True)
    d = dsub.add_parser("upgrade", help="migrate the database to the current schema")
    d.add_argument("--config")
    d.set_defaults(func=cmd_db_upgrade)

    wanted = _command_word(argv) if argv is not None else None
    for module, commands in SLICE_COMMANDS.items():
        if wanted is not None and wanted not in commands:
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        mod.add_commands(sub)
    return parser


def _command(args: argparse.Namespace) -> str:
    """The command as typed: ``report``, ``seats pjsip``, ``users add``."""
    words = [str(args.command)]
    for name, value in sorted(vars(args).items()):
        if name.endswith("_command") and isinstance(value, str):
            words.append(value)
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Its expected failures are typed (``cti.errors``) and end in their
    sentence on stderr; anything else is logged with its traceback in the log file and the
    user reads one sentence naming that file. Exit status: 2 for what the user can correct,
    1 for the rest, 130 when interrupted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logsetup.configure(logsetup.settings_from(_source(args)), verbose=args.verbose)
    try:
        return _run(args)
    finally:
        logsetup.remove()  # main() called in-process (tests) leaves logging as it found it


def _run(args: argparse.Namespace) -> int:
    command = _command(args)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"hotline {command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except ApiError as exc:
        print(f"hotline {command}: {exc.message.rstrip('.')}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`hotline simulate | head`): nothing left to tell it.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        where = logsetup.record_crash(command, exc)
        from cti.db import first_line

        print(
            f"hotline {command}: unexpected error ({type(exc).__name__}: {first_line(exc)});"
            f" the details are in {where}: please report them with the command you ran.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
