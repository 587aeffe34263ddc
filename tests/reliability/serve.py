"""``hotline serve`` with ``[[asterisk]] cdr_path`` given on the command line, for as long as
the configuration file does not declare that key (``cti.cdr`` reads it with getattr)."""

from __future__ import annotations

import argparse
import logging

from cti import cli
from cti.config import load
from tests.reliability.helpers import with_cdr_path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--cdr-path", required=True)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = with_cdr_path(load(args.config), args.cdr_path)
    cli._load = lambda _args: settings  # type: ignore[assignment]
    return cli.cmd_serve(argparse.Namespace(config=args.config))


if __name__ == "__main__":
    raise SystemExit(main())
