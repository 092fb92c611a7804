"""DUMP and RESTORE (src/cluster.c dumpCommand, restoreCommand): a key as a DUMP payload
(persistence/rdb/dump.py) and back."""

from __future__ import annotations

from typing import Any

from engine.commands.table import command
from engine.commands.util import OK, int_arg
from engine.context import Ctx
from engine.errors import (
    BAD_DATA_FORMAT,
    BUSYKEY,
    DUMP_PAYLOAD,
    INVALID_FREQ,
    INVALID_IDLETIME,
    INVALID_TTL,
    SYNTAX,
    CommandError,
)
from engine.types.base import type_info
from persistence.errors import FormatError
from persistence.rdb.dump import dump_payload, load_payload, verify_payload
from persistence.records import KeyRecord


@command("dump", 2, "readonly", 1, 1, 1, acl="@keyspace @read @slow")
def dump(ctx: Ctx, argv: list[bytes]) -> Any:
    value = ctx.db.lookup(ctx, argv[1])
    if value is None:
        return None
    return dump_payload(type_info(value).to_record(value))


def _restore(ctx: Ctx, argv: list[bytes]) -> Any:
    """restoreCommand (src/cluster.c)."""
    replace = absttl = False
    freq = idle = -1
    j, n = 4, len(argv)
    while j < n:
        opt = argv[j].upper()
        more = j + 1 < n
        if opt == b"REPLACE":
            replace = True
        elif opt == b"ABSTTL":
            absttl = True
        elif opt == b"IDLETIME" and more and freq == -1:
            idle = int_arg(argv[j + 1])
            if idle < 0:
                raise CommandError(INVALID_IDLETIME)
            j += 1
        elif opt == b"FREQ" and more and idle == -1:
            freq = int_arg(argv[j + 1])
            if freq < 0 or freq > 255:
                raise CommandError(INVALID_FREQ)
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1
    key = argv[1]
    db = ctx.db
    if not replace and db.lookup(ctx, key) is not None:
        raise CommandError(BUSYKEY)
    ttl = int_arg(argv[2])
    if ttl < 0:
        raise CommandError(INVALID_TTL)
    payload = argv[3]
    try:
        verify_payload(payload)
    except FormatError:
        raise CommandError(DUMP_PAYLOAD) from None
    try:
        record_value = load_payload(payload, verify_checksum=False)
    except (FormatError, ValueError, IndexError, KeyError):
        raise CommandError(BAD_DATA_FORMAT) from None
    deleted = replace and db.lookup(ctx, key) is not None and db.delete(key)
    if ttl and not absttl:
        ttl += ctx.now_ms
    if ttl and ttl <= ctx.now_ms:  # checkAlreadyExpired
        if deleted:
            # src/cluster.c: lazyfree-lazy-server-del (yes in Valkey 9) -> UNLINK
            ctx.rewrite([b"UNLINK", key])
            ctx.modified(key)
            ctx.notify("g", b"del", key)
            ctx.dirty += 1
        return OK
    ctx.engine.keyspace.load_record(KeyRecord(db.id, key, record_value, ttl or None))
    if ttl and not absttl:  # the TTL propagates as an absolute time
        ctx.rewrite([argv[0], key, b"%d" % ttl, *argv[3:], b"ABSTTL"])
    ctx.modified(key)
    ctx.notify("g", b"restore", key)
    ctx.dirty += 1
    return OK


@command("restore", -4, "write denyoom", 1, 1, 1, acl="@keyspace @write @slow @dangerous")
def restore(ctx: Ctx, argv: list[bytes]) -> Any:
    return _restore(ctx, argv)


@command(
    "restore-asking", -4, "write denyoom asking", 1, 1, 1,
    acl="@keyspace @write @slow @dangerous",
)  # fmt: skip
def restore_asking(ctx: Ctx, argv: list[bytes]) -> Any:
    return _restore(ctx, argv)
