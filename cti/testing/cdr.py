"""CDR lines as ``cdr_custom`` writes them with the mapping in config/asterisk/cdr_custom.conf.

One line per citizen call, appended when the citizen's channel goes away, whatever the CTI
does (that is the point: the CTI reads them back for the calls it missed). Text columns are
quoted like ``CSV_QUOTE`` does; start/answer/end are epoch seconds with microseconds
(``CDR(start,u)``), in real time so that they compare with the CTI's own clock; duration and
billsec are whole simulated seconds, like every duration the simulator reports.

As on the real PBX with our dialplan, the citizen's channel is answered by ``Answer()`` before
the FastAGI, so disposition is ANSWERED and ``answer`` is that moment; ``dstchannel`` names the
seat the citizen talked with, empty when nobody answered.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from cti.cdr import FIELDS

if TYPE_CHECKING:
    from cti.testing.model import Channel
    from cti.testing.pbx import AsteriskSimulator, CallHandle

NUMERIC = frozenset({"start", "answer", "end", "duration", "billsec"})


def csv_quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def cdr_values(
    sim: AsteriskSimulator, channel: Channel, handle: CallHandle | None
) -> dict[str, str]:
    now_sim = sim.now()
    now_wall = time.time()

    def wall(sim_t: float | None) -> str:
        if sim_t is None:
            return "0.000000"
        return f"{now_wall - (now_sim - sim_t) * sim.config.scale:.6f}"

    answered = channel.answered_at
    return {
        "linkedid": channel.linkedid,
        "uniqueid": channel.uniqueid,
        "clid": f'"{channel.cid_name}" <{channel.cid_num}>',
        "src": channel.cid_num,
        "dst": channel.exten,
        "dcontext": channel.context,
        "channel": channel.name,
        "dstchannel": handle.answered_by if handle is not None else "",
        "lastapp": channel.app,
        "start": wall(channel.created),
        "answer": wall(answered),
        "end": f"{now_wall:.6f}",
        "duration": str(int(now_sim - channel.created)),
        "billsec": str(int(now_sim - answered)) if answered is not None else "0",
        "disposition": "ANSWERED" if answered is not None else "NO ANSWER",
        "userfield": channel.variables.get("CDR(userfield)", ""),
    }


def cdr_line(values: dict[str, str]) -> str:
    return ",".join(
        v if k in NUMERIC else csv_quote(v) for k, v in ((k, values[k]) for k in FIELDS)
    )


def write_cdr(sim: AsteriskSimulator, channel: Channel, handle: CallHandle | None) -> None:
    path = sim.config.cdr_path
    if not path:
        return
    line = cdr_line(cdr_values(sim, channel, handle))
    with open(path, "a", encoding="utf-8", newline="") as fh:
        fh.write(line + "\n")
