from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from cti.errors import ConfigError
from recordings.layout import leg_paths, local_path, recording_path
from recordings.settings import (
    RecordingSettings,
    TranscriptionSettings,
    load_config,
    load_phrases,
    resolve_model_path,
)


def test_recording_path_layout_by_date_and_ticket() -> None:
    at = datetime(2026, 3, 2, 9, 5)
    p = recording_path("/var/spool/asterisk/monitor/hotline", at, "HZ20260302-0001", "1772.42")
    assert p == "/var/spool/asterisk/monitor/hotline/2026/03/02/HZ20260302-0001/1772.42.wav"


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "a b", "x" * 200])
def test_recording_path_refuses_unsafe_components(bad: str) -> None:
    with pytest.raises(ValueError):
        recording_path("/r", datetime(2026, 1, 1), bad, "1.2")
    with pytest.raises(ValueError):
        recording_path("/r", datetime(2026, 1, 1), "T1", bad)


def test_leg_paths_match_the_dialplan() -> None:
    # MixMonitor(${HOTLINE_REC},br(${HOTLINE_REC:0:-4}-in.wav)t(${HOTLINE_REC:0:-4}-out.wav))
    assert leg_paths("/r/2026/03/02/T1/1.2.wav") == (
        "/r/2026/03/02/T1/1.2-in.wav",
        "/r/2026/03/02/T1/1.2-out.wav",
    )
    with pytest.raises(ValueError):
        leg_paths("/r/x.gsm")


def test_local_path_maps_the_asterisk_directory() -> None:
    s = RecordingSettings(dir="/srv/rec", asterisk_dir="/var/spool/asterisk/monitor/hotline")
    assert local_path(s, "/var/spool/asterisk/monitor/hotline/2026/03/02/T/1.wav") == (
        "/srv/rec/2026/03/02/T/1.wav"
    )
    assert local_path(s, "/elsewhere/1.wav") == "/elsewhere/1.wav"
    with pytest.raises(ValueError):
        local_path(s, "/var/spool/asterisk/monitor/hotline/../../etc/passwd")


def test_settings_defaults_and_validation() -> None:
    s = RecordingSettings()
    assert s.asterisk_dir == s.dir == "./var/recordings"
    assert (s.retention_days, s.retention_action, s.legs) == (180, "delete", True)
    with pytest.raises(ValidationError):
        RecordingSettings(retention_action="move")  # needs archive_dir
    with pytest.raises(ValidationError):
        RecordingSettings.model_validate({"dri": "/x"})  # extra keys are refused
    t = TranscriptionSettings()
    assert (t.enabled, t.model, t.workers, t.mask_numbers, t.max_attempts) == (
        True,
        None,
        0,
        True,
        3,
    )
    assert (t.lease_s, t.poll_s, t.sample_rate) == (300, 1.0, 8000)
    assert t.worker_count() >= 1
    with pytest.raises(ValidationError):
        TranscriptionSettings(max_attempts=0)


def test_model_fallback_warns(caplog: pytest.LogCaptureFixture, ko_model: str) -> None:
    with caplog.at_level(logging.WARNING, "recordings.settings"):
        assert resolve_model_path(TranscriptionSettings()) == ko_model
    assert "test model" in caplog.text
    with pytest.raises(ConfigError):
        resolve_model_path(TranscriptionSettings(model="/no/such/model"))


def test_load_config_reads_the_sections(tmp_path: Path) -> None:
    cfg = tmp_path / "hotline.toml"
    cfg.write_text(
        '[database]\nurl = "sqlite:///x.db"\n'
        '[recordings]\ndir = "/srv/rec"\nretention_days = 90\n'
        '[transcription]\nworkers = 2\nphrases = "p.txt"\n',
        encoding="utf-8",
    )
    url, recs, trans = load_config(str(cfg))
    assert url == "sqlite:///x.db"
    assert recs.retention_days == 90 and recs.asterisk_dir == "/srv/rec"
    assert trans.workers == 2
    cfg.write_text("[transcription]\nworkres = 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="transcription.workres"):
        load_config(str(cfg))


def test_phrase_file(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("# 地名\n湖州市  吴兴区\n\n爱山街道 # 街道\n", encoding="utf-8")
    assert load_phrases(str(f)) == ["湖州市 吴兴区", "爱山街道"]
    assert load_phrases(None) is None


def test_decoder_options_make_a_view_of_the_model(tmp_path: Path) -> None:
    from recordings.settings import TranscriptionSettings
    from recordings.transcribe import tuned_model_dir

    model = tmp_path / "vosk-model-small-cn-0.22"
    (model / "conf").mkdir(parents=True)
    (model / "am").mkdir()
    (model / "am" / "final.mdl").write_bytes(b"x")
    (model / "conf" / "mfcc.conf").write_text("--sample-frequency=8000\n")
    (model / "conf" / "model.conf").write_text("--min-active=200\n--max-active=3000\n--beam=10.0\n")
    assert tuned_model_dir(str(model), {}) == str(model)  # nothing to change: the model itself
    decoder = TranscriptionSettings(beam=7.0, max_active=1000).decoder()
    assert decoder == {"beam": 7.0, "max-active": 1000}
    view = Path(tuned_model_dir(str(model), decoder))
    assert view != model and view.name.startswith(model.name)
    conf = (view / "conf" / "model.conf").read_text().split()
    assert conf == ["--min-active=200", "--beam=7.0", "--max-active=1000"]
    assert (view / "am" / "final.mdl").read_bytes() == b"x"  # a link to the model's part
    assert (view / "conf" / "mfcc.conf").resolve() == (model / "conf" / "mfcc.conf")
    assert (model / "conf" / "model.conf").read_text().count("beam=10.0") == 1  # untouched
    assert tuned_model_dir(str(model), decoder) == str(view)  # made once


def test_decoder_limits_default_and_zero_keeps_the_models_value() -> None:
    from recordings.settings import DEFAULT_BEAM, DEFAULT_MAX_ACTIVE

    assert TranscriptionSettings().decoder() == {
        "beam": DEFAULT_BEAM,
        "max-active": DEFAULT_MAX_ACTIVE,
    }
    assert TranscriptionSettings(beam=0, max_active=0).decoder() == {}
    assert TranscriptionSettings(max_active=0, lattice_beam=1.0).decoder() == {
        "beam": DEFAULT_BEAM,
        "lattice-beam": 1.0,
    }
    with pytest.raises(ValidationError):
        TranscriptionSettings(beam=-1.0)
