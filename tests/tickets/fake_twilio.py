"""A local HTTP server standing in for twilio's Messages API.

It checks what twilio requires of a request (the path with the account SID, basic auth with
the SID and the token, form encoding, To, Body and From or MessagingServiceSid) and answers
with twilio-shaped JSON, or with twilio's error JSON (code, message, more_info, status) for
the failures queued in ``failures``.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

SID = "AC" + "0" * 31 + "1"
TOKEN = "test-token-0123456789abcdef"


class FakeTwilio:
    def __init__(self, sid: str = SID, token: str = TOKEN) -> None:
        self.sid, self.token = sid, token
        self.requests: list[dict[str, str]] = []
        self.rejected: list[str] = []
        # (http status, twilio error code) for the next requests; empty = success
        self.failures: deque[tuple[int, int]] = deque()
        self._count = 0
        self._count_lock = threading.Lock()  # requests are handled in threads at once
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeTwilio:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: int, msg: str) -> None:
        self.rejected.append(msg)
        self._reply(
            handler,
            status,
            {
                "code": code,
                "message": msg,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
        )

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        raw = handler.rfile.read(length).decode()
        expected_path = f"/2010-04-01/Accounts/{self.sid}/Messages.json"
        if handler.path != expected_path:
            return self._error(handler, 404, 20404, f"unknown path {handler.path}")
        auth = handler.headers.get("Authorization", "")
        wanted = "Basic " + base64.b64encode(f"{self.sid}:{self.token}".encode()).decode()
        if auth != wanted:
            return self._error(handler, 401, 20003, "Authenticate")
        if not handler.headers.get("Content-Type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return self._error(handler, 400, 20001, "form encoding expected")
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        if not form.get("To") or not form.get("Body"):
            return self._error(handler, 400, 21604, "A 'To' phone number and Body are required.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return self._error(handler, 400, 21603, "A 'From' phone number is required.")
        self.requests.append(form)
        if self.failures:
            status, code = self.failures.popleft()
            return self._error(handler, status, code, f"failure {code}")
        with self._count_lock:
            self._count += 1
            sid = f"SM{self._count:032x}"
        self._reply(
            handler,
            201,
            {
                "sid": sid,
                "account_sid": self.sid,
                "to": form["To"],
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form["Body"],
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "date_created": "Tue, 15 Sep 2026 02:00:00 +0000",
                "error_code": None,
                "error_message": None,
                "uri": f"/2010-04-01/Accounts/{self.sid}/Messages/{sid}.json",
            },
        )
