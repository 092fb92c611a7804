"""The RDB reader: ``REDIS0001``..``REDIS0012`` and ``VALKEY080`` files as a stream of events.

How this works: the file is held as one ``bytes`` window (the whole file when it is a regular file
up to :data:`WHOLE_FILE_LIMIT`, else chunks that grow as needed) and parsed one record at a time
by :class:`~persistence.rdb.cursor.Cursor`. A record that runs off the window is re-parsed from
its start after a refill; when the file itself ends there, the reader raises ``TruncatedError``
naming the offset where that record began. The CRC64 is computed over each window prefix as it is
discarded, so the file is read once. Values of keys a filter rejects are stepped over without
being decoded (``values.skipper_table``).

Events: :class:`KeyRecord` per key (``offset`` = its type byte, as ``rdb_walk.txt`` lists),
``AuxField`` (except ``slot-info``, which becomes ``SlotInfo``), ``DbResize``,
``FunctionLibrary``, ``SlotInfo`` (also opcode 244), ``SlotImport`` (243), ``ModuleAux`` (247).
With ``string_runs=True`` (loaders), runs of plain string keys come as one ``StringRecords`` event
each instead of a ``KeyRecord`` per key (``persistence.rdb.runs``).
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from persistence.crc import crc64, key_slot
from persistence.errors import ChecksumError, FormatError, TruncatedError
from persistence.fileio import file_size, open_input
from persistence.rdb import constants as C
from persistence.rdb.cursor import Cursor, Short
from persistence.rdb.glob import glob_match
from persistence.rdb.runs import scan_strings
from persistence.rdb.values import (
    Loader,
    Skipper,
    loader_table,
    module_type_name,
    skip_module_value,
    skipper_table,
    string_encoding,
    type_name_table,
)
from persistence.records import (
    AuxField,
    DbResize,
    FunctionLibrary,
    KeyRecord,
    ModuleAux,
    RdbEvent,
    SlotImport,
    SlotInfo,
    StringRecords,
    StringValue,
    Value,
)

__all__ = [
    "RdbFilter",
    "RdbHeader",
    "RdbReader",
    "decode_value",
    "glob_match",
    "read_rdb",
]

WHOLE_FILE_LIMIT = 512 << 20  # read regular files up to this size in one go
CHUNK = 8 << 20  # window growth step for bigger files and decompressing streams
RUN_LIMIT = 4096  # string keys per StringRecords event
_RUN_START = (0, C.OPCODE_EXPIRETIME_MS)  # what a plain string record starts with
VALKEY_VERSIONS = frozenset({C.RDB_VERSION})
_SHORT = (IndexError, struct.error, Short)
_SEEKABLE = (io.BufferedReader, io.BufferedRandom, io.FileIO, io.BytesIO)


@dataclass(slots=True)
class RdbHeader:
    magic: str  # "VALKEY" or "REDIS"
    version: int


@dataclass(slots=True)
class RdbFilter:
    """Which keys to decode; the rest are skipped without decoding their values."""

    dbs: set[int] | None = None
    match: bytes | None = None  # a glob, src/util.c stringmatchlen semantics
    types: set[str] | None = None  # TypeName values
    slots: set[int] | None = None  # key_slot(key) in slots

    def wants_key(self, db: int, key: bytes) -> bool:
        if self.dbs is not None and db not in self.dbs:
            return False
        if self.match is not None and not glob_match(self.match, key):
            return False
        return self.slots is None or key_slot(key) in self.slots

    def wants_type(self, type_name: str) -> bool:
        return self.types is None or type_name in self.types


def parse_header(head: bytes, *, file: str, base: int = 0) -> RdbHeader:
    """Magic and version of the first 9 bytes (src/rdb.c rdbLoadRioWithLoadingCtx)."""
    if len(head) < 9:
        raise TruncatedError("RDB header is shorter than 9 bytes", file=file, offset=base)
    if head.startswith(b"REDIS"):
        magic, digits = "REDIS", head[5:9]
    elif head.startswith(b"VALKEY"):
        magic, digits = "VALKEY", head[6:9]
    else:
        raise FormatError("Wrong signature trying to load DB from file", file=file, offset=base)
    if not digits.isdigit():
        raise FormatError("Wrong signature trying to load DB from file", file=file, offset=base)
    version = int(digits)
    ok = 1 <= version <= C.REDIS_MAX_VERSION if magic == "REDIS" else version in VALKEY_VERSIONS
    if not ok:
        raise FormatError(
            f"Can't handle RDB format version {version} ({head[:9].decode('ascii', 'replace')})",
            file=file,
            offset=base,
        )
    return RdbHeader(magic, version)


class RdbReader:
    """Iterate the events of one RDB stream (see the module docstring).

    ``f`` is read from its current position; offsets in events and errors are
    ``base_offset`` + the position inside the RDB. After iteration, ``end_offset`` is the offset
    just past the checksum; a plain file or ``BytesIO`` is left positioned there, and for any
    stream the bytes already read beyond it are kept in ``trailing`` (the rest is still unread
    in ``f``).
    """

    def __init__(
        self,
        f: BinaryIO,
        *,
        file: str = "<rdb>",
        verify_checksum: bool = True,
        filter: RdbFilter | None = None,
        base_offset: int = 0,
        string_runs: bool = False,
    ) -> None:
        self._f = f
        # runs of plain string keys as one StringRecords event each (loaders); not with a filter
        self._string_runs = string_runs and filter is None
        self.file = file
        self.verify_checksum = verify_checksum
        self.filter = filter
        self.base_offset = base_offset
        self.end_offset: int = -1
        self.checksum: tuple[int, int] | None = None
        self.trailing: bytes = b""
        # Only plain files and memory buffers are repositioned at the end (seeking backwards in
        # a decompressing stream would decompress it again); others rely on ``trailing``.
        self._start: int | None = None
        if isinstance(f, _SEEKABLE):
            try:
                self._start = f.tell() if f.seekable() else None
            except OSError:  # io.UnsupportedOperation is an OSError
                self._start = None
        if isinstance(f, io.BytesIO):
            self._whole = True
        else:
            try:
                size = file_size(f)
            except OSError:
                size = None
            self._whole = size is not None and size - (self._start or 0) <= WHOLE_FILE_LIMIT
        first = f.read() if self._whole else f.read(CHUNK)
        self._eof = self._whole or len(first) < CHUNK
        self._cur = Cursor(first, file=file, base=base_offset)
        self._crc = 0
        self._crc_from = 0
        self.header = parse_header(first[:9], file=file, base=base_offset)
        self._cur.pos = 9
        self._redis = self.header.magic == "REDIS"
        self._loaders: dict[int, Loader] = loader_table(self._redis)
        self._skippers: dict[int, Skipper] = skipper_table(self._redis)
        self._type_names = type_name_table(self._redis)
        self._done = False

    # ---- window management ---------------------------------------------------------------

    def _grow(self, keep_from: int) -> bool:
        """Drop the window before ``keep_from`` and read more; False at the end of the file."""
        if self._eof:
            return False
        cur = self._cur
        keep = cur.buf[keep_from:]
        want = max(CHUNK, len(keep))
        parts = [keep]
        got = 0
        while got < want:
            chunk = self._f.read(min(want - got, CHUNK))
            if not chunk:
                self._eof = True
                break
            parts.append(chunk)
            got += len(chunk)
        if not got:  # nothing more: the window stays as it is, so the caller's offsets hold
            return False
        if self.verify_checksum:
            self._crc = crc64(cur.buf[self._crc_from : keep_from], self._crc)
        cur.buf = b"".join(parts)
        cur.end = len(cur.buf)
        cur.base += keep_from
        cur.pos = 0
        self._crc_from = 0
        return got > 0

    # ---- iteration -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[RdbEvent]:
        if self._done:
            return
        cur = self._cur
        db = 0
        expire: int | None = None
        prefix_start: int | None = None  # file offset of a key's EXPIRETIME/IDLE/FREQ prefix
        flt = self.filter
        want_key = flt.wants_key if flt is not None else None
        want_type = flt.wants_type if flt is not None and flt.types is not None else None
        loaders = self._loaders
        skippers = self._skippers
        type_names = self._type_names
        redis = self._redis
        version = self.header.version
        string = cur.string
        slot_import = C.OPCODE_SLOT_IMPORT
        runs = self._string_runs
        while True:
            start = cur.pos
            if (
                runs
                and expire is None
                and prefix_start is None
                and start < cur.end
                and cur.buf[start] in _RUN_START
            ):
                run_keys: list[bytes] = []
                run_values: list[bytes] = []
                run_ttls: list[tuple[int, int]] = []
                end = scan_strings(
                    cur.buf, start, cur.end, run_keys, run_values, run_ttls, RUN_LIMIT
                )
                if run_keys:
                    cur.pos = end
                    yield StringRecords(db, run_keys, run_values, run_ttls, cur.base + start)
                    continue
            try:
                t = cur.buf[start]
                cur.pos = start + 1
                if t < slot_import:
                    if t == 0 and want_key is None:
                        # a string with 6-bit key and value lengths, inline (the commonest)
                        buf = cur.buf
                        kn = buf[start + 1]
                        if kn < 0x40:
                            ke = start + 2 + kn
                            vn = buf[ke]
                            if vn < 0x40 and ke + 1 + vn <= cur.end:
                                cur.pos = ve = ke + 1 + vn
                                v = buf[ke + 1 : ve]
                                yield KeyRecord(
                                    db,
                                    buf[start + 2 : ke],
                                    StringValue(v),
                                    expire,
                                    string_encoding(v),
                                    cur.base + start,
                                )
                                expire = None
                                prefix_start = None
                                continue
                    # a key: type byte, key, value
                    key = string()
                    if want_key is not None:
                        wanted = want_key(db, key)
                        if wanted and want_type is not None:
                            wanted = want_type(type_names.get(t, "unknown"))
                        if not wanted and t in skippers:
                            skippers[t](cur, t)
                            expire = None
                            prefix_start = None
                            continue
                    if t == 0:  # the common case, without a loader call
                        v = string()
                        value: Value = StringValue(v)
                        encoding = string_encoding(v)
                    else:
                        loader = loaders.get(t)
                        if loader is None:
                            raise self._bad_type(cur, t, start)
                        loaded = loader(cur, t)
                        if loaded is None:  # empty collection: skipped (src/rdb.c emptykey)
                            expire = None
                            prefix_start = None
                            continue
                        value, encoding = loaded
                    yield KeyRecord(db, key, value, expire, encoding, cur.base + start)
                    expire = None
                    prefix_start = None
                    continue
                if t == C.OPCODE_EXPIRETIME_MS:
                    # RDB < 9 stored native-endian ms; every producer we know was little-endian
                    ms = cur.i64le()
                    if prefix_start is None:
                        prefix_start = cur.base + start
                    expire = ms
                    continue
                if t == C.OPCODE_SELECTDB:
                    db = cur.length()
                    continue
                if t == C.OPCODE_RESIZEDB:
                    keys = cur.length()
                    yield DbResize(db, keys, cur.length(), cur.base + start)
                    continue
                if t == C.OPCODE_AUX:
                    yield self._aux(cur, start)
                    continue
                if t == C.OPCODE_EOF:
                    self._finish(cur, start, version)
                    return
                if t == C.OPCODE_EXPIRETIME:
                    secs = cur.i32le()
                    if prefix_start is None:
                        prefix_start = cur.base + start
                    expire = secs * 1000
                    continue
                if t == C.OPCODE_IDLE:
                    cur.length()
                    if prefix_start is None:
                        prefix_start = cur.base + start
                    continue
                if t == C.OPCODE_FREQ:
                    cur.u8()
                    if prefix_start is None:
                        prefix_start = cur.base + start
                    continue
                if t == C.OPCODE_FUNCTION2:
                    code = cur.string()
                    yield FunctionLibrary(code, cur.base + start)
                    continue
                if t == C.OPCODE_FUNCTION_PRE_GA:
                    raise cur.error("Pre-release function format not supported", start)
                if t == C.OPCODE_MODULE_AUX:
                    yield self._module_aux(cur, start)
                    continue
                if t == C.OPCODE_SLOT_INFO:
                    slot = cur.length()
                    keys = cur.length()
                    yield SlotInfo(slot, keys, cur.length(), None, cur.base + start)
                    continue
                if t == C.OPCODE_SLOT_IMPORT and not redis:
                    yield self._slot_import(cur, start)
                    continue
                raise cur.error(
                    f"Can't handle foreign type or opcode {t} in RDB with version {version}", start
                )
            except _SHORT:
                cur.pos = start
                if self._grow(start):
                    continue
                where = prefix_start if prefix_start is not None else cur.base + start
                raise TruncatedError(
                    "Unexpected EOF reading RDB file", file=self.file, offset=where
                ) from None

    def _bad_type(self, cur: Cursor, t: int, start: int) -> FormatError:
        if t in (C.TYPE_MODULE_2, C.TYPE_MODULE_PRE_GA):
            # the module id follows the key (src/rdb.c rdbLoadObject)
            mid_pos = cur.pos
            module_id = cur.length()
            name = module_type_name(module_id)
            return cur.error(
                f"The RDB file contains module data I can't load: no matching module type "
                f"'{name}' (module id {module_id}, encoding version {module_id & 1023}, "
                f"id at offset {cur.offset(mid_pos)})",
                start,
            )
        if self._redis and 22 <= t <= 242:
            return cur.error(
                f"Can't handle foreign type or opcode {t} in RDB with version "
                f"{self.header.version}",
                start,
            )
        return cur.error(f"Unknown RDB encoding type {t}", start)

    def _aux(self, cur: Cursor, start: int) -> AuxField | SlotInfo:
        key = cur.string()
        value = cur.string()
        offset = cur.base + start
        if key == b"slot-info":
            # src/rdb.c: sscanf("%i,%lu,%lu,%lu"), at least 3 numbers (sizing hints only)
            parts = value.split(b",")
            try:
                nums = [int(p) for p in parts[:4]]
            except ValueError:
                nums = []
            if len(nums) >= 3:
                vol = nums[3] if len(nums) >= 4 else None
                return SlotInfo(nums[0], nums[1], nums[2], vol, offset)
        return AuxField(key, value, offset)

    def _module_aux(self, cur: Cursor, start: int) -> ModuleAux:
        module_id = cur.length()
        opos = cur.pos
        when_op = cur.length()
        if when_op != C.MODULE_OPCODE_UINT:
            raise cur.error("bad when_opcode in module aux", opos)
        when = cur.length()
        data_start = cur.pos
        skip_module_value(cur)
        payload = cur.buf[data_start : cur.pos]
        return ModuleAux(module_id, when, payload, cur.base + start)

    def _slot_import(self, cur: Cursor, start: int) -> SlotImport:
        name = cur.string()
        ranges = []
        for _ in range(cur.length()):
            lo = cur.length()
            ranges.append((lo, cur.length()))
        return SlotImport(name, ranges, cur.base + start)

    def _finish(self, cur: Cursor, eof_pos: int, version: int) -> None:
        """After the EOF opcode: the checksum (RDB >= 5), then remember where the RDB ends."""
        crc_end = eof_pos + 1
        if version >= 5:
            stored = struct.unpack_from("<Q", cur.buf, crc_end)[0]  # struct.error when cut
            cur.pos = crc_end + 8
            if self.verify_checksum:
                computed = crc64(cur.buf[self._crc_from : crc_end], self._crc)
                self.checksum = (stored, computed)
                if stored != 0 and stored != computed:  # stored 0 = rdbchecksum no
                    raise ChecksumError(
                        f"Wrong RDB checksum expected: ({computed:x}) got: ({stored:x})",
                        expected=computed,
                        stored=stored,
                        file=self.file,
                        offset=cur.base + crc_end,
                    )
        self._done = True
        self.end_offset = cur.base + cur.pos
        self.trailing = cur.buf[cur.pos :]
        if self._start is not None:
            with contextlib.suppress(OSError, ValueError):
                self._f.seek(self._start + self.end_offset - self.base_offset)


def read_rdb(
    path: str | os.PathLike[str],
    *,
    verify_checksum: bool = True,
    filter: RdbFilter | None = None,
    string_runs: bool = False,
) -> Iterator[RdbEvent]:
    """Open ``path`` (plain or LZ4 frame) and yield its events."""
    with open_input(path) as f:
        yield from RdbReader(
            f,
            file=str(path),
            verify_checksum=verify_checksum,
            filter=filter,
            string_runs=string_runs,
        )


def decode_value(
    type_byte: int,
    payload: bytes,
    *,
    magic: str = "VALKEY",
    version: int = C.RDB_VERSION,
    file: str = "<payload>",
) -> tuple[Value, str]:
    """Decode one serialized value (a DUMP payload body without type byte and footer)."""
    redis = magic == "REDIS"
    cur = Cursor(bytes(payload), file=file)
    loader = loader_table(redis).get(type_byte)
    if loader is None:
        if type_byte in (C.TYPE_MODULE_2, C.TYPE_MODULE_PRE_GA):
            try:
                module_id = cur.length()
            except _SHORT:
                raise TruncatedError("Truncated module value", file=file, offset=0) from None
            raise FormatError(
                f"The payload contains module data I can't load: module type "
                f"'{module_type_name(module_id)}' (module id {module_id})",
                file=file,
                offset=0,
            )
        raise FormatError(f"Unknown RDB encoding type {type_byte}", file=file, offset=0)
    try:
        loaded = loader(cur, type_byte)
    except _SHORT:
        raise TruncatedError("Unexpected end of the payload", file=file, offset=0) from None
    if cur.pos != len(payload):
        raise FormatError(
            f"{len(payload) - cur.pos} bytes left over after the value", file=file, offset=cur.pos
        )
    if loaded is None:
        raise FormatError("Empty keys are not allowed", file=file, offset=0)
    return loaded
