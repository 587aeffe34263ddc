"""``hotline demo``: the whole system against the built-in Asterisk simulator.

It starts the simulator (AMI on loopback, a real FastAGI client for every call), the CTI with
its FastAGI server and store, and the web console; registers the seats' phones, logs the
demo agents in, and has simulated citizens call the configured hotline numbers. Agents work
their tickets as a floor would: most are answered on the spot, some dispatched.

``--calls N --no-browser`` places N calls, waits until they are all over and prints a JSON
summary read back from the database; otherwise it runs until interrupted.

Its data goes where every other command looks when run from the same directory: the
configuration's database, by default ``var/hotline.db`` (so ``hotline report`` after the demo
reports the demo's calls). It adds to that database and never empties it; and it refuses a
database that holds anybody but its own users (whose passwords are published in the README):
that is a site's, and the demo's logins must not appear there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import secrets
import signal
import time
import webbrowser
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from cti import config as config_mod
from cti.errors import CommandError

log = logging.getLogger(__name__)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run the whole system against the built-in Asterisk simulator")
    p.add_argument("--config", help="TOML configuration (default: the built-in demo site)")
    p.add_argument("--calls", type=int, default=0, help="place N calls, print a summary, exit")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="new calls per second (default 1 with --calls, else 0.5)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=0.0,
        help="simulated seconds -> real seconds (default 0.25 with --calls, else 1)",
    )
    p.add_argument("--port", type=int, default=8080, help="console port (0: any free port)")
    p.add_argument(
        "--db", help="database URL (default: the configuration's, ./var/hotline.db built in)"
    )
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--seed", type=int, default=12345)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.calls < 0:
        raise CommandError(f"--calls {args.calls}: give a number of calls, 0 or more.")
    if args.rate < 0 or args.scale < 0:
        raise CommandError("--rate and --scale: give positive numbers (0: the default).")
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port {args.port}: give a TCP port (0: any free one).")
    if args.port:
        # Checked before anything starts: the console's server would end the process.
        from cti.preflight import check_listen

        problem, busy = check_listen("--port", "127.0.0.1", args.port)
        if problem or busy:
            raise CommandError(
                f"--port {args.port}: in use by another process (a running demo or serve?)"
                " or not usable here: stop it, or choose another port (--port 0: any free one)."
            )
    base = config_mod.load(args.config) if args.config else None
    args.db = _database_url(args, base)
    try:
        return asyncio.run(_main(args, base))
    except KeyboardInterrupt:
        return 130


def _database_url(args: argparse.Namespace, base: config_mod.Settings | None) -> str:
    """The database the demo writes, once it is known to be fit for the demo."""
    from cti.db import open_database

    url: str = args.db or (base.database.url if base else config_mod.DEFAULT_DATABASE_URL)
    key = "--db" if args.db else "database.url"
    engine = open_database(url, key=key)
    try:
        foreign = _site_users(engine)
    finally:
        engine.dispose()
    if foreign:
        shown = engine.url.render_as_string(hide_password=True)
        raise CommandError(
            f"{key}: {shown} holds users the demo did not make ({', '.join(foreign[:5])}):"
            " it is a site's database, which the demo leaves alone (it would add logins whose"
            " passwords are published); run the demo in another directory or give it"
            " --db sqlite:///var/demo.db."
        )
    return url


def _site_users(engine: Any) -> list[str]:
    """Users of the database whose password is not the demo's (``demo-<name>``), or, in a
    database without users, a sign of a site's data (its tickets)."""
    from sqlalchemy import inspect, text

    from console.passwords import verify_password

    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        if "users" not in tables:
            return []
        rows = conn.execute(text("SELECT username, password_hash FROM users")).all()
        if not rows and "tickets" in tables:
            tickets = conn.execute(text("SELECT count(*) FROM tickets")).scalar() or 0
            return [f"no users but {tickets} tickets"] if tickets else []
    foreign: list[str] = []
    for name, stored in rows:
        if not verify_password(f"demo-{name}", stored):
            foreign.append(name)
            if len(foreign) == 3:  # enough to name; each check costs a password hash
                break
    return foreign


def published_logins(engine: Any) -> list[str]:
    """The demo's powerful logins (admin, supervisor) in the database that still have the
    password the README publishes: whoever read it would run the site."""
    from sqlalchemy import inspect, text

    from console.passwords import verify_password

    with engine.connect() as conn:
        if not inspect(conn).has_table("users"):
            return []
        rows = conn.execute(
            text(
                "SELECT username, password_hash FROM users WHERE active AND username IN"
                " ('admin', 'supervisor')"
            )
        ).all()
    return sorted(name for name, stored in rows if verify_password(f"demo-{name}", stored))


