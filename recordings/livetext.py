"""The live view of a call's transcript: what a live follower tells the desktops.

Each leg (citizen, agent) is a sequence of utterances numbered from 0. While the recogniser
is inside utterance ``seq`` it gives partial results, each replacing the one before; when it
reaches an endpoint the utterance becomes final and the next ``seq`` starts. A view (the
agent desktop, the wallboard) keeps one line per (speaker, seq) and replaces it with each
update.

Texts are masked as the stored transcript is (``recordings.masking.mask_sequence`` over the
speaker's utterances), partials too: a number read out across a pause is caught when its
second half arrives, and the utterance that held its first half is sent again, masked.

How the updates reach the CTI: the follower writes them to ``live_segments`` and the
console of the CTI reads that table (``console.transcripts``). A table works whatever the
database (SQLite, PostgreSQL), wherever the worker runs, and whichever CTI leads: a standby
that takes over reads the same rows, and no worker needs to know where the CTI is nor hold a
credential for it (an internal HTTP push would need both, and would lose what was pushed to
a CTI that has just died). The price is a poll, which the console makes only while a call
it shows is recorded, on the primary key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from recordings import models as m
from recordings.masking import mask_sequence

# Utterances of a leg masked together: a number is read out in at most a few pieces.
KEEP = 3
# Live rows outlive their call by this much: the console reads them within a second or two,
# a desktop reloaded after the call reads the stored transcript.
ROWS_KEPT = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class LiveUpdate:
    speaker: str
    seq: int
    final: bool
    text: str
    start: float
    end: float


@dataclass(slots=True)
class LiveText:
    """One leg's utterances as last sent, to send only what changed."""

    speaker: str
    seq: int = 0
    partial: str = ""  # the masked partial last sent for ``seq``
    recent: list[tuple[int, str, float, float]] = field(default_factory=list)
    sent: dict[int, str] = field(default_factory=dict)

    def update(
        self, closed: list[tuple[str, float, float]], partial: str, now_s: float
    ) -> list[LiveUpdate]:
        """The updates for what the recogniser closed and where it is now (``now_s``: the
        seconds of this leg decoded so far)."""
        out: list[LiveUpdate] = []
        for text, start, end in closed:
            if not text:
                if self.partial:  # the partial shown turned out to be noise: clear it
                    out.append(LiveUpdate(self.speaker, self.seq, True, "", start, end))
                    self.seq += 1
                self.partial = ""
                continue
            self.recent.append((self.seq, text, start, end))
            self.seq += 1
            self.partial = ""
        self.recent = self.recent[-KEEP:]
        texts = [text for _, text, _, _ in self.recent]
        masked = mask_sequence([*texts, partial] if partial else texts)
        for (seq, _, start, end), text in zip(self.recent, masked, strict=False):
            if self.sent.get(seq) != text:
                out.append(LiveUpdate(self.speaker, seq, True, text, start, end))
                self.sent[seq] = text
        kept = {seq for seq, _, _, _ in self.recent}
        self.sent = {seq: text for seq, text in self.sent.items() if seq in kept}
        if partial and masked[-1] != self.partial:
            start = self.recent[-1][3] if self.recent else 0.0
            out.append(LiveUpdate(self.speaker, self.seq, False, masked[-1], start, now_s))
            self.partial = masked[-1]
        return out


def write_updates(
    session: Session,
    recording_id: int,
    call_id: str,
    updates: list[LiveUpdate],
    at: datetime,
) -> None:
    for u in updates:
        session.add(
            m.LiveSegment(
                recording_id=recording_id,
                call_id=call_id,
                speaker=u.speaker,
                seq=u.seq,
                final=u.final,
                text=u.text,
                start=round(u.start, 3),
                end=round(u.end, 3),
                at=at,
            )
        )


def prune(session: Session, now: datetime) -> None:
    """Delete the rows of calls long over (every follower does it as a call ends)."""
    session.execute(delete(m.LiveSegment).where(m.LiveSegment.at < now - ROWS_KEPT))
