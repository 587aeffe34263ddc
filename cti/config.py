"""The one configuration file (TOML), validated at start with errors that name the key path.

``load(path)`` reads ``--config PATH`` or ``$HOTLINE_CONFIG``; with neither, the built-in
defaults (a loopback site with a few seats, as the demo uses). ``config/example.toml``
documents every key.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tomllib
from collections.abc import Iterator
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from cti.errors import ConfigError
from recordings.settings import RecordingSettings, TranscriptionSettings
from routing.settings import AgentSettings, HotlineNumber, LeaderShift, RoutingSettings
from tickets.settings import DepartmentSettings, IntakeSettings, SmsSettings, TicketSettings

log = logging.getLogger(__name__)

ENV_VAR = "HOTLINE_CONFIG"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSettings(Section):
    name: str = "12345政务服务便民热线"
    timezone: str = "Asia/Shanghai"
    language: str = "zh-CN"
    # The site's place names (districts, streets, estates, landmarks): a ticket's location is
    # suggested from those the citizen names during the call (tickets.suggest).
    places: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=20000
    )

    @field_validator("places")
    @classmethod
    def _places(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for place in value:
            if not place.strip():
                raise ValueError("a place name is blank")
            if place in seen:
                raise ValueError(f"the place {place!r} is listed twice")
            seen.add(place)
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        # Ticket numbers and the service windows' hours are read in it from the start.
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: write e.g. 'Asia/Shanghai'") from None
        return value


# The one place of a site's data when the configuration names none: every command (the demo
# too) run from the same directory finds the same database.
DEFAULT_DATABASE_URL = "sqlite:///./var/hotline.db"


class DatabaseSettings(Section):
    url: str = DEFAULT_DATABASE_URL
    # Events are buffered in memory while the database is unreachable, up to this many.
    buffer_max: int = Field(100_000, ge=1000)

    @field_serializer("url")
    def _masked_url(self, url: str) -> str:
        return mask_url(url)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            yield key, mask_url(value) if key == "url" else value


def mask_url(url: str) -> str:
    """The database URL without its password, for logs, repr and API output."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)


class HaSettings(Section):
    """``[ha]``: two CTIs on one PostgreSQL, one leading, the other on standby (``cti.leader``).
    The leader renews its lease every ``renew_s``; when it dies the standby leads at most
    ``lease_s`` (plus ``poll_s``) later. The leader stops acting when it could not renew for
    ``lease_s`` less ``margin_s``, before a standby may take the lease."""

    lease_s: float = Field(2.5, ge=1, le=60)
    renew_s: float = Field(0.5, gt=0, le=20)
    poll_s: float = Field(0.25, gt=0, le=10)
    margin_s: float = Field(0.3, ge=0, le=10)
    # How the console names this process's side (shown to operators): a URL or host name.
    address: str = ""
    # True on both machines when a standby CTI runs on this database: a leader that cannot
    # renew (the database away, or this machine cut off from it) stops acting before its
    # lease runs out, so the two never act at once. False for a sole CTI, which rides out a
    # database outage on its write buffer (and steps down only for another lease holder).
    standby: bool = False

    @model_validator(mode="after")
    def _renew_within_lease(self) -> HaSettings:
        if self.renew_s + self.margin_s >= self.lease_s:
            raise ValueError("renew_s plus margin_s must be less than lease_s")
        return self