def _settings(
    args: argparse.Namespace, ami_port: int, base: config_mod.Settings | None = None
) -> config_mod.Settings:
    if base is None and args.config:
        base = config_mod.load(args.config)
    data: dict[str, Any] = base.model_dump(mode="json") if base else config_mod.default_data()
    # Secrets come back masked from model_dump: the demo's own are used.
    node = dict(data["asterisk"][0])
    node.update(
        name=node.get("name", "pbx1"),
        host="127.0.0.1",
        port=ami_port,
        username="cti",
        secret="cti-secret",
    )
    data["asterisk"] = [node]
    data.setdefault("agi", {})["port"] = 0
    # A new session key each run (cookies of an earlier run, or of anyone who read this
    # file, sign nobody in); loopback only, where plain HTTP may carry the cookies: the demo
    # users' passwords are published in the README.
    console = data.setdefault("console", {})
    console.update(
        port=args.port,
        host="127.0.0.1",
        secret_key=secrets.token_urlsafe(48),
        plain_http_loopback=True,
        trusted_proxies=[],
    )
    console.pop("metrics_token", None)  # masked by model_dump: no token, /metrics on loopback
    if "sms" in data and isinstance(data["sms"], dict):
        data["sms"].pop("auth_token", None)
        data["sms"]["enabled"] = False
    url = args.db or (base.database.url if base else config_mod.DEFAULT_DATABASE_URL)
    data["database"] = {**data.get("database", {}), "url": url}
    rec = data.setdefault("recordings", {})
    rec["dir"] = str(Path("var/recordings").resolve())
    rec["asterisk_dir"] = rec["dir"]
    control = data.setdefault("control", {})
    control["wrapup_s"] = 2 if args.calls else 8
    return config_mod.parse(data, "demo")


async def _main(args: argparse.Namespace, base: config_mod.Settings | None) -> int:
    from cti.app import Hotline
    from cti.testing.model import SimConfig
    from cti.testing.pbx import AsteriskSimulator

    scale = args.scale or (0.25 if args.calls else 1.0)
    args.rate = args.rate or (1.0 if args.calls else 0.5)
    sim = AsteriskSimulator(
        SimConfig(scale=scale, write_recordings=True, rec_dir=str(Path("var/recordings").resolve()))
    )
    ami_port = await sim.start()
    settings = _settings(args, ami_port, base)
    sim.endpoints.update({s.extension: f"Seat {s.extension}" for s in settings.seats})
    for s in settings.seats:
        sim.devices.setdefault(f"PJSIP/{s.extension}", "UNAVAILABLE")
    try:
        hotline = Hotline(settings)
        await hotline.start()
    except BaseException:
        await sim.stop()
        raise
    sim.config.agi_port = hotline.agi.port
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    floor = DemoFloor(hotline, sim, random.Random(args.seed))
    try:
        await floor.open()
        url = f"http://127.0.0.1:{hotline.console_port}/"
        print(f"hotline demo: console at {url}  (users: {floor.users_hint})", flush=True)
        if args.calls:
            summary = await floor.place(args.calls, args.rate)
            print(json.dumps(summary, ensure_ascii=False), flush=True)
            ok = summary["answered"] + summary["abandoned"] == summary["offered"]
            return 0 if ok else 1
        if not args.no_browser:
            with contextlib.suppress(Exception):
                webbrowser.open(url)
        traffic = asyncio.create_task(floor.traffic(args.rate))
        await stop.wait()
        traffic.cancel()
        await asyncio.gather(traffic, return_exceptions=True)
        return 0
    finally:
        await floor.close()
        await hotline.stop()
        await sim.stop()


