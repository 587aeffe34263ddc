"""Configuration of the ticket slice: ``[tickets]``, ``[[departments]]`` and ``[sms]``.

Every model forbids unknown keys so that a typo in the TOML file is an error, not a default.
Durations are strings: ``"10min"``, ``"1h"``, ``"30s"`` (wall clock, 7x24) or ``"3wd"``
(working days on the official calendar); see ``tickets.deadlines.parse_limit``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Anchor = Literal["receipt", "dispatch", "sign_off", "day_after_receipt"]

_LIMIT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(wd|d|h|min|s)\s*$")


def _check_limit(value: str) -> str:
    if not _LIMIT_RE.match(value):
        raise ValueError(
            f"{value!r} is not a time limit: write e.g. '10min', '1h', '2d' or '3wd' (working days)"
        )
    return value.strip()


def _check_remind(value: str | float) -> str | float:
    if isinstance(value, str):
        return _check_limit(value)
    if not 0 < value < 1:
        raise ValueError("a fraction of the time limit must lie between 0 and 1")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeadlineRule(_Model):
    """The time limits of one category (``category = "*"`` is the default rule).

    ``limit`` is the completion deadline (the department files its reply by then);
    ``response_limit`` bounds sign-off plus the first call to the citizen (Yantai: 10 min);
    ``feedback_limit`` is the deadline for the reply that 及时反馈率 measures (default: the
    original completion deadline, before any extension).
    """

    category: str = "*"
    limit: str = "5wd"
    anchor: Anchor = "dispatch"
    response_limit: str = "30min"
    feedback_limit: str | None = None
    remind_before: str | float = 0.2

    _limit = field_validator("limit", "response_limit")(_check_limit)

    @field_validator("feedback_limit")
    @classmethod
    def _feedback(cls, value: str | None) -> str | None:
        return None if value is None else _check_limit(value)

    _remind = field_validator("remind_before")(_check_remind)


class SurveyRule(_Model):
    """The callback survey (回访) after the hotline approved the reply (Yantai: 1 working day)."""

    limit: str = "1wd"
    remind_before: str | float = 0.25

    _limit = field_validator("limit")(_check_limit)

    _remind = field_validator("remind_before")(_check_remind)


class ServiceIndexWeights(_Model):
    """Huzhou's 阳光湖州服务指数 weights; they must add up to 1."""

    timely_response: float = 0.15
    on_time_completion: float = 0.15
    timely_feedback: float = 0.10
    satisfaction: float = 0.60

    @model_validator(mode="after")
    def _sum(self) -> ServiceIndexWeights:
        total = (
            self.timely_response
            + self.on_time_completion
            + self.timely_feedback
            + self.satisfaction
        )
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"service index weights add up to {total}, not 1")
        return self


class TicketSettings(_Model):
    """``[tickets]``."""

    rules: list[DeadlineRule] = Field(default_factory=list)
    default_rule: DeadlineRule = DeadlineRule()
    survey: SurveyRule = SurveyRule()
    satisfaction_counts_basic: bool = True
    service_index: ServiceIndexWeights = ServiceIndexWeights()
    repeat_caller_threshold: int = Field(default=100, ge=1)
    repeat_caller_window_days: int = Field(default=365, ge=1)
    max_rehandlings: int = Field(default=1, ge=0)
    calendar_override: Path | None = None
    timezone: str = "Asia/Shanghai"
    # Files attached to tickets (photos, letters): where they are kept, how big, which kinds.
    attachments_dir: Path = Path("./var/attachments")
    attachment_max_mb: float = Field(default=10.0, gt=0, le=200)
    attachment_types: list[str] = Field(
        default_factory=lambda: [
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/webp",
            "application/pdf",
            "text/plain",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ]
    )

    # 诉求类型: what a ticket's category may be (the API refuses others; a category may also be
    # a deadline rule's, or the ticket's own hotline topic). The channel is no setting: it is
    # one of tickets.channels.Channel, set by the way the request came in.
    categories: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        default_factory=lambda: ["咨询", "求助", "投诉", "举报", "建议", "表扬"]
    )

    # Words that make a category likely when the citizen says them (tickets.suggest): the
    # category's own name counts too. Keys are categories the ticket may take.
    category_keywords: dict[str, list[Annotated[str, Field(min_length=1, max_length=30)]]] = Field(
        default_factory=lambda: {
            "咨询": ["请问", "怎么办理", "如何", "政策", "需要什么材料"],
            "求助": ["帮忙", "坏了", "停水", "停电", "漏水", "故障", "堵了"],
            "投诉": ["噪音", "扰民", "乱收费", "不作为", "态度差", "拖欠"],
            "举报": ["违法", "违规", "偷排", "无证", "违建"],
            "建议": ["建议", "能不能", "最好"],
            "表扬": ["感谢", "表扬", "锦旗"],
        }
    )

    @model_validator(mode="before")
    @classmethod
    def _no_channels(cls, data: object) -> object:
        if isinstance(data, dict) and "channels" in data:
            raise ValueError(
                "channels is no longer a setting: a ticket's channel is set by the way the"
                " request came in (see [intake]); remove the line"
            )
        return data

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _unique_categories(self) -> TicketSettings:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.category in seen:
                raise ValueError(f"two deadline rules for category {rule.category!r}")
            seen.add(rule.category)
        allowed = set(self.allowed_categories())
        # The built-in words are for the built-in categories; a site's own must name its own.
        for category in (
            self.category_keywords if "category_keywords" in self.model_fields_set else ()
        ):
            if category not in allowed:
                raise ValueError(
                    f"category_keywords names {category!r}, which is not one of the categories"
                )
        return self

    def allowed_categories(self, topic: str = "") -> list[str]:
        """What a ticket of hotline ``topic`` may be classified as: ``categories``, the deadline
        rules' categories, the topic itself (the category a call's ticket opens with), or
        nothing yet ("")."""
        rules = (r.category for r in self.rules if r.category != "*")
        named = [*self.categories, *rules, topic, ""]
        return list(dict.fromkeys(named))

    def rule_for(self, category: str) -> DeadlineRule:
        for rule in self.rules:
            if rule.category == category:
                return rule
        return self.default_rule


