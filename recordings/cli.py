"""``hotline transcribe`` and ``hotline transcribe-worker``.

``add_commands(subparsers)`` registers both on the main ``hotline`` parser; each sets
``func`` to a callable taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from cti.config import DEFAULT_DATABASE_URL
from cti.errors import ConfigError, ModelError
from recordings.settings import (
    RecordingSettings,
    TranscriptionSettings,
    load_config,
    load_phrases,
    resolve_model_path,
)

if TYPE_CHECKING:
    # Imported where used: numpy and vosk load only for the commands that decode.
    from recordings.transcribe import Transcriber, Transcript

log = logging.getLogger(__name__)


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "transcribe",
        help="transcribe WAV files with vosk",
        description="Transcribe recordings. A file with MixMonitor legs beside it "
        "(x-in.wav, x-out.wav) is decoded per leg as citizen and agent; a stereo file as "
        "(citizen, agent); a mono file as 'mixed'.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", help="vosk model directory (default: [transcription] model)")
    p.add_argument("--phrases", help="phrase list, one phrase per line")
    p.add_argument("--config", help="TOML configuration with a [transcription] section")
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.add_argument("--workers", type=int, default=1, help="processes (each loads the model)")
    p.add_argument("--sample-rate", type=int, default=None)
    p.add_argument("--no-legs", action="store_true", help="ignore -in/-out files beside FILE")
    p.add_argument("--mask", action="store_true", help="mask phone and ID numbers")
    p.add_argument("--words", action="store_true", help="include word timings (JSON)")
    p.add_argument("--beam", type=float, default=None, help="decoder beam (model's if unset)")
    p.add_argument("--max-active", type=int, default=None, help="decoder max active states")
    p.set_defaults(func=cmd_transcribe)

    w = subparsers.add_parser(
        "transcribe-worker",
        help="run transcription workers on the database job queue",
    )
    w.add_argument(
        "--config", help="TOML configuration ([database], [recordings], [transcription])"
    )
    w.add_argument("--db", help="database URL (overrides [database] url)")
    w.add_argument("--workers", type=int, default=None, help="processes; 0 = one per core")
    w.add_argument("--once", action="store_true", help="drain the queue, then exit")
    w.add_argument("--model", help="vosk model directory (overrides the configuration)")
    w.add_argument("--lease-s", type=float, default=None)
    w.add_argument("--max-attempts", type=int, default=None)
    w.add_argument("--init-db", action="store_true", help="create the recordings tables first")
    w.add_argument("--engine", default=None, help=argparse.SUPPRESS)  # module:factory, tests
    w.set_defaults(func=cmd_worker)


# --- transcribe ------------------------------------------------------------------------


def _require_model(trans: TranscriptionSettings, option: str) -> None:
    """A model must be named: without one, recordings/settings.py falls back to the Korean
    test model, which turns Chinese speech into Korean nonsense."""
    if not trans.model:
        raise ModelError(
            f"no vosk model: pass {option} or set [transcription] model to the directory of a"
            " Chinese model (vosk-model-cn-0.22, see recordings/README.md)."
        )


def _sentence(exc: BaseException) -> str:
    """An error on one line: a ``ConfigError``'s problems joined, others as they are."""
    if isinstance(exc, ConfigError):
        return " ".join(exc.problems)
    if isinstance(exc, OSError) and exc.strerror:
        name = exc.filename if exc.filename is not None else ""
        return f"{name}: {exc.strerror}" if name else exc.strerror
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


_transcriber: Transcriber | None = None


def _init(
    model: str, rate: int, phrases: list[str] | None, decoder: dict[str, float | int]
) -> None:
    global _transcriber
    from recordings.transcribe import Transcriber

    _transcriber = Transcriber(model, rate, phrases, decoder=decoder)


def _one(path: str, use_legs: bool) -> Transcript:
    from recordings.transcribe import legs_for

    assert _transcriber is not None
    legs = legs_for(path) if use_legs else None
    return _transcriber.transcribe_file(path, legs=legs)


def _file_list(files: list[str], use_legs: bool) -> list[str]:
    """Leave out leg files whose mixed file is in the list too (a shell glob gives all)."""
    if not use_legs:
        return files
    given = set(files)
    out = []
    for f in files:
        for suffix in ("-in.wav", "-out.wav"):
            if f.endswith(suffix) and f[: -len(suffix)] + ".wav" in given:
                break
        else:
            out.append(f)
    return out


