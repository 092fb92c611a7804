"""CRC64, CRC16/key_slot, LZF and double formatting against Valkey's reference values."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence.crc import crc16, crc64, key_slot
from persistence.format import d2string, fpconv_dtoa
from persistence.rdb import lzf


def test_crc64_check_value() -> None:
    # src/unit/test_crc64.c
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA
    assert crc64(b"56789", crc64(b"1234")) == 0xE9C6D914C4B8D9CA


def test_crc16_and_slots() -> None:
    # src/crc16.c check value; commands/cluster-keyslot.md examples
    assert crc16(b"123456789") == 0x31C3
    assert key_slot(b"somekey") == 11058
    assert key_slot(b"foo{hash_tag}") == key_slot(b"bar{hash_tag}") == 2515
    assert key_slot(b"foo{}{bar}") == crc16(b"foo{}{bar}") & 0x3FFF  # empty tag: whole key
    assert key_slot(b"foo{{bar}}zap") == crc16(b"{bar") & 0x3FFF
    assert key_slot(b"{user1000}.following") == key_slot(b"{user1000}.followers")


@given(st.binary(max_size=3000))
def test_lzf_round_trip(data: bytes) -> None:
    packed = lzf.compress(data)
    if packed is not None:
        assert len(packed) < len(data)
        assert lzf.decompress(packed, len(data)) == data


def test_lzf_compresses_repetition_and_rejects_bad_input() -> None:
    data = b"abcdefgh" * 1000
    packed = lzf.compress(data)
    assert packed is not None and len(packed) < 200
    assert lzf.decompress(packed, len(data)) == data
    with pytest.raises(lzf.LzfError):
        lzf.decompress(packed, len(data) - 1)
    with pytest.raises(lzf.LzfError):
        lzf.decompress(b"\xe0\xff\xff", 100)  # reference before the start
    with pytest.raises(lzf.LzfError):
        lzf.decompress(b"\x05ab", 6)  # literal run past the end


@given(st.binary(max_size=64))
def test_lzf_decompress_never_raises_anything_else(data: bytes) -> None:
    with contextlib.suppress(lzf.LzfError):
        lzf.decompress(data, 50)


# Observed on valkey-server 9.1.2 over raw RESP: ZRANGE WITHSCORES (d2string) and the AOF rewrite
# of the same zset (fpconv_dtoa). Note 123456.7890123: Grisu2 is not always the shortest.
CASES = [
    (-2.5, "-2.5", "-2.5"),
    (5e-324, "5e-324", "5e-324"),
    (1.5e-07, "1.5e-7", "1.5e-7"),
    (1e-05, "0.00001", "0.00001"),
    (0.0001, "0.0001", "0.0001"),
    (0.1 + 0.2, "0.30000000000000004", "0.30000000000000004"),
    (1 / 3, "0.3333333333333333", "0.3333333333333333"),
    (3.0, "3", "3"),
    (1234567.0, "1234567", "1234567"),
    (1e15, "1000000000000000", "1e+15"),
    (1e16, "10000000000000000", "1e+16"),
    (1e17, "100000000000000000", "1e+17"),
    (1.2345678901234568e17, "123456789012345680", "123456789012345680"),
    (1.2345678901234567e19, "12345678901234567000", "12345678901234567000"),
    (1e22, "1e+22", "1e+22"),
    (1.7976931348623157e308, "1.7976931348623157e+308", "1.7976931348623157e+308"),
    (123456.7890123, "1.234567890123e+5", "1.234567890123e+5"),
    (4.7e18, "4.7e+18", "4.7e+18"),
    (2.5e-05, "0.000025", "0.000025"),
    (math.inf, "inf", "inf"),
    (-math.inf, "-inf", "-inf"),
]


@pytest.mark.parametrize(("x", "reply", "aof"), CASES)
def test_double_formats_match_valkey(x: float, reply: str, aof: str) -> None:
    assert d2string(x).decode() == reply
    assert fpconv_dtoa(x).decode() == aof


@given(st.floats(allow_nan=False))
def test_aof_double_round_trips(x: float) -> None:
    assert float(fpconv_dtoa(x)) == x
    assert float(d2string(x)) == x
