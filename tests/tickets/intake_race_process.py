"""One of several processes submitting requests of one phone number at once
(``test_intake``): prints ``ready`` once connected, waits for a line on stdin, submits COUNT
requests of PHONE (external ids ``p<INDEX>-<n>``) and prints the outcomes' kinds as JSON.

``python -m tests.tickets.intake_race_process URL INDEX COUNT PHONE``
"""

from __future__ import annotations

import json
import sys

from cti.bus import Bus
from cti.db import make_engine, session_factory
from tests.tickets.support import SETTINGS
from tickets.channels import Channel
from tickets.intake import Intake
from tickets.service import TicketService
from tickets.settings import IntakeSettings


def main(url: str, index: int, count: int, phone: str) -> None:
    engine = make_engine(url)
    service = TicketService(session_factory(engine), Bus(), SETTINGS)
    intake = Intake(service, IntakeSettings())
    requests = [
        intake.clean_request(
            Channel.WECHAT, "wechat-mp", f"p{index}-{n}", phone, {"description": "路灯不亮"}
        )
        for n in range(count)
    ]
    print("ready", flush=True)
    sys.stdin.readline()
    kinds = [intake.submit(request).kind for request in requests]
    print(json.dumps(kinds), flush=True)
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
