"""ConfBridge(name) as app_confbridge reports it: a softmix bridge named after the conference."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cti.testing.bridging import wait_any
from cti.testing.model import Bridge, Channel

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator


def _conf_fields(name: str, bridge: Bridge) -> list[tuple[str, str]]:
    return [("Conference", name), *bridge.fields()]


async def confbridge_app(sim: AsteriskSimulator, ch: Channel, name: str) -> None:
    ch.context, ch.exten, ch.priority = "cti-conf", name, 1
    conf = sim.conferences.get(name)
    if conf is None or conf.destroyed:
        conf = sim.bridge_create(type="base", technology="softmix", creator="ConfBridge", name=name)
        sim.conferences[name] = conf
        sim.emit("ConfbridgeStart", "call,all", _conf_fields(name, conf))
        sim.set_device(f"confbridge:{name}", "INUSE")
    sim.bridge_enter(conf, ch)
    sim.emit(
        "ConfbridgeJoin",
        "call,all",
        [*_conf_fields(name, conf), *ch.snapshot(), ("Admin", "No"), ("Muted", "No")],
    )
    for other in conf.channels:
        if other is not ch:
            sim.mark_connected(other, ch)
            sim.mark_connected(ch, other)
    try:
        await wait_any(ch.hangup_requested)
    except asyncio.CancelledError:
        # Redirected out of the conference.
        if ch.bridge is conf:
            sim.bridge_leave(ch)
            _left(sim, name, conf, ch)
        raise
    if len(conf.channels) > 1:
        sim.bridge_leave(ch)
        _left(sim, name, conf, ch)
        sim.soft_hangup(ch, ch.hangup_cause)
        sim.destroy(ch)
        return
    # The last one out ends the conference.
    sim.emit(
        "ConfbridgeLeave", "call,all", [*_conf_fields(name, conf), *ch.snapshot(), ("Admin", "No")]
    )
    sim.bridge_leave(ch)
    _end(sim, name, conf)
    sim.soft_hangup(ch, ch.hangup_cause)
    sim.destroy(ch)


def _left(sim: AsteriskSimulator, name: str, conf: Bridge, ch: Channel) -> None:
    sim.emit(
        "ConfbridgeLeave", "call,all", [*_conf_fields(name, conf), *ch.snapshot(), ("Admin", "No")]
    )
    if not conf.channels:
        _end(sim, name, conf)


def _end(sim: AsteriskSimulator, name: str, conf: Bridge) -> None:
    sim.set_device(f"confbridge:{name}", "NOT_INUSE")
    sim.emit("ConfbridgeEnd", "call,all", _conf_fields(name, conf))
    # The announcer channel's device is reported twice, as in the rig.
    for _ in range(2):
        sim.emit(
            "DeviceStateChange", "call,all", [("Device", f"CBAnn/{name}"), ("State", "UNKNOWN")]
        )
    sim.bridge_destroy(conf)
    sim.conferences.pop(name, None)
