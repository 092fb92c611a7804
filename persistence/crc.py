"""CRC64 (RDB checksums, DUMP payloads) and CRC16 (key slots), through crcmod.

CRC-64/Jones: poly 0xad93d23594c935a9, reflected, init 0, xorout 0 (src/crc64.c; the header
comment's XorIn is not what the code does). CRC-16/XMODEM: poly 0x1021, init 0 (src/crc16.c).
"""

from __future__ import annotations

from collections.abc import Callable

import crcmod

# crcmod wants the polynomial with its top bit; initCrc/xorOut as Valkey uses them.
_crc64_fn: Callable[[bytes | bytearray | memoryview, int], int] = crcmod.mkCrcFun(
    0x1AD93D23594C935A9, initCrc=0, rev=True, xorOut=0
)
_crc16_fn: Callable[[bytes, int], int] = crcmod.mkCrcFun(0x11021, initCrc=0, rev=False, xorOut=0)

CLUSTER_SLOTS = 16384  # src/cluster.h


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Continue a CRC-64/Jones over ``data`` (start with 0)."""
    return _crc64_fn(data, crc)


def crc16(data: bytes) -> int:
    return _crc16_fn(data, 0)


def key_slot(key: bytes) -> int:
    """Valkey's keyHashSlot (src/cluster.c): hash tag = bytes between first '{' and next '}'."""
    s = key.find(b"{")
    if s != -1:
        e = key.find(b"}", s + 1)
        if e != -1 and e != s + 1:
            key = key[s + 1 : e]
    return _crc16_fn(key, 0) & 0x3FFF
