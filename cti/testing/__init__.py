"""Asterisk stand-ins for tests: transcript replay and a live PBX model over real TCP."""

from cti.testing.clients import FastAgiStub, RawAmiClient
from cti.testing.compare import (
    EventShape,
    compare_event_shapes,
    compare_shape_sets,
    event_shapes,
)
from cti.testing.frames import AmiFrameParser, format_message, parse_message
from cti.testing.load import LoadStats, generate_calls
from cti.testing.model import Phone, SimConfig
from cti.testing.pbx import AsteriskSimulator, CallHandle
from cti.testing.replay import (
    AgiReplayClient,
    AgiReplayResult,
    AmiReplayServer,
    ReplayError,
)
from cti.testing.transcript import SCENARIOS, Transcript, fixture_path, load_transcript

__all__ = [
    "SCENARIOS",
    "AsteriskSimulator",
    "CallHandle",
    "FastAgiStub",
    "LoadStats",
    "Phone",
    "RawAmiClient",
    "SimConfig",
    "generate_calls",
    "AgiReplayClient",
    "AgiReplayResult",
    "AmiFrameParser",
    "AmiReplayServer",
    "EventShape",
    "ReplayError",
    "Transcript",
    "compare_event_shapes",
    "compare_shape_sets",
    "event_shapes",
    "fixture_path",
    "format_message",
    "load_transcript",
    "parse_message",
]
