"""One of two processes upgrading one empty database at once (``test_migrations``), as two
CTIs started together do: ``python -m tests.cti.migrate_process URL`` prints ``ready``, waits
for a line on stdin, upgrades, and prints the revision it left as JSON."""

from __future__ import annotations

import json
import sys

from cti.db import create_schema, make_engine
from cti.migrate import current


def main(url: str) -> None:
    engine = make_engine(url)
    with engine.connect():  # connected before the start, so both go at once
        pass
    print("ready", flush=True)
    sys.stdin.readline()
    create_schema(engine)
    print(json.dumps({"revision": current(engine)}), flush=True)
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1])
