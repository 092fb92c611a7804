"""CRC64 (RDB checksums, DUMP payloads) and CRC16 (key slots), through crcmod.

CRC-64/Jones: poly 0xad93d23594c935a9, reflected, init 0, xorout 0 (src/crc64.c; the header
comment's XorIn is not what the code does). CRC-16/XMODEM: poly 0x1021, init 0 (src/crc16.c).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import repeat

import crcmod

# crcmod wants the polynomial with its top bit; initCrc/xorOut as Valkey uses them.
_crc64_fn: Callable[[bytes | bytearray | memoryview, int], int] = crcmod.mkCrcFun(
    0x1AD93D23594C935A9, initCrc=0, rev=True, xorOut=0
)
_crc16_fn: Callable[[bytes, int], int] = crcmod.mkCrcFun(0x11021, initCrc=0, rev=False, xorOut=0)


def _crc16_parts() -> tuple[Callable[[bytes, int, bytes], int], bytes]:
    """crcmod's C function and table behind ``_crc16_fn``, to call without its Python wrapper
    (which doubles the cost of a short key's CRC); checked on CRC-16/XMODEM's check value."""
    d = getattr(_crc16_fn, "__defaults__", None)
    if d and len(d) == 3 and isinstance(d[1], bytes) and callable(d[2]):
        fn, table = d[2], d[1]
        if fn(b"123456789", 0, table) == 0x31C3:
            return fn, table
    return (lambda data, crc, _table: _crc16_fn(data, crc)), b""


CRC16_C, CRC16_TABLE = _crc16_parts()

CLUSTER_SLOTS = 16384  # src/cluster.h


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Continue a CRC-64/Jones over ``data`` (start with 0)."""
    return _crc64_fn(data, crc)


def crc16(data: bytes) -> int:
    return CRC16_C(data, 0, CRC16_TABLE)


def crc16_many(keys: Iterable[bytes]) -> Iterator[int]:
    """CRC16 of each of ``keys``, the loop in C (for slot histograms of many keys)."""
    return map(CRC16_C, keys, repeat(0), repeat(CRC16_TABLE))


def key_slot(key: bytes) -> int:
    """Valkey's keyHashSlot (src/cluster.c): hash tag = bytes between first '{' and next '}'."""
    s = key.find(b"{")
    if s != -1:
        e = key.find(b"}", s + 1)
        if e != -1 and e != s + 1:
            key = key[s + 1 : e]
    return CRC16_C(key, 0, CRC16_TABLE) & 0x3FFF
