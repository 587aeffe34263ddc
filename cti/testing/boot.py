"""The PBX coming up after a restart, as recorded (cti_session_after_restart).

The manager listens, and accepts logins, before the PBX has finished booting: a client that
logs in then gets no ``FullyBooted`` after its login, and the actions of modules not loaded
yet do not exist ("Invalid/unknown command"), while the core's (CoreShowChannels, DBPut...)
work. res_pjsip comes up early and reports the contacts it remembers (AstDB) as
NonQualified; ``FullyBooted`` (``Uptime: 0``) goes to every session when the boot ends; then
each contact answers its first OPTIONS, one after the other.
"""

from __future__ import annotations

import asyncio
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