def cmd_transcribe(args: argparse.Namespace) -> int:
    from recordings.transcribe import model_problem

    try:
        trans = load_config(args.config)[2] if args.config else TranscriptionSettings()
        update = {"model": args.model, "beam": args.beam, "max_active": args.max_active}
        update = {k: v for k, v in update.items() if v is not None}
        trans = TranscriptionSettings.model_validate({**trans.model_dump(), **update})
        _require_model(trans, "--model DIR")
        model = resolve_model_path(trans)
        phrases = load_phrases(args.phrases or trans.phrases)
    except (ConfigError, OSError, ValidationError) as exc:
        print(f"hotline transcribe: {_sentence(exc)}", file=sys.stderr)
        return 2
    problem = model_problem(model)
    if problem:
        raise ModelError(problem)
    decoder = trans.decoder()
    rate = args.sample_rate or trans.sample_rate
    use_legs = not args.no_legs
    files = _file_list(list(args.files), use_legs)
    from tqdm import tqdm

    results: dict[str, Transcript | Exception] = {}
    bar = tqdm(total=len(files), unit="file", file=sys.stderr, desc="transcribe", disable=None)
    if args.workers <= 1:
        _init(model, rate, phrases, decoder)
        for f in files:
            try:
                results[f] = _one(f, use_legs)
            except Exception as exc:
                results[f] = exc
            bar.update(1)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            args.workers,
            mp_context=ctx,
            initializer=_init,
            initargs=(model, rate, phrases, decoder),
        ) as pool:
            futures = {pool.submit(_one, f, use_legs): f for f in files}
            for fut in as_completed(futures):
                try:
                    results[futures[fut]] = fut.result()
                except Exception as exc:
                    results[futures[fut]] = exc
                bar.update(1)
    bar.close()
    failed = 0
    for f in files:
        r = results[f]
        if isinstance(r, Exception):
            failed += 1
            print(f"hotline transcribe: {f}: {r}", file=sys.stderr)
            if args.json:
                print(json.dumps({"file": f, "error": str(r)}, ensure_ascii=False))
            continue
        _print(f, r, args)
    return 1 if failed else 0


def _print(path: str, t: Transcript, args: argparse.Namespace) -> None:
    from recordings.masking import mask_numbers

    segs = [s.to_dict(words=args.words) for s in t.segments]
    text = t.text
    if args.mask:
        text = mask_numbers(text)
        for s in segs:
            s["text"] = mask_numbers(s["text"])
            s.pop("words", None)
    if args.json:
        out = {
            "file": path,
            "text": text,
            "segments": segs,
            "duration_s": round(t.duration_s, 3),
            "rtf": round(t.rtf, 4),
        }
        print(json.dumps(out, ensure_ascii=False), flush=True)
        return
    print(f"== {path} ({t.duration_s:.1f} s, rtf {t.rtf:.3f})")
    for s in segs:
        print(f"[{s['start']:7.2f}-{s['end']:7.2f}] {s['speaker']:<7} {s['text']}")


# --- transcribe-worker -----------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    from recordings.transcribe import model_problem
    from recordings.worker import DEFAULT_ENGINE, run_workers

    try:
        url, recs, trans = (
            load_config(args.config)
            if args.config
            else (None, RecordingSettings(), TranscriptionSettings())
        )
    except (ConfigError, OSError) as exc:
        print(f"hotline transcribe-worker: {_sentence(exc)}", file=sys.stderr)
        return 2
    # The database every other command uses when the configuration names none.
    url = args.db or url or DEFAULT_DATABASE_URL
    update: dict[str, Any] = {}
    if args.model:
        update["model"] = args.model
    if args.lease_s is not None:
        update["lease_s"] = args.lease_s
    if args.max_attempts is not None:
        update["max_attempts"] = args.max_attempts
    if args.workers is not None:
        update["workers"] = args.workers
    try:
        trans = TranscriptionSettings.model_validate({**trans.model_dump(), **update})
    except ValidationError as exc:
        print(f"hotline transcribe-worker: {_sentence(exc)}", file=sys.stderr)
        return 2
    if (args.engine or DEFAULT_ENGINE) == DEFAULT_ENGINE:
        # Checked here, once: each worker process would fail on it with its own traceback.
        _require_model(trans, "--model DIR")
        problem = model_problem(trans.model or "")
        if problem:
            raise ModelError(problem)
    from cti.db import open_database

    key = "--db" if args.db else "database.url"
    engine = open_database(
        url,
        key=key,
        create=args.init_db,
        needs="" if args.init_db else "transcription_jobs",
        missing="run hotline db upgrade (or serve) first, or pass --init-db",
    )
    try:
        if args.init_db:
            from recordings.models import create_tables

            create_tables(engine)
    finally:
        engine.dispose()
    return run_workers(
        trans.workers, url, recs, trans, once=args.once, engine=args.engine or DEFAULT_ENGINE
    )