class DemoFloor:
    """The simulated people: phones on the seats, agents at them, citizens calling."""

    def __init__(self, hotline: Any, sim: Any, rng: random.Random) -> None:
        self.hotline = hotline
        self.sim = sim
        self.rng = rng
        self.started_at = datetime.now(UTC)
        self.users_hint = ""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._caller = 13900000000

    async def open(self) -> None:
        h = self.hotline
        for i, seat in enumerate(h.settings.seats):
            self.sim.register_phone(seat.extension, ip=f"127.0.0.{3 + i}", answer_delay=0.3)
        if not await h.wait_connected(10):
            raise RuntimeError("the CTI did not connect to the simulator")
        # The dialplan asks the CTI only while its heartbeat in AstDB is fresh.
        for _ in range(100):
            if not self.sim.heartbeat_stale():
                break
            await asyncio.sleep(0.05)
        self._demo_users()
        seats = [s for s in h.settings.seats if s.kind == "seat"]
        agents = [a for a in h.settings.agents if not a.leader]
        for agent, seat in zip(agents, seats, strict=False):
            await self._wait_usable(seat.extension)
            h.agents.login(agent.id, seat.extension, ready=True)
        from cti.events import TicketOpened

        h.bus.subscribe(TicketOpened, self._work_ticket)

    def _demo_users(self) -> None:
        try:
            from console.users import ensure_demo_users
        except ImportError:
            return
        try:
            ensure_demo_users(self.hotline.sessions, self.hotline.settings)
        except Exception as exc:
            log.warning("demo users not created: %s", exc)
            return
        first = next((a.id for a in self.hotline.settings.agents if not a.leader), "agent")
        self.users_hint = (
            f"{first} / demo-{first}, supervisor / demo-supervisor, admin / demo-admin"
        )

    async def _wait_usable(self, extension: str) -> None:
        for _ in range(100):
            seat = self.hotline.seats.get(extension)
            if seat is not None and seat.usable:
                return
            await asyncio.sleep(0.02)

    def _work_ticket(self, ev: Any) -> None:
        """An agent fills the ticket during the call: most answered on the spot (直接办结),
        the rest dispatched to a department when one is configured."""
        task = asyncio.get_running_loop().create_task(self._fill(ev))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, ev: Any) -> None:
        from console.security import User

        h = self.hotline
        await asyncio.sleep(0.2)
        actor = User(
            id=0,
            username=ev.agent_id or "agent",
            display_name=ev.agent_id or "agent",
            roles=frozenset({"agent"}),
            agent_id=ev.agent_id or None,
        )
        departments = [d.id for d in h.settings.departments]
        text = self.rng.choice(DESCRIPTIONS)
        try:
            await asyncio.to_thread(
                h.tickets.update_fields,
                ev.ticket_id,
                actor,
                description=text[1],
                location=text[0],
                category=ev.topic or "综合咨询",
            )
            if departments and self.rng.random() < 0.3:
                await asyncio.to_thread(
                    h.tickets.transition,
                    ev.ticket_id,
                    "dispatch",
                    actor,
                    department=self.rng.choice(departments),
                    reason="接交一体",
                )
            else:
                await asyncio.to_thread(
                    h.tickets.transition, ev.ticket_id, "answer", actor, reason="当场答复"
                )
        except Exception as exc:  # the demo keeps going; the console shows the ticket as is
            log.info("demo agent could not finish ticket %s: %s", ev.ticket_id, exc)

    def _place_one(self) -> Any:
        self._caller += 1
        dids = [x.did for x in self.hotline.settings.hotlines]
        return self.sim.place_call(
            caller=str(self._caller),
            name=self.rng.choice(NAMES),
            did=self.rng.choice(dids),
            talk_s=self.rng.uniform(4, 10),
            patience_s=self.rng.uniform(120, 240),
        )

    async def place(self, count: int, rate: float) -> dict[str, Any]:
        t0 = time.monotonic()
        handles = []
        for n in range(count):
            if n:
                await asyncio.sleep(1.0 / rate)
            handles.append(self._place_one())
        await asyncio.gather(*(hd.wait(600) for hd in handles))
        await asyncio.sleep(0.5)  # the last tickets are worked
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.hotline.store.flush(30)
        summary = self.summary()
        summary["seconds"] = round(time.monotonic() - t0, 1)
        return summary

    async def traffic(self, rate: float) -> None:
        while True:
            self._place_one()
            await asyncio.sleep(self.rng.expovariate(rate))

    def summary(self) -> dict[str, Any]:
        from cti.models import CallRow
        from tickets.models import Ticket

        with self.hotline.sessions() as s:
            since = CallRow.started_at >= self.started_at
            inbound = CallRow.direction == "inbound"
            offered = s.scalar(select(func.count()).where(since, inbound)) or 0
            answered = s.scalar(select(func.count()).where(since, inbound, CallRow.answered)) or 0
            abandoned = s.scalar(select(func.count()).where(since, inbound, CallRow.abandoned)) or 0
            by_cti = (
                s.scalar(select(func.count()).where(since, inbound, CallRow.routed_by == "cti"))
                or 0
            )
            tickets = (
                s.scalar(
                    select(func.count())
                    .select_from(Ticket)
                    .where(Ticket.opened_at >= self.started_at)
                )
                or 0
            )
            states = dict(
                s.execute(
                    select(Ticket.state, func.count())
                    .where(Ticket.opened_at >= self.started_at)
                    .group_by(Ticket.state)
                ).all()
            )
        return {
            "offered": offered,
            "answered": answered,
            "abandoned": abandoned,
            "tickets": tickets,
            "routed_by_cti": by_cti,
            "ticket_states": states,
            "acd": dict(self.hotline.acd.stats),
        }

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


NAMES = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴婷", "市民")
DESCRIPTIONS = (
    ("吴兴区爱山街道", "楼下路灯坏了三天，晚上出行不便，请派人维修。"),
    ("南浔区练市镇", "咨询灵活就业人员社保缴费基数和缴费渠道。"),
    ("德清县武康街道", "小区外夜间施工噪音扰民，影响休息。"),
    ("长兴县雉城街道", "网购商品质量问题，商家拒绝退货，要求维权。"),
    ("安吉县递铺街道", "企业开办登记需要准备哪些材料，能否网上办理。"),
    ("吴兴区朝阳街道", "公交站台雨棚破损，下雨天无法避雨。"),
)
