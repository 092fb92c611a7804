"""SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE (src/rdb.c saveCommand/bgsaveCommand, src/aof.c
bgrewriteaofCommand, src/server.c lastsaveCommand).

The engine does no I/O: these commands ask the server's persistence controller, which the server
registers as ``engine.server_info["persistence"]`` (engine/server/durability.py ``Durability``),
and turn the status word it answers into Valkey's reply. An engine without a server (tests,
tools) answers ``ERR`` for them.
"""

from __future__ import annotations

from typing import Any, Protocol

from engine.commands.table import command
from engine.commands.util import OK
from engine.context import Ctx
from engine.errors import (
    BGSAVE_BUSY,
    BGSAVE_IN_PROGRESS,
    BGSAVE_NOTHING_TO_CANCEL,
    GENERIC_ERR,
    NO_PERSISTENCE,
    REWRITE_FAILED,
    REWRITE_IN_PROGRESS,
    SYNTAX,
    CommandError,
)
from persistence.resp.frames import SimpleString

_ADMIN = "no_async_loading admin noscript"
_ACL = "@admin @slow @dangerous"


class PersistenceControl(Protocol):
    def save(self) -> str: ...  # ok | in_progress | failed
    def bgsave(self, schedule: bool, in_exec: bool) -> str: ...  # started|in_progress|...
    def bgsave_cancel(self) -> str: ...  # cancelled | unscheduled | none
    def bgrewriteaof(self, in_exec: bool) -> str: ...  # started|in_progress|scheduled|failed


def _control(ctx: Ctx) -> PersistenceControl:
    control = ctx.engine.server_info.get("persistence")
    if control is None:
        raise CommandError(NO_PERSISTENCE)
    return control  # type: ignore[no-any-return]


def _in_exec(ctx: Ctx) -> bool:
    # only EXEC runs handlers with may_block off; a fork inside a transaction would split it
    # between the new base and the new incr file, so src/rdb.c and src/aof.c schedule instead
    return not ctx.may_block


@command("save", 1, _ADMIN + " no_multi", acl=_ACL)
def save(ctx: Ctx, argv: list[bytes]) -> Any:
    status = _control(ctx).save()
    if status == "in_progress":
        raise CommandError(BGSAVE_IN_PROGRESS)
    if status != "ok":
        raise CommandError(GENERIC_ERR)
    return OK


@command("bgsave", -1, _ADMIN, acl=_ACL)
def bgsave(ctx: Ctx, argv: list[bytes]) -> Any:
    schedule = False
    if len(argv) > 1:
        opt = argv[1].lower()
        if len(argv) == 2 and opt == b"schedule":
            schedule = True
        elif len(argv) == 2 and opt == b"cancel":
            status = _control(ctx).bgsave_cancel()
            if status == "cancelled":
                return SimpleString(b"Background saving cancelled")
            if status == "unscheduled":
                return SimpleString(b"Scheduled background saving cancelled")
            raise CommandError(BGSAVE_NOTHING_TO_CANCEL)
        else:
            raise CommandError(SYNTAX)
    status = _control(ctx).bgsave(schedule, _in_exec(ctx))
    if status == "started":
        return SimpleString(b"Background saving started")
    if status == "scheduled":
        return SimpleString(b"Background saving scheduled")
    if status == "in_progress":
        raise CommandError(BGSAVE_IN_PROGRESS)
    if status == "busy":
        raise CommandError(BGSAVE_BUSY)
    raise CommandError(GENERIC_ERR)


@command("bgrewriteaof", 1, _ADMIN, acl=_ACL)
def bgrewriteaof(ctx: Ctx, argv: list[bytes]) -> Any:
    status = _control(ctx).bgrewriteaof(_in_exec(ctx))
    if status == "started":
        return SimpleString(b"Background append only file rewriting started")
    if status == "scheduled":
        return SimpleString(b"Background append only file rewriting scheduled")
    if status == "in_progress":
        raise CommandError(REWRITE_IN_PROGRESS)
    raise CommandError(REWRITE_FAILED)


@command("lastsave", 1, "loading stale fast", acl="@admin @fast @dangerous")
def lastsave(ctx: Ctx, argv: list[bytes]) -> Any:
    return int(ctx.engine.server_info.get("lastsave", 0))
