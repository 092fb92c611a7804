"""DUMP / RESTORE payloads (src/cluster.c createDumpPayload, verifyDumpPayload).

Layout: ``<type byte><value as in an RDB><RDB version: uint16 LE><CRC64 LE>``; the CRC covers
everything before it. Valkey 9 writes version 80; RESTORE accepts what
``rdbIsVersionAccepted(ver, false, false)`` accepts under ``rdb-version-check strict``:
1..11 and 80.
"""

from __future__ import annotations

import struct

from persistence.crc import crc64
from persistence.errors import ChecksumError, FormatError
from persistence.rdb import constants as C
from persistence.rdb.reader import decode_value
from persistence.rdb.writer import SUPPORTED_VERSIONS, encode_value
from persistence.records import Value

DUMP_FILE = "<dump payload>"
# src/cluster.c restoreCommand: the reply when verifyDumpPayload fails
DUMP_PAYLOAD_ERROR = "DUMP payload version or checksum are wrong"
FOOTER_SIZE = 10  # 2-byte version + 8-byte CRC64


def dump_payload(value: Value, *, version: int = C.RDB_VERSION, compression: bool = True) -> bytes:
    """The bytes DUMP returns for ``value`` (UnsupportedForVersion if ``version`` can't hold it)."""
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"unsupported RDB version {version} (write 80 or 11)")
    t, body = encode_value(value, version=version, compress=compression, file=DUMP_FILE)
    head = bytes((t,)) + body + struct.pack("<H", version)
    return head + struct.pack("<Q", crc64(head))


def version_accepted(version: int) -> bool:
    """rdbIsVersionAccepted(ver, false, false) with rdb-version-check strict (src/rdb.c)."""
    return 1 <= version <= 11 or version == C.RDB_VERSION


def verify_payload(payload: bytes, *, verify_checksum: bool = True) -> int:
    """verifyDumpPayload (src/cluster.c): the payload's RDB version, or a FormatError."""
    if len(payload) < FOOTER_SIZE:
        raise FormatError(DUMP_PAYLOAD_ERROR, file=DUMP_FILE, offset=0)
    footer = len(payload) - FOOTER_SIZE
    (version,) = struct.unpack_from("<H", payload, footer)
    if not version_accepted(version):
        raise FormatError(DUMP_PAYLOAD_ERROR, file=DUMP_FILE, offset=footer)
    if verify_checksum:
        (stored,) = struct.unpack_from("<Q", payload, footer + 2)
        expected = crc64(payload[: footer + 2])
        if stored != expected:
            raise ChecksumError(
                DUMP_PAYLOAD_ERROR,
                expected=expected,
                stored=stored,
                file=DUMP_FILE,
                offset=footer + 2,
            )
    return int(version)


def load_payload(payload: bytes, *, verify_checksum: bool = True) -> Value:
    """Decode a DUMP payload (what RESTORE does after verifyDumpPayload)."""
    version = verify_payload(payload, verify_checksum=verify_checksum)
    if len(payload) == FOOTER_SIZE:
        raise FormatError("Bad data format", file=DUMP_FILE, offset=0)
    body = payload[1 : len(payload) - FOOTER_SIZE]
    magic = "VALKEY" if version >= C.RDB_VERSION else "REDIS"
    value, _encoding = decode_value(payload[0], body, magic=magic, version=version, file=DUMP_FILE)
    return value
