"""The word accuracy measure that bench/bench_decoder_limits.py chooses the decoder limits by."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from .conftest import ROOT


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = ROOT / "bench" / "bench_decoder_limits.py"
    spec = importlib.util.spec_from_file_location("bench_decoder_limits", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REF = "우리 동네 가로등이 며칠째 꺼져 있어요"


@pytest.mark.parametrize(
    ("hypothesis", "wrong"),
    [
        ("우리 동네 가로등이 며칠째 꺼져 있어요", 0),
        ("우리 동네 가로등 이 며칠 째 꺼져 있어 요", 0),  # the model's particles, spaces apart
        ("우리, 동네 [unk] 가로등이 며칠째 꺼져 있어요.", 0),  # punctuation and [unk] dropped
        ("우리 동 가로등 이 며칠째 꺼져 있어요", 1),  # a syllable lost
        ("우리 동네 가로등 이 며칠째 꺼져 있어요 네", 1),  # a syllable added to the last word
        ("우리 동네 가로수 며칠째 꺼져 있어요", 1),
        ("동네 며칠째 있어요", 3),  # words dropped
        ("", 6),
    ],
)
def test_word_errors_normalise_spaces(bench: ModuleType, hypothesis: str, wrong: int) -> None:
    assert bench.word_errors(REF, hypothesis) == (wrong, 6)


def test_accuracy_over_files(bench: ModuleType) -> None:
    refs = [REF, "감사합니다 좋은 하루 보내세요"]
    hyps = ["우리 동네 가로등 이 며칠 째 꺼져 있어요", "감사 합니다 좋은 하루"]
    assert bench.accuracy(refs, hyps) == pytest.approx(1 - 1 / 10)
