"""``hotline seats ...``: the seats of the configuration, their PJSIP accounts, phone files.

    hotline seats list         [--config PATH]
    hotline seats pjsip        [--config PATH] [--output FILE] [--secrets FILE] [--placeholder]
                               [--context CTX] [--codecs ulaw,alaw] [--qualify SECONDS]
                               [--transport NAME]
    hotline seats provisioning [--config PATH] [--secrets FILE] --sip-server HOST[:PORT]
                               [--output-dir DIR] [--ntp HOST] [--auto-answer]

``pjsip`` writes ``pjsip_seats.conf`` (to stdout with ``--output -``, the default) and keeps
the generated SIP passwords in the secrets file (JSON, mode 0600, default
``var/pjsip_secrets.json``): run it again after adding seats and the existing phones keep
their passwords. Load the result on the PBX with ``pjsip reload`` (or ``module reload
res_pjsip.so``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cti import config as config_mod
from cti.errors import OutputError
from cti.seats.pjsip import (
    PjsipOptions,
    SecretsError,
    SecretStore,
    accounts,
    generate,
    write_private,
)

DEFAULT_SECRETS = Path("var/pjsip_secrets.json")
DEFAULT_PROVISIONING_DIR = Path("var/provisioning")


def _settings(args: argparse.Namespace) -> tuple[config_mod.Settings, str]:
    path = getattr(args, "config", None)
    settings = config_mod.load(path)
    return settings, path or os.environ.get(config_mod.ENV_VAR) or "built-in defaults"


def cmd_list(args: argparse.Namespace) -> int:
    settings, _source = _settings(args)
    rows = [
        {
            "extension": p.extension,
            "id": p.id,
            "kind": p.kind,
            "room": p.room,
            "position": p.position,
            "phone_model": p.phone_model,
            "mac": p.mac,
        }
        for p in accounts(settings)
    ]
    print(json.dumps(rows, ensure_ascii=False, indent=2))
    return 0


def cmd_pjsip(args: argparse.Namespace) -> int:
    settings, source = _settings(args)
    try:
        options = PjsipOptions(
            context=args.context,
            codecs=tuple(c.strip() for c in args.codecs.split(",") if c.strip()),
            qualify_frequency=args.qualify,
            transport=args.transport or "",
        )
        options.check()
    except ValueError as exc:
        print(f"hotline seats pjsip: {exc}", file=sys.stderr)
        return 2
    store: SecretStore | None = None
    if args.output != "-":
        OutputError.check("--output", Path(args.output))
    if not args.placeholder:
        OutputError.check("--secrets", Path(args.secrets).absolute())
        try:
            store = SecretStore(Path(args.secrets))
        except SecretsError as exc:
            print(f"hotline seats pjsip: {exc}", file=sys.stderr)
            return 2
    text = generate(settings, store, options, source=source, placeholder=args.placeholder)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        # Real passwords: owner and group (asterisk) only. The example may be world-readable.
        with _writing("--output", args.output):
            write_private(Path(args.output), text, 0o644 if args.placeholder else 0o640)
    created = 0
    if store is not None:
        created = len(store.created)
        with _writing("--secrets", args.secrets):
            store.save()
    summary: dict[str, Any] = {
        "phones": len(accounts(settings)),
        "output": args.output,
        "new_passwords": created,
        "secrets": None if args.placeholder else args.secrets,
        "placeholder": args.placeholder,
    }
    print(json.dumps(summary, ensure_ascii=False), file=sys.stderr)
    return 0


def cmd_provisioning(args: argparse.Namespace) -> int:
    # Imported here: it brings the console's web framework, which the other commands skip.
    from cti.seats.provisioning import ProvisioningOptions, write_files

    settings, _source = _settings(args)
    opts = ProvisioningOptions(
        sip_server=args.sip_server, ntp_server=args.ntp, auto_answer=args.auto_answer
    )
    OutputError.check("--output-dir", Path(args.output_dir), directory=True)
    OutputError.check("--secrets", Path(args.secrets).absolute())
    try:
        opts.check()
        store = SecretStore(Path(args.secrets))
        with _writing("--output-dir", args.output_dir):
            result = write_files(accounts(settings), store, Path(args.output_dir), opts)
    except (ValueError, LookupError) as exc:
        print(f"hotline seats provisioning: {exc}", file=sys.stderr)
        return 2
    token = store.provisioning_token()
    with _writing("--secrets", args.secrets):
        store.save()
    print(
        json.dumps(
            {
                "directory": args.output_dir,
                "written": result.written,
                "without_mac": result.skipped,
                "unknown_vendor_both_formats": result.unknown_vendor,
                "url_path": f"/provision/{token}/",
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    return 0


@contextlib.contextmanager
def _writing(option: str, path: str) -> Iterator[None]:
    """An ``OSError`` while writing what ``option`` names becomes the CLI's sentence."""
    try:
        yield
    except OSError as exc:
        raise OutputError(option, path, exc.strerror or str(exc)) from None


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("seats", help="seats, their PJSIP accounts and phone files")
    sub = p.add_subparsers(dest="seats_command", required=True)

    c = sub.add_parser("list", help="print the seats and windows of the configuration")
    c.add_argument("--config", help=f"TOML configuration (or ${config_mod.ENV_VAR})")
    c.set_defaults(func=cmd_list)

    c = sub.add_parser("pjsip", help="write pjsip_seats.conf for all seats and windows")
    c.add_argument("--config", help=f"TOML configuration (or ${config_mod.ENV_VAR})")
    c.add_argument("--output", default="-", help="file to write (default: stdout)")
    c.add_argument(
        "--secrets",
        default=str(DEFAULT_SECRETS),
        help=f"JSON file of the SIP passwords, mode 0600 (default: {DEFAULT_SECRETS})",
    )
    c.add_argument(
        "--placeholder",
        action="store_true",
        help="placeholder passwords, secrets file untouched (for an example file)",
    )
    c.add_argument("--context", default="from-seat", help="dialplan context of the phones")
    c.add_argument("--codecs", default="ulaw,alaw", help="allowed codecs, in order")
    c.add_argument("--qualify", type=int, default=5, help="qualify_frequency in seconds")
    c.add_argument("--transport", default="", help="pjsip transport for the phones")
    c.set_defaults(func=cmd_pjsip)

    c = sub.add_parser("provisioning", help="write Yealink/Grandstream files for seats with MAC")
    c.add_argument("--config", help=f"TOML configuration (or ${config_mod.ENV_VAR})")
    c.add_argument("--secrets", default=str(DEFAULT_SECRETS))
    c.add_argument("--sip-server", required=True, help="Asterisk as the phones reach it")
    c.add_argument("--output-dir", default=str(DEFAULT_PROVISIONING_DIR))
    c.add_argument("--ntp", default="cn.pool.ntp.org")
    c.add_argument("--auto-answer", action="store_true", help="phones answer CTI calls at once")
    c.set_defaults(func=cmd_provisioning)
