"""Outbound dialling allow-list (issue 15, toll fraud: ``/api/control/callback`` dialled any
3-20 digit number): callbacks and transfers reach outside numbers only when they match
``control.dial_allow``; the site's own seats, windows and police number need no pattern."""

from __future__ import annotations

import re

import pytest

from cti.config import ControlSettings, default_data, parse
from cti.control import NumberNotAllowed
from cti.errors import ConfigError
from tests.control.harness import Pbx

ALLOWED = ["13800000007", "19912345678", "5123456", "25123456", "110"]
REFUSED = [
    "0085212345678",  # abroad
    "00441632960001",
    "95105105",  # a paid service number
    "12345678901",  # not a mobile
    "057212345678",  # another city's landline: not in the default patterns
    "999",
]


@pytest.mark.parametrize("number", ALLOWED)
def test_the_default_patterns_take_mobiles_local_landlines_and_110(number: str) -> None:
    patterns = ControlSettings().dial_allow
    assert any(re.fullmatch(p, number) for p in patterns), number


async def test_a_callback_to_a_number_off_the_list_is_refused(pbx: Pbx) -> None:
    pbx.login()
    before = len(pbx.actions("Originate"))
    for number in REFUSED:
        with pytest.raises(NumberNotAllowed) as err:
            await pbx.control.callback("li", number)
        assert err.value.status == 403 and err.value.error_id == "number-not-allowed"
        assert err.value.details == {"field": "number", "number": number}
    assert len(pbx.actions("Originate")) == before  # nothing reached Asterisk
    await pbx.control.callback("li", "13800000007")
    assert len(pbx.actions("Originate")) == before + 1


async def test_a_transfer_to_a_number_off_the_list_is_refused(pbx: Pbx) -> None:
    pbx.login()
    await pbx.answered_call()
    for target in ("0085212345678", "95105105"):
        with pytest.raises(NumberNotAllowed) as err:
            await pbx.control.blind_transfer("li", target)
        assert err.value.details["field"] == "target"
        with pytest.raises(NumberNotAllowed):
            await pbx.control.attended_transfer("li", target)
    assert not pbx.actions("BlindTransfer") and not pbx.actions("Redirect")
    assert not pbx.actions("Atxfer")
    # the site's own: a seat and a window, by extension or id
    result = await pbx.control.blind_transfer("li", "shebao")
    assert result["target"] == "9001"


def test_a_bad_pattern_is_a_configuration_error() -> None:
    data = default_data()
    data["control"] = {"dial_allow": ["^1[3-9]\\d{9}$", "^(0572"]}
    with pytest.raises(ConfigError) as err:
        parse(data)
    assert "control.dial_allow" in str(err.value) and "'^(0572'" in str(err.value)
    data["control"] = {"dial_allow": ["^0572\\d{7,8}$"]}
    assert parse(data).control.dial_allow == ["^0572\\d{7,8}$"]
