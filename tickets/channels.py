"""受理渠道: how a request reached the hotline. A ticket's channel is set once, by the path it
came in by (a call, ``tickets.intake`` for the others), and is never edited afterwards: the
KPIs and reports count tickets per channel."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    PHONE = "phone"  # an answered call
    SMS = "sms"  # a citizen's text to the hotline's number (twilio's inbound webhook)
    WEB = "web"  # the public web form, confirmed by a code sent by SMS
    WECHAT = "wechat"  # a WeChat mini-program or official account back-end (intake API)
    API = "api"  # another system of the city (intake API)
    POLICE110 = "police110"  # a call or record handed over from 110 (12号文)


CHANNELS = tuple(c.value for c in Channel)
# Channels an intake API client may name; phone, sms and web have their own paths.
API_CHANNELS = (Channel.WECHAT.value, Channel.API.value, Channel.POLICE110.value)
