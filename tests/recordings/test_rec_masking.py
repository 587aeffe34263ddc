from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recordings.masking import contains_long_number, mask_numbers, mask_sequence

CN = "零一二三四五六七八九"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的电话是一三八零零零零零零零一，谢谢", "我的电话是138****0001，谢谢"),
        ("电话 13800000001", "电话 138****0001"),
        ("1 3 8 0 0 0 0 0 0 0 1", "138****0001"),
        ("幺三八 零零零零 零零零一", "138****0001"),
        ("一 三 八 零零 零零 零零 零 一", "138****0001"),
        ("身份证 三三零五零二一九九零零一零一一二三叉", "身份证 330502************"),
        ("身份证 33050219900101123X 好", "身份证 330502************ 好"),
        ("身份证号330502199001011234", "身份证号330502************"),
        ("三三零五零二一九九零零一零一一二三 艾克斯", "330502************"),
        ("老身份证 330502900101123", "老身份证 330502*********"),
        ("座机 0572-2345678", "座机 *******5678"),
        ("二零二四年三月五号", "二零二四年三月五号"),
        ("我住在三号楼二单元", "我住在三号楼二单元"),
        ("一共两三个人", "一共两三个人"),
    ],
)
def test_examples(text: str, expected: str) -> None:
    assert mask_numbers(text) == expected


def _spoken(digits: str, data: st.DataObject) -> str:
    out = []
    for d in digits:
        c = d if data.draw(st.booleans()) else CN[int(d)]
        out.append(c + data.draw(st.sampled_from(["", "", " ", "-"])))
    return "".join(out).rstrip(" -")


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True), st.data())
def test_any_mobile_number_is_masked(number: str, data: st.DataObject) -> None:
    text = "我的号码是" + _spoken(number, data) + "请回电"
    out = mask_numbers(text)
    assert number[:3] + "****" + number[7:] in out
    assert not contains_long_number(out)
    assert out.startswith("我的号码是") and out.endswith("请回电")


@given(
    st.from_regex(r"[1-6][0-9]{16}", fullmatch=True), st.sampled_from(["X", "叉", "7"]), st.data()
)
def test_any_id_number_is_masked(body: str, check: str, data: st.DataObject) -> None:
    text = "身份证" + _spoken(body, data) + check + "对"
    out = mask_numbers(text)
    assert out == "身份证" + body[:6] + "*" * 12 + "对"


def test_number_split_across_segments_is_masked() -> None:
    out = mask_sequence(["我的 电话 是 一 三 八 零零", "零零 零零 零 一 好的", "三点 见"])
    joined = " ".join(out)
    assert not contains_long_number(joined)
    assert out[0].startswith("我的 电话 是") and out[1].endswith("好的") and out[2] == "三点 见"
    assert re.sub(r"[^*]", "", joined) == "*" * 11
    assert mask_sequence(["电话 13800000001"]) == ["电话 138****0001"]
