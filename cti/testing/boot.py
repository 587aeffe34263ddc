"""The PBX going down (``core restart now``) and coming up again, as recorded
(cti_session_asterisk_restart, cti_session_after_restart).

The manager listens, and accepts logins, before the PBX has finished booting: a client that
logs in then gets no ``FullyBooted`` after its login, and the actions of modules not loaded
yet do not exist ("Invalid/unknown command"), while the core's (CoreShowChannels, DBPut...)
work. res_pjsip comes up early and reports the contacts it remembers (AstDB) as
NonQualified; ``FullyBooted`` (``Uptime: 0``) goes to every session when the boot ends; then
each contact answers its first OPTIONS, one after the other.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from cti.testing import phones as phone_ops

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator

# When each module's actions appear, as a fraction of the boot (SimConfig.boot_delay_s).
MODULES = {
    "res_pjsip": 0.2,
    "res_manager_devicestate": 0.4,
    "app_queue": 0.6,
    "app_confbridge": 0.7,
    "app_mixmonitor": 0.7,
}
# Real seconds between two contacts' first qualify after the boot.
QUALIFY_SPREAD_S = 0.05


def module_of(action: str) -> str | None:
    """The loadable module that registers an AMI action (None: the core's own)."""
    lowered = action.lower()
    if lowered.startswith("pjsip"):
        return "res_pjsip"
    if lowered.startswith("queue"):
        return "app_queue"
    if lowered.startswith("confbridge"):
        return "app_confbridge"
    if lowered in ("mixmonitor", "mixmonitormute", "stopmixmonitor"):
        return "app_mixmonitor"
    if lowered == "devicestatelist":
        return "res_manager_devicestate"
    return None


def available(sim: AsteriskSimulator, action: str) -> bool:
    module = module_of(action)
    return module is None or module in sim.loaded_modules


async def boot(sim: AsteriskSimulator) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    for module, at in sorted(MODULES.items(), key=lambda item: item[1]):
        await asyncio.sleep(max(0.0, started + at * sim.config.boot_delay_s - loop.time()))
        sim.loaded_modules.add(module)
        if module == "res_pjsip":
            for phone in sim.phones.values():
                if phone.registered:
                    phone_ops.contact_status(sim, phone, "NonQualified", 0)
    await asyncio.sleep(max(0.0, started + sim.config.boot_delay_s - loop.time()))
    sim.booted = True
    # Published by the core (JSON order), unlike the one sent at login (Uptime first).
    sim.emit(
        "FullyBooted",
        "system,all",
        [("Status", "Fully Booted"), ("Uptime", "0"), ("LastReload", "0")],
    )
    for phone in list(sim.phones.values()):
        await asyncio.sleep(QUALIFY_SPREAD_S)
        if phone.registered and not phone.qualified:
            phone_ops.qualified(sim, phone)
    if sim.config.trunk_qualify:
        await asyncio.sleep(QUALIFY_SPREAD_S)
        phone_ops.trunk_status(sim, sim.carrier_answers, first=True)


async def restart(sim: AsteriskSimulator, *, announce: bool = True) -> None:
    """``core restart now``; returns once the manager listens again (still booting).

    ``announce``: as from the console, the AMI clients get a ``Shutdown`` event and for
    ``shutdown_s`` every action is refused with "Asterisk is shutting down" before the
    sockets close. Run by this very AMI client's ``Command`` action, the socket just
    closes (both were recorded). Calls vanish, dynamic queue members are gone
    (persistentmembers=no), AstDB and registrations survive; the manager comes back
    after ``restart_delay_s`` and accepts logins while the PBX boots (``boot``)."""
    if announce:
        sim.shutting_down = True
        sim.emit("Shutdown", "system,all", [("Shutdown", "Cleanly"), ("Restart", "True")])
        await asyncio.sleep(sim.config.shutdown_s)
    await sim.ami.close_listener_and_sessions()
    await sim.cancel_tasks()
    for channel in list(sim.channels.values()):
        channel.hungup = True
    sim.forget_all()
    sim.recorders.close_all()
    sim.bridges.clear()
    sim.conferences.clear()
    sim.queue.reset()
    for handle in sim.calls:
        if not handle.done.is_set():
            handle.outcome = handle.outcome or "failed"
            handle.done.set()
    sim.reset_sequences()
    for phone in sim.phones.values():
        # Remembered in AstDB, qualified again once the PBX is up.
        phone.reachable = phone.qualified = False
    for device in list(sim.devices):
        if device.startswith("PJSIP/"):
            sim.devices[device] = "UNAVAILABLE"
        elif not device.startswith("Queue:"):
            del sim.devices[device]
    if not sim.config.trunk_qualify:
        sim.devices["PJSIP/trunk"] = "NOT_INUSE"
    await asyncio.sleep(sim.config.restart_delay_s)
    sim.shutting_down = False
    sim.booted = False
    sim.loaded_modules.clear()
    sim.started_at = sim.reloaded_at = time.time()
    if sim.running:
        await sim.ami.start(sim.config.host, sim.ami.port)
        sim.spawn(boot(sim), name="boot")
