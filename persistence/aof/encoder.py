"""THE one AOF encoder: commands and key records to RESP bytes, exactly as Valkey writes them.

``encode_command`` is the only place in the code base that writes a RESP command. Everything that
produces AOF bytes (the AOF writer, AOF rewrite, RDB->AOF conversion, slot-migration snapshots)
goes through it, and through :func:`record_commands` for the commands that rebuild one key in
Valkey's AOF-rewrite forms (src/aof.c ``rewriteAppendOnlyFileRio`` / ``rewriteObjectRio``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from persistence.format import fpconv_dtoa
from persistence.records import (
    FunctionLibrary,
    HashValue,
    KeyRecord,
    ListValue,
    SetValue,
    StreamGroup,
    StreamID,
    StreamValue,
    StringValue,
    ZSetValue,
)

# src/server.h AOF_REWRITE_ITEMS_PER_CMD
AOF_REWRITE_ITEMS_PER_CMD = 64

Arg = bytes | bytearray | memoryview | int | str

_CACHE_MAX = 1024
_ARRAY_HDR = [b"*%d\r\n" % n for n in range(_CACHE_MAX)]
_BULK_HDR = [b"$%d\r\n" % n for n in range(_CACHE_MAX)]
_CRLF = b"\r\n"


def _arg_bytes(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, bool):
        raise TypeError("bool is not a valid command argument")
    if isinstance(arg, int):
        return b"%d" % arg  # integer-encoded values are written as decimal text (src/aof.c)
    if isinstance(arg, str):
        return arg.encode()
    return bytes(arg)


def encode_command(argv: Sequence[Arg]) -> bytes:
    """One command as a RESP array: ``*<argc>\\r\\n`` then ``$<len>\\r\\n<arg>\\r\\n`` per arg.

    Byte-identical to src/aof.c ``catAppendOnlyGenericCommand``. ``int`` arguments become their
    decimal text; ``str`` is UTF-8 encoded.
    """
    n = len(argv)
    parts = [_ARRAY_HDR[n] if n < _CACHE_MAX else b"*%d\r\n" % n]
    append = parts.append
    for arg in argv:
        if type(arg) is not bytes:
            arg = _arg_bytes(arg)
        size = len(arg)
        append(_BULK_HDR[size] if size < _CACHE_MAX else b"$%d\r\n" % size)
        append(arg)
        append(_CRLF)
    return b"".join(parts)


def encode_commands(commands: Iterable[Sequence[Arg]]) -> bytes:
    """Several commands concatenated."""
    return b"".join([encode_command(c) for c in commands])


def timestamp_annotation(unix_seconds: int) -> bytes:
    """The ``#TS:<n>\\r\\n`` annotation (src/aof.c genAofTimestampAnnotationIfNeeded)."""
    return b"#TS:%d\r\n" % unix_seconds


def select_command(db: int) -> list[bytes]:
    return [b"SELECT", b"%d" % db]


# ---- records -> commands (src/aof.c rewrite*Object) ----------------------------------------


def _chunked(
    name: bytes, key: bytes, items: Sequence[bytes], per_item: int
) -> Iterator[list[bytes]]:
    """``name key items...`` in commands of at most 64 items of ``per_item`` args each."""
    step = AOF_REWRITE_ITEMS_PER_CMD * per_item
    for start in range(0, len(items), step):
        cmd = [name, key]
        cmd.extend(items[start : start + step])
        yield cmd


def _hash_commands(key: bytes, value: HashValue) -> Iterator[list[bytes]]:
    expires = value.expires
    plain: list[bytes] = []
    if expires:
        volatile: list[tuple[int, int, bytes, bytes]] = []
        for i, (f, v) in enumerate(value.items):
            when = expires.get(f)
            if when is None:
                plain.append(f)
                plain.append(v)
            else:
                volatile.append((when, i, f, v))
        # Valkey walks the hash's volatile set (ordered by expiry): one HSETEX per field (spec 1.8)
        volatile.sort()
        for when, _, f, v in volatile:
            yield [b"HSETEX", key, b"PXAT", b"%d" % when, b"FIELDS", b"1", f, v]
    else:
        for f, v in value.items:
            plain.append(f)
            plain.append(v)
    yield from _chunked(b"HMSET", key, plain, 2)


