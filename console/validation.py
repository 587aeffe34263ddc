"""Input types of the REST API: text that is bounded, trimmed and free of control characters
(a ticket is printed, exported to CSV and sent by SMS; a stray escape or NUL breaks all
three), and ids, offsets and dates within ranges the database and ``datetime`` can hold (an
integer of 2^63 overflows SQLite, one of 2^31 PostgreSQL's INTEGER; a date near year 9999
overflows when it is moved to UTC). Out of range is a 422 naming the parameter, never a 500."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, Field, StringConstraints

_MULTILINE_OK = frozenset("\n\t")

# Row ids are positive and fit the INTEGER columns that hold them: PostgreSQL's ends at
# 2^31-1 (a larger value is "integer out of range" there, not a miss), SQLite's at 2^63-1.
MAX_ID = 2**31 - 1
# A page further than this is nobody's reading: a report or an export asks otherwise.
MAX_OFFSET = 1_000_000
# Dates the hotline deals in; far beyond either end is a typo or a probe.
MIN_YEAR, MAX_YEAR = 1970, 2199


def control_character(value: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """The first control, format, surrogate or private-use character of ``value`` that is not
    ``allowed``, as ``U+XXXX``; None when there is none."""
    for ch in value:
        if ch not in allowed and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co"):
            return f"U+{ord(ch):04X}"
    return None


def _no_controls(allowed: frozenset[str]) -> AfterValidator:
    def check(value: str) -> str:
        value = value.replace("\r\n", "\n")
        bad = control_character(value, allowed)
        if bad is not None:
            raise ValueError(f"control character {bad} is not allowed")
        return value

    return AfterValidator(check)


def _year_in_range(value: date) -> date:
    # datetime is a date: one check for both
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"date out of range: the year must be {MIN_YEAR} to {MAX_YEAR}")
    return value


def in_range(value: datetime) -> datetime:
    """``value`` when its year is within ``MIN_YEAR``..``MAX_YEAR``, else ``ValueError``."""
    _year_in_range(value)
    return value


SingleLine = Annotated[str, StringConstraints(strip_whitespace=True), _no_controls(frozenset())]
MultiLine = Annotated[str, StringConstraints(strip_whitespace=True), _no_controls(_MULTILINE_OK)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
Username = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9]{3,20}$")]
# A ticket id: the local date and a counter (``tickets.numbers``), at most 20 characters.
TicketIdText = Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{1,20}$")]
# A call's id as Asterisk gives it (the Linkedid, ``1718000000.42``).
CallIdText = Annotated[str, Field(pattern=r"^[0-9A-Za-z_.:-]{1,64}$")]

Moment = Annotated[datetime, AfterValidator(in_range)]
Day = Annotated[date, AfterValidator(_year_in_range)]

# --- path and query parameters ------------------------------------------------------------

RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id, 1 to 2^31-1")]
TicketId = Annotated[
    str, Path(pattern=r"^[0-9A-Za-z_-]{1,20}$", description="a ticket id (date and counter)")
]
FileName = Annotated[str, Path(max_length=64, description="a file name")]
# A caller as the network gave it (usually digits; sometimes a word such as anonymous).
CallerPath = Annotated[str, Path(pattern=r"^[^\x00-\x1f\x7f]{1,32}$", description="a caller")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"rows to skip, 0 to {MAX_OFFSET}")]
RowIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="a row id, 1 to 2^31-1")]
# A name to filter by (an agent, a state, a unit, a user): one line of at most 64 characters.
KeyQuery = Annotated[str | None, Query(pattern=r"^[^\x00-\x1f\x7f]{1,64}$")]
PhoneQuery = Annotated[str | None, Query(pattern=r"^\+?[0-9]{3,20}$")]
TicketIdQuery = Annotated[str | None, Query(pattern=r"^[0-9A-Za-z_-]{1,20}$")]
MomentQuery = Annotated[
    Moment | None, Query(description=f"ISO 8601, years {MIN_YEAR} to {MAX_YEAR}")
]
DayQuery = Annotated[Day | None, Query(description=f"ISO 8601, years {MIN_YEAR} to {MAX_YEAR}")]
