"""Compare AMI event streams by shape: event names in order and the field names of each.

Values (channel names, uniqueids, times) always differ between two runs; what a CTI depends on
is which events come, in which order, with which fields. ``compare_event_shapes`` checks that.
"""

from __future__ import annotations

import bisect
import difflib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cti.testing.frames import Pairs, header
from cti.testing.transcript import Transcript

# Traffic that is ignored when comparing: dialplan chatter, AGI bookkeeping, RTCP reports
# (their timing depends on media) and security events (depend on SIP auth retries).
NOISE_EVENTS = frozenset(
    {
        "VarSet",
        "Newexten",
        "AGIExecStart",
        "AGIExecEnd",
        "RTCPSent",
        "RTCPReceived",
    }
)


@dataclass(frozen=True, slots=True)
class EventShape:
    name: str
    fields: frozenset[str]

    def __str__(self) -> str:
        return f"{self.name}{{{','.join(sorted(self.fields))}}}"


def is_route_helper(pairs: Pairs) -> bool:
    """An event of the routing question's helper Local channel ([cti-route]) or of the
    caller's Dial of it (music included). The transcripts of ../shared/asterisk/transcripts
    were recorded with a dialplan that ran the FastAGI on the caller's channel itself; the
    rest of each call must still look the same."""
    for key in ("Channel", "DestChannel", "LocalOneChannel", "Device"):
        value = header(pairs, key) or ""
        if value.startswith("Local/") and "@cti-route" in value:
            return True
    name = header(pairs, "Event") or ""
    return name.startswith("MusicOnHold") and header(pairs, "Context") == "from-citizen"


def without_route_helper(messages: Iterable[Pairs]) -> list[Pairs]:
    return [m for m in messages if not is_route_helper(m)]


def is_noise(pairs: Pairs) -> bool:
    name = header(pairs, "Event")
    if name in NOISE_EVENTS:
        return True
    privilege = header(pairs, "Privilege") or ""
    return "security" in privilege.split(",")


def event_shapes(
    events: Transcript | Iterable[Pairs | EventShape], *, keep_noise: bool = False
) -> list[EventShape]:
    """Shapes of the non-noise events (a transcript gives Asterisk's events)."""
    source: Iterable[Pairs | EventShape] = (
        events.events() if isinstance(events, Transcript) else events
    )
    shapes: list[EventShape] = []
    for item in source:
        if isinstance(item, EventShape):
            if keep_noise or item.name not in NOISE_EVENTS:
                shapes.append(item)
            continue
        name = header(item, "Event")
        if name is None or (not keep_noise and is_noise(item)):
            continue
        shapes.append(EventShape(name, frozenset(k for k, _ in item)))
    return shapes


def compare_event_shapes(
    recorded: Transcript | Iterable[Pairs | EventShape],
    produced: Transcript | Iterable[Pairs | EventShape],
    *,
    window: int = 0,
    max_report: int = 20,
) -> list[str]:
    """Differences between two event streams; an empty list means they match.

    ``window`` tolerates an event arriving up to that many places early or late: the real
    Asterisk emits device-state, contact and queue-member events from different threads, so
    their order varies between runs (the recorded transcripts disagree with each other on it).
    """
    want = event_shapes(recorded)
    got = event_shapes(produced)
    # Align the two streams (longest common subsequence); then an event left over on both
    # sides is only "moved" if it sits at most ``window`` places from where it was recorded,
    # once the other leftovers before it are discounted.
    matcher = difflib.SequenceMatcher(None, want, got, autojunk=False)
    matched_want: set[int] = set()
    matched_got: set[int] = set()
    for a, b, size in matcher.get_matching_blocks():
        matched_want.update(range(a, a + size))
        matched_got.update(range(b, b + size))
    missing = [i for i in range(len(want)) if i not in matched_want]
    extra = [j for j in range(len(got)) if j not in matched_got]
    unpaired_missing, unpaired_extra = list(missing), list(extra)
    for j in extra:
        candidates = [i for i in unpaired_missing if want[i] == got[j]]
        if not candidates:
            continue

        def shift(i: int, j: int = j) -> int:
            return (j - bisect.bisect_left(extra, j)) - (i - bisect.bisect_left(missing, i))

        best = min(candidates, key=lambda i: abs(shift(i)))
        if abs(shift(best)) <= window:
            unpaired_missing.remove(best)
            unpaired_extra.remove(j)
    diffs = [f"recorded #{i}: missing {want[i]}" for i in unpaired_missing]
    diffs += [f"produced #{j}: unexpected {got[j]}" for j in unpaired_extra]
    if len(diffs) > max_report:
        diffs = diffs[:max_report] + [f"... and {len(diffs) - max_report} more"]
    return diffs


def shape_set(events: Transcript | Iterable[Pairs | EventShape]) -> set[EventShape]:
    return set(event_shapes(events))


def name_counts(events: Transcript | Iterable[Pairs | EventShape]) -> Counter[str]:
    return Counter(s.name for s in event_shapes(events))


def compare_shape_sets(
    recorded: Transcript | Iterable[Pairs | EventShape],
    produced: Transcript | Iterable[Pairs | EventShape],
    *,
    allow_missing: Sequence[str] = (),
) -> list[str]:
    """Order-free check for loaded runs: every produced shape is one Asterisk produced, and
    every recorded event name shows up (except ``allow_missing``)."""
    want = shape_set(recorded)
    got = shape_set(produced)
    diffs = [f"unexpected shape {s}" for s in sorted(got - want, key=str)]
    want_names = {s.name for s in want}
    got_names = {s.name for s in got}
    diffs += [
        f"missing event {n}" for n in sorted(want_names - got_names) if n not in allow_missing
    ]
    return diffs