def _stream_commands(key: bytes, value: StreamValue) -> Iterator[list[bytes]]:
    if value.entries:
        for sid, fields in value.entries:
            cmd = [b"XADD", key, sid.encode()]
            for f, v in fields:
                cmd.append(f)
                cmd.append(v)
            yield cmd
    else:
        # src/aof.c rewriteStreamObject: the XADD MAXLEN 0 trick for an empty stream
        yield [b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"]
    yield [
        b"XSETID", key, value.last_id.encode(),
        b"ENTRIESADDED", b"%d" % value.entries_added,
        b"MAXDELETEDID", value.max_deleted_id.encode(),
    ]  # fmt: skip
    for group in value.groups:
        yield from _group_commands(key, group)


def _group_commands(key: bytes, group: StreamGroup) -> Iterator[list[bytes]]:
    # entries_read -1 (SCG_INVALID_ENTRIES_READ) is written as "-1" (rioWriteBulkLongLong)
    yield [
        b"XGROUP", b"CREATE", key, group.name, group.last_id.encode(),
        b"ENTRIESREAD", b"%d" % group.entries_read,
    ]  # fmt: skip
    nacks = {p.id: p for p in group.pel}
    for consumer in group.consumers:
        pel: Sequence[StreamID] = consumer.pel
        if not pel:
            pel = [p.id for p in group.pel if p.consumer == consumer.name]
        if not pel:
            yield [b"XGROUP", b"CREATECONSUMER", key, group.name, consumer.name]
            continue
        for sid in pel:
            nack = nacks.get(sid)
            when = nack.delivery_time_ms if nack is not None else 0
            count = nack.delivery_count if nack is not None else 0
            yield [
                b"XCLAIM", key, group.name, consumer.name, b"0", sid.encode(),
                b"TIME", b"%d" % when, b"RETRYCOUNT", b"%d" % count, b"JUSTID", b"FORCE",
            ]  # fmt: skip


def record_commands(record: KeyRecord) -> Iterator[list[bytes]]:
    """The commands that rebuild one key, in Valkey's AOF-rewrite forms (spec 4.6, 1.8)."""
    key = record.key
    value = record.value
    if isinstance(value, StringValue):
        yield [b"SET", key, value.value]
    elif isinstance(value, ListValue):
        yield from _chunked(b"RPUSH", key, value.items, 1)
    elif isinstance(value, SetValue):
        yield from _chunked(b"SADD", key, value.members, 1)
    elif isinstance(value, ZSetValue):
        flat: list[bytes] = []
        for member, score in value.items:
            flat.append(fpconv_dtoa(score))
            flat.append(member)
        yield from _chunked(b"ZADD", key, flat, 2)
    elif isinstance(value, HashValue):
        yield from _hash_commands(key, value)
    elif isinstance(value, StreamValue):
        yield from _stream_commands(key, value)
    else:  # pragma: no cover - the Value union is closed
        raise TypeError(f"unsupported value type {type(value).__name__}")
    if record.expire_at_ms is not None:
        yield [b"PEXPIREAT", key, b"%d" % record.expire_at_ms]


def rewrite_commands(
    records: Iterable[KeyRecord],
    *,
    functions: Iterable[FunctionLibrary | bytes] = (),
    timestamp: int | None = None,
    prefix: Iterable[list[bytes]] = (),
) -> Iterator[bytes]:
    """A whole RESP base, as ``rewriteAppendOnlyFileRio`` writes it, in pieces of bytes.

    Optional ``#TS:`` line, one ``FUNCTION LOAD`` per library, the ``prefix`` commands (e.g. the
    ``CLUSTER SYNCSLOTS ESTABLISH`` of a slot import still running), then ``SELECT db`` whenever
    the db changes (records are expected grouped by db, as readers and the keyspace give them)
    and the commands of each record.
    """
    if timestamp is not None:
        yield timestamp_annotation(timestamp)
    for lib in functions:
        code = lib.code if isinstance(lib, FunctionLibrary) else lib
        yield encode_command([b"FUNCTION", b"LOAD", code])
    for argv in prefix:
        yield encode_command(argv)
    current_db: int | None = None
    batch: list[bytes] = []
    for record in records:
        if record.db != current_db:
            batch.append(encode_command(select_command(record.db)))
            current_db = record.db
        for cmd in record_commands(record):
            batch.append(encode_command(cmd))
        if len(batch) >= 256:
            yield b"".join(batch)
            batch = []
    if batch:
        yield b"".join(batch)
