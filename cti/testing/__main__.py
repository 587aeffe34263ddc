"""``python -m cti.testing``: run the simulated PBX on a port, optionally with synthetic calls."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from cti.testing.load import generate_calls
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator


async def _main(args: argparse.Namespace) -> None:
    sim = AsteriskSimulator(
        SimConfig(
            ami_port=args.ami_port, agi_host=args.agi_host, agi_port=args.agi_port, scale=args.scale
        )
    )
    port = await sim.start()
    print(f"AMI on 127.0.0.1:{port} (user cti / cti-secret)", flush=True)
    for n, ext in enumerate(args.seats.split(",") if args.seats else []):
        sim.register_phone(ext, ip=f"127.0.0.{3 + n}")
        if args.queue:
            sim.queue.add_member(f"PJSIP/{ext}", f"agent-{ext}", f"PJSIP/{ext}", False, "")
    try:
        if args.calls:
            stats = await generate_calls(
                sim, rate_per_s=args.rate, count=args.calls, talk_s=(args.talk, args.talk), seed=1
            )
            print(f"placed {stats.placed}: {dict(stats.outcomes)}", flush=True)
        if args.calls == 0 or args.stay:
            await asyncio.Event().wait()
    finally:
        await sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m cti.testing", description=__doc__)
    parser.add_argument("--ami-port", type=int, default=5038)
    parser.add_argument("--agi-host", default="127.0.0.1")
    parser.add_argument("--agi-port", type=int, default=4573)
    parser.add_argument("--calls", type=int, default=0, help="synthetic calls to place (0: none)")
    parser.add_argument("--rate", type=float, default=3.0, help="calls per simulated second")
    parser.add_argument("--talk", type=float, default=5.0, help="talk time, simulated seconds")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="real seconds per simulated second"
    )
    parser.add_argument("--seats", default="8001,8002,8003", help="phones to register")
    parser.add_argument("--queue", action="store_true", help="add the seats to the queue")
    parser.add_argument("--stay", action="store_true", help="keep running after the calls")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