class DepartmentSettings(_Model):
    """One ``[[departments]]`` entry: a member unit (成员单位) that handles dispatched tickets."""

    id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1, max_length=100)
    contact_name: str = ""
    contact_phone: str = ""
    co_handling: bool = True  # may be named as a co-handler (协办) of another unit's ticket
    active: bool = True

    @field_validator("contact_phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        from cti.errors import Invalid
        from tickets.phones import normalise_phone

        try:
            return normalise_phone(value, field="contact_phone")
        except Invalid as exc:
            raise ValueError(exc.message) from exc


class SmsTemplates(_Model):
    """Message texts; ``{ticket_id}``, ``{reply}``, ``{department}``, ``{due}`` are filled in."""

    citizen_opened: str = "【12345】您的诉求已受理,工单号{ticket_id},请留意办理结果。"
    citizen_reply: str = "【12345】工单{ticket_id}办理结果:{reply}"
    citizen_extension: str = "【12345】工单{ticket_id}经批准延期,预计{due}前办结。"
    department_dispatch: str = "【12345】新工单{ticket_id}已派至{department},请于{due}前办结。"
    department_reminder: str = "【12345】工单{ticket_id}将于{due}到期,请尽快办理。"


class SmsSettings(_Model):
    """``[sms]``: twilio (or a twilio-compatible gateway at ``api_base_url``)."""

    enabled: bool = False
    account_sid: str = ""
    auth_token: SecretStr = SecretStr("")
    from_number: str = ""
    messaging_service_sid: str = ""
    api_base_url: str = "https://api.twilio.com"
    status_callback_url: str = ""
    max_attempts: int = Field(default=5, ge=1)
    retry_backoff_s: float = Field(default=30.0, gt=0)
    templates: SmsTemplates = SmsTemplates()

    @model_validator(mode="after")
    def _sender(self) -> SmsSettings:
        if self.enabled:
            if not self.account_sid or not self.auth_token.get_secret_value():
                raise ValueError("sms.enabled needs account_sid and auth_token")
            if not (self.from_number or self.messaging_service_sid):
                raise ValueError("sms.enabled needs from_number or messaging_service_sid")
        return self


class IntakeTemplates(_Model):
    """What the citizen reads by SMS from the intake paths; ``{ticket_id}``, ``{code}`` and
    ``{minutes}`` are filled in."""

    opened: str = "【12345】您的诉求已受理,工单号{ticket_id},请留意办理结果。"
    attached: str = (
        "【12345】您反映的事项已有办理中的工单{ticket_id},本次内容已补充到该工单,无需重复反映。"
    )
    code: str = (
        "【12345】您在网上提交诉求的验证码为{code},{minutes}分钟内有效。如非本人操作请忽略。"
    )
    empty_sms: str = "【12345】短信内容为空,请写明诉求事项、发生地点和时间后再发送。"
    unreadable_sms: str = "【12345】短信内容过长或含无法识别的字符,请精简后重新发送或拨打12345。"
    unknown_sender: str = "【12345】无法识别您的手机号码,请拨打12345反映诉求。"


class IntakeClient(_Model):
    """One ``[[intake.clients]]`` entry: a system that opens tickets through ``POST
    /api/tickets`` with ``Authorization: Bearer <token>`` (a WeChat mini-program back-end, the
    110 linkage), and the channels it may name."""

    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    token: SecretStr
    channels: list[Literal["wechat", "api", "police110"]] = Field(min_length=1)

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 24:
            raise ValueError(
                "an intake token needs at least 24 characters:"
                " python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value


class IntakeSettings(_Model):
    """``[intake]``: requests by SMS, the public web form and the intake API.

    ``sms_inbound_url`` is the public URL twilio posts citizens' messages to (``POST
    /api/sms/inbound`` behind the site's proxy): twilio signs that URL, so it is configured
    rather than taken from the request. A request from a phone number with an open ticket of
    the same category opened within ``dedup_days`` joins that ticket."""

    sms_inbound_url: str = ""
    dedup_days: int = Field(default=7, ge=0, le=90)
    max_text: int = Field(default=2000, ge=70, le=20_000)
    code_lifetime_s: int = Field(default=600, ge=60, le=3600)
    code_attempts: int = Field(default=5, ge=1, le=20)
    web_per_address_per_hour: int = Field(default=10, ge=1, le=10_000)
    web_per_phone_per_hour: int = Field(default=3, ge=1, le=100)
    clients: list[IntakeClient] = Field(default_factory=list)
    templates: IntakeTemplates = IntakeTemplates()

    @model_validator(mode="after")
    def _unique_clients(self) -> IntakeSettings:
        names = [c.name for c in self.clients]
        if len(set(names)) != len(names):
            raise ValueError("two intake clients with one name")
        tokens = [c.token.get_secret_value() for c in self.clients]
        if len(set(tokens)) != len(tokens):
            raise ValueError("two intake clients with one token")
        return self