class LoggingSettings(Section):
    """Where every ``hotline`` command logs (``cti.logsetup``): warnings on stderr, and the
    ``level`` and above, tracebacks included, in ``file``."""

    # "json": one JSON object a line (time, level, logger, message, the record's fields), for
    # sites that ship their logs to a collector; on stderr and in the file alike.
    format: Literal["text", "json"] = "text"
    # Relative names are read from the working directory, as the database's.
    file: str = "var/log/hotline.log"
    level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("file")
    @classmethod
    def _file(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name a file: the details of unexpected errors are kept there")
        return value


class AsteriskNode(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str
    secret: SecretStr
    # Login "Events:" classes; dialplan/agi chatter is not needed by the CTI.
    events: str = "system,call,agent,user"
    action_timeout_s: float = Field(5.0, gt=0)
    ping_interval_s: float = Field(5.0, gt=0)
    ping_timeout_s: float = Field(3.0, gt=0)
    # Reconnect backoff ceiling: low, so that a restarted Asterisk is back in the CTI's view
    # within about 2 s (the dialplan's fallback covers the calls meanwhile).
    backoff_max_s: float = Field(2.0, gt=0)
    # A connect, banner or login that takes longer is given up (and retried); while the node
    # stays down the log says so again every down_reminder_s.
    login_timeout_s: float = Field(10.0, gt=0)
    down_reminder_s: float = Field(60.0, gt=0)
    # Dialplan names the CTI uses on this node (see config/asterisk/extensions.conf).
    inbound_context: str = "from-citizen"
    queue: str = "hotline"
    # Asterisk's cdr_custom file (config/asterisk/cdr_custom.conf), readable by the CTI: calls
    # that began and ended while the CTI was down or disconnected are recorded from it.
    cdr_path: str = ""


class AgiSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(4573, ge=0, le=65535)
    # CTI_ROUTE_TIMEOUT of the dialplan: how long a caller waits for the route's answer
    # before the fallback queue. A question read later than that is left unanswered.
    route_timeout_s: float = Field(2.0, gt=0, le=30)
    heartbeat_interval_s: float = Field(1.0, gt=0, le=5)
    max_sessions: int = Field(2000, ge=1)
    header_timeout_s: float = Field(5.0, gt=0)


class ConsoleSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Signs the session cookies: no default (a known key lets anyone sign in as anyone);
    # serve and the console refuse a missing, short or placeholder key (cti.preflight).
    secret_key: SecretStr | None = None
    public_url: str = ""
    # Session cookies are Secure (sent back over HTTPS only) unless this is true and the
    # console listens on a loopback address: the demo, or a browser on this machine.
    plain_http_loopback: bool = False
    # Addresses (or networks) of the reverse proxies in front of the console: only their
    # X-Forwarded-For is believed, and their own address is never taken for a client's.
    trusted_proxies: list[str] = []
    session_hours: int = Field(12, ge=1)
    # Failed logins a user name may have before each further one doubles a wait
    # (console.ratelimit); an address may fail four times as often across user names.
    login_attempts_per_minute: int = Field(5, ge=1)
    # knowledge-base articles (JSON); empty: the sample shipped with the console
    kb_path: str = ""
    # /metrics answers loopback clients that come straight (no proxy); others need
    # "Authorization: Bearer <token>"
    metrics_token: SecretStr | None = None

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, values: list[str]) -> list[str]:
        import ipaddress

        for value in values:
            if value.strip() == "*":
                raise ValueError(
                    "'*' would believe X-Forwarded-For from anyone: list the proxies' addresses"
                )
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(
                    f"{value!r} is no IP address or network: write e.g. '127.0.0.1' or "
                    "'10.0.0.0/24'"
                ) from None
        return values

    def is_loopback(self) -> bool:
        """The console listens on a loopback address only (no other machine reaches it)."""
        import ipaddress

        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def serves_plain_http(self) -> bool:
        """``plain_http_loopback``, honoured only on a loopback address: cookies without
        ``Secure``. Everywhere else they are Secure, so a browser sends them over HTTPS only."""
        return self.plain_http_loopback and self.is_loopback()


SeatKind = Literal["seat", "window", "supervisor"]


class SeatSettings(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    extension: str = Field(pattern=r"^[0-9]{2,10}$")
    kind: SeatKind = "seat"
    room: str = ""
    position: str = ""
    phone_model: str = ""
    mac: str = ""

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str) -> str:
        if value and not re.fullmatch(r"(?i)([0-9a-f]{2}[:-]?){5}[0-9a-f]{2}", value):
            raise ValueError("not a MAC address")
        return value.lower().replace("-", ":")


class WindowSettings(Section):
    """A service window of the government service centre (三方通话 target)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    name: str
    department: str = ""
    services: list[str] = []
    extension: str = Field("", pattern=r"^[0-9]{0,10}$")
    external_number: str = Field("", pattern=r"^[0-9]{0,15}$")
    # "HH:MM-HH:MM" spans, on working days of the official calendar
    hours: list[str] = ["09:00-12:00", "13:30-17:30"]

    @field_validator("hours")
    @classmethod
    def _hours(cls, spans: list[str]) -> list[str]:
        for span in spans:
            m = re.fullmatch(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})", span)
            if not m:
                raise ValueError(f"{span!r}: expected HH:MM-HH:MM")
            a = dtime(int(m[1]), int(m[2]))
            b = dtime(int(m[3]), int(m[4]))
            if a >= b:
                raise ValueError(f"{span!r}: end before start")
        return spans


class ControlSettings(Section):
    police_number: str = Field("110", pattern=r"^[0-9]{3,15}$")
    window_context: str = "cti-window"
    conference_context: str = "cti-conf"
    callback_context: str = "cti-callback"
    police_context: str = "cti-police"
    spy_context: str = "cti-spy"
    deliver_context: str = "cti-deliver"
    hotline_number: str = Field("12345", pattern=r"^[0-9]{3,15}$")
    wrapup_s: int = Field(30, ge=0, le=3600)
    ring_timeout_s: int = Field(20, ge=5, le=120)
    not_ready_reasons: list[str] = ["break", "lunch", "training", "meeting"]
    # The numbers callbacks and transfers may dial out to, as regular expressions matched
    # against the whole number: mobiles, local landlines, 110. Anything else is refused
    # (403 number-not-allowed), so a stolen login cannot dial premium or foreign numbers.
    # Seats, windows and the police number are the site's own and need no pattern.
    dial_allow: list[str] = [r"^1[3-9]\d{9}$", r"^[2-8]\d{6,7}$", r"^110$"]

    @field_validator("dial_allow")
    @classmethod
    def _dial_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return patterns


class Settings(Section):
    site: SiteSettings = SiteSettings()
    database: DatabaseSettings = DatabaseSettings()
    asterisk: list[AsteriskNode] = Field(min_length=1)
    agi: AgiSettings = AgiSettings()
    console: ConsoleSettings = ConsoleSettings()
    recordings: RecordingSettings = RecordingSettings()
    transcription: TranscriptionSettings = TranscriptionSettings()
    routing: RoutingSettings = RoutingSettings()
    control: ControlSettings = ControlSettings()
    tickets: TicketSettings = TicketSettings()
    sms: SmsSettings = SmsSettings()
    intake: IntakeSettings = IntakeSettings()
    hotlines: list[HotlineNumber] = Field(min_length=1)
    seats: list[SeatSettings] = []
    agents: list[AgentSettings] = []
    leader_shifts: list[LeaderShift] = []
    windows: list[WindowSettings] = []
    departments: list[DepartmentSettings] = []
    logging: LoggingSettings = LoggingSettings()
    ha: HaSettings = HaSettings.model_validate({})

    @field_validator("asterisk")
    @classmethod
    def _unique_nodes(cls, nodes: list[AsteriskNode]) -> list[AsteriskNode]:
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ValueError("node names must be unique")
        return nodes

    @field_validator("seats")
    @classmethod
    def _unique_seats(cls, seats: list[SeatSettings]) -> list[SeatSettings]:
        _unique(seats, "seats", "id", "extension")
        return seats

    @field_validator("departments")
    @classmethod
    def _unique_departments(cls, departments: list[DepartmentSettings]) -> list[DepartmentSettings]:
        # Two rows with one key would stop the department sync at start.
        _unique(departments, "departments", "id")
        return departments

    def seat_by_extension(self) -> dict[str, SeatSettings]:
        return {s.extension: s for s in self.seats}

    def did_map(self) -> dict[str, HotlineNumber]:
        return {h.did: h for h in self.hotlines}


def _unique(items: list[Any], table: str, *attrs: str) -> None:
    for attr in attrs:
        values = [getattr(item, attr) for item in items]
        dup = sorted({v for v in values if values.count(v) > 1})
        if dup:
            raise ValueError(f"duplicate {attr} {dup}: give each [[{table}]] entry its own {attr}")


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def parse(data: dict[str, Any], source: str = "", base_dir: Path | None = None) -> Settings:
    """``base_dir``: the configuration file's directory, which relative file names are read
    from (see ``file_references``)."""
    try:
        return Settings.model_validate(file_references(data, base_dir))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ").rstrip(".")
            if err["type"] == "missing":
                msg = "missing required key: add it"
            elif err["type"] == "extra_forbidden":
                msg = "unknown key: correct its spelling or remove it"
            problems.append(f"{_loc(err['loc'])}: {msg}.")
        raise ConfigError(problems, source) from None


# Files the configuration names (not directories the CTI writes, nor the database: those stay
# relative to the working directory, where existing sites keep them).
FILE_KEYS = (("tickets", "calendar_override"), ("console", "kb_path"))


def file_references(data: dict[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """``data`` with the file names of ``FILE_KEYS`` read relative to ``base_dir``; an empty
    one means none (``Path("")`` would be the working directory: a calendar override read
    from every TOML file there). ``data`` itself is left as it is."""
    out = dict(data)
    for section, key in FILE_KEYS:
        table = out.get(section)
        if not isinstance(table, dict) or not isinstance(table.get(key), str):
            continue
        table = out[section] = dict(table)
        if not table[key].strip():
            table[key] = None if key == "calendar_override" else ""
        elif base_dir is not None:
            table[key] = str(base_dir / table[key])
    return out


def default_data() -> dict[str, Any]:
    """A small loopback site: what ``hotline demo`` runs when given no configuration."""
    return tomllib.loads(DEFAULT_TOML)


def load(path: str | os.PathLike[str] | None = None) -> Settings:
    path = path or os.environ.get(ENV_VAR)
    if not path:
        return parse(default_data(), "built-in defaults")
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"file not found: {p}"], str(p)) from None
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc}"], str(p)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(p)) from None
    settings = parse(data, str(p), p.absolute().parent)
    check_permissions(p)
    return settings


def check_permissions(path: Path, *, report: bool = True) -> list[str]:
    """The file holds AMI secrets and tokens: warn when others may read or write it."""
    warnings: list[str] = []
    try:
        mode = path.stat().st_mode
    except OSError:
        return warnings
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        warnings.append(f"{path} is readable or writable by every user: chmod 600 {path}")
    elif mode & stat.S_IWGRP:
        warnings.append(f"{path} is writable by its group: chmod 640 {path}")
    for w in warnings if report else ():
        log.warning("config permissions: %s", w)
    return warnings


DEFAULT_TOML = """
[site]
name = "12345政务服务便民热线 (演示)"

[[asterisk]]
name = "pbx1"
host = "127.0.0.1"
port = 5038
username = "cti"
secret = "cti-secret"

[[hotlines]]
did = "12345"
name = "12345政务服务便民热线"
topic = "综合咨询"
skill = "general"

[[hotlines]]
did = "12315"
name = "12315消费者投诉举报"
topic = "消费维权"
skill = "consumer"

[[hotlines]]
did = "12333"
name = "12333人社服务"
topic = "社保就业"
skill = "social"

[[hotlines]]
did = "96345"
name = "为企服务专线"
topic = "企业服务"
skill = "enterprise"

[[seats]]
id = "A01"
extension = "8001"
room = "一楼受理大厅"
position = "A区01"
phone_model = "Yealink T54W"

[[seats]]
id = "A02"
extension = "8002"
room = "一楼受理大厅"
position = "A区02"

[[seats]]
id = "A03"
extension = "8003"
room = "一楼受理大厅"
position = "A区03"

[[seats]]
id = "A04"
extension = "8004"
room = "一楼受理大厅"
position = "A区04"

[[seats]]
id = "W01"
extension = "9001"
kind = "window"
room = "政务服务中心"
position = "社保窗口"

[[agents]]
id = "li"
name = "李娜"
skills = { general = 8, consumer = 5 }

[[agents]]
id = "wang"
name = "王强"
skills = { general = 6, social = 7 }

[[agents]]
id = "zhao"
name = "赵敏"
skills = { general = 5, enterprise = 9 }

[[agents]]
id = "mayor"
name = "陈市长"
skills = { general = 5 }
leader = true
title = "市长"

[[windows]]
id = "shebao"
name = "社保窗口"
department = "人社局"
services = ["社保缴费", "养老金"]
extension = "9001"

[[departments]]
id = "zjj"
name = "住建局"
contact_name = "王工"
contact_phone = "13900000001"

[[departments]]
id = "cgj"
name = "城管局"
contact_name = "刘科长"
contact_phone = "13900000002"

[[departments]]
id = "rsj"
name = "人社局"
contact_name = "张主任"
contact_phone = "13900000003"

[[departments]]
id = "scjgj"
name = "市场监管局"
contact_name = "陈处长"
contact_phone = "13900000004"
"""
