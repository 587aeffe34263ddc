"""End to end in headless Chromium: a citizen's SMS, posted to the webhook with a valid
twilio signature, becomes a ticket on the agent desktop, and the citizen's reply names it;
then a citizen fills in the public web form, types back the code sent by SMS, reads the
ticket number, and the desk lists that ticket too."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.console.browser import VIEWPORT, running_stack, shot
from tests.tickets.fake_twilio import SID, TOKEN, FakeTwilio

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_an_sms_becomes_a_ticket_on_the_desktop(tmp_path: Path) -> None:
    with FakeTwilio() as twilio:
        sms = {
            "enabled": True,
            "account_sid": SID,
            "auth_token": TOKEN,
            "from_number": "+8610690012345",
            "api_base_url": twilio.url,
        }
        async with running_stack(tmp_path, sections={"sms": sms}) as stack:
            desk = await stack.person("li", "demo-li")
            await desk.wait_for_selector("#conn[data-state=live]")
            await desk.wait_for_selector("#inbox li")  # loaded: nothing waiting yet

            url = stack.url + "/api/sms/inbound"
            params = {
                "MessageSid": "SM" + "c" * 32,
                "AccountSid": SID,
                "From": "+8613912345678",
                "To": "+8610690012345",
                "Body": "文游路与府前街路口红绿灯不亮",
            }
            signature = RequestValidator(TOKEN).compute_signature(url, params)
            async with httpx.AsyncClient() as http:
                r = await http.post(
                    url,
                    content=urlencode(params),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": signature,
                    },
                )
            assert r.status_code == 200, r.text
            (ticket,) = stack.hotline.tickets.list_tickets(state="intake")
            assert ticket.channel == "sms"

            # The desktop hears of it live, lists it with its channel, and opens it.
            item = f"#inbox li[data-ticket='{ticket.id}']"
            await desk.wait_for_selector(f"{item}:has-text('短信')")
            await desk.wait_for_selector(f"{item}:has-text('红绿灯不亮')")
            await desk.click(f"{item} a")
            await desk.wait_for_selector(f"#ticket-id:has-text('{ticket.id}')")
            assert await desk.input_value("#f-description") == "文游路与府前街路口红绿灯不亮"
            assert await desk.input_value("#f-contact_phone") == "13912345678"
            await shot(desk, "20-agent-desktop-sms-ticket")

            # The citizen's reply left through the SMS worker, naming the ticket.
            reply = await stack.until(lambda: twilio.requests)
            assert reply[0]["To"] == "+8613912345678" and ticket.id in reply[0]["Body"]

            # The web form, by someone with no login.
            context = await stack.browser.new_context(viewport=VIEWPORT, locale="zh-CN")
            stack.contexts.append(context)
            form = await context.new_page()
            await form.goto(stack.url + "/intake")
            await form.fill("#in-phone", "13800000002")
            await form.fill("#in-location", "高邮市文游中路")
            await form.fill("#in-description", "小区门口窨井盖缺失,夜里有人险些踩空")
            await form.click("#intake-submit")
            await form.wait_for_selector("#confirm-form:not([hidden])")
            await form.wait_for_selector("#confirm-sent:has-text('138****0002')")
            texts = await stack.until(
                lambda: [m for m in twilio.requests if m["To"] == "+8613800000002"]
            )
            code = texts[0]["Body"].split("验证码为", 1)[1][:6]
            await form.fill("#in-code", "000000" if code != "000000" else "111111")
            await form.click("#confirm-submit")
            await form.wait_for_selector("#intake-error:has-text('验证码不正确')")
            await form.fill("#in-code", code)
            await form.click("#confirm-submit")
            done = await form.wait_for_selector("#intake-done:not([hidden])")
            (web,) = stack.hotline.tickets.list_tickets(caller="13800000002")
            assert web.channel == "web" and web.id in (await done.text_content() or "")
            await shot(form, "21-public-web-form-done")
            await desk.wait_for_selector(f"#inbox li[data-ticket='{web.id}']:has-text('网站')")
