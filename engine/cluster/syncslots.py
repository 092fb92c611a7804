"""The ``CLUSTER SYNCSLOTS`` messages of atomic slot migration, as values (spec 3.3, 3.4).

Messages are plain frozen dataclasses; :func:`encode` turns one into the RESP command Valkey
sends (through ``persistence.aof.encoder.encode_command``, the one RESP writer) and
:func:`parse` turns a received command (``argv``, from ``persistence.resp.RequestParser``) back
into one. :func:`parse_slot_ranges` is Valkey's ``parseSlotRangesOrReply``
(src/cluster_migrateslots.c), shared by ``CLUSTER MIGRATESLOTS`` and ``ESTABLISH``.

The texts below are Valkey's words (src/cluster_migrateslots.c); the ``ERR``-prefixed ones are
replies, the others are job status messages shown by ``CLUSTER GETSLOTMIGRATIONS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from engine.errors import (
    ERR_NO_END_SLOT,
    ERR_NO_RANGES,
    ERR_SPAN_SHARDS,
    SYNTAX,
    CommandError,
)
from engine.errors import INVALID_SLOT as ERR_BAD_SLOT  # src/cluster.c getSlotOrReply
from persistence.aof.encoder import encode_command
from persistence.resp.tokens import string2ll

NAME_LEN: Final = 40  # src/cluster.h CLUSTER_NAMELEN
SLOTS: Final = 16384

Range: TypeAlias = tuple[int, int]
Ranges: TypeAlias = tuple[Range, ...]


def err_start_after_end(s: int, e: int) -> CommandError:
    return CommandError(f"ERR Start slot number {s} is greater than end slot number {e}.")


def err_no_node(slot: int) -> CommandError:
    return CommandError(f"ERR Slot {slot} has no node served.")


def err_overlap(s: int, e: int, ps: int, pe: int) -> CommandError:
    return CommandError(f"ERR Slot range {s}-{e} overlaps with previous range {ps}-{pe}.")


def err_already_migrating(slot: int) -> CommandError:
    return CommandError(f"ERR I am already migrating slot {slot}.")


def err_invalid_node(name: bytes) -> CommandError:
    return CommandError(f"ERR Invalid node name: {name.decode('latin-1')}")


def err_unknown_node(name: bytes) -> CommandError:
    return CommandError(f"ERR Unknown node name: {name.decode('latin-1')}")


# ---- job status messages (GETSLOTMIGRATIONS ``message``) ------------------------------------
MSG_UNEXPECTED = "Unexpected state machine transition"
MSG_UNKNOWN_SUB = "Unknown SYNCSLOTS subcommand used"
MSG_TIMEOUT = "Timed out after too long with no interaction"
MSG_LINK_LOST_EXPORT = (
    "Connection lost to target. Check CLUSTER GETSLOTMIGRATIONS on the target node for more "
    "information."
)
MSG_LINK_LOST_IMPORT = (
    "Connection lost to source. Check CLUSTER GETSLOTMIGRATIONS on the source node for more "
    "information."
)
MSG_CONNECT_FAILED = "Unable to connect to target node: {}"
MSG_AUTH_NO_REPLY = "Target node did not respond to AUTH command"
MSG_AUTH_FAILED = "Failed to AUTH to target node: {}"
MSG_ESTABLISH_TOO_LARGE = "Response to establish job is larger than buffer limit"
MSG_ESTABLISH_ERROR = "Received error during handshake to target: {}"
MSG_SNAPSHOT_START = "Failed to start snapshot"
MSG_SNAPSHOT_FAILED = "Failed to perform snapshot"
MSG_NOT_OWNER = "Slots are no longer owned by myself"
MSG_SOURCE_NOT_OWNER = "Slots are no longer owned by source node"
MSG_ASSIGNED_TO_ME = "Slots were unexpectedly assigned to myself during import"
MSG_FLUSHED = "Data was flushed"
MSG_UNPAUSED_BEFORE_FAILOVER = "Unpaused before failover completed"
MSG_PAUSE_TIMEOUT = "Timed out before streaming completed"
MSG_UNPAUSED_BEFORE_DONE = (
    "Unpaused before migration completed (migration may have succeeded with lost writes)"
)
MSG_APPLY_FAILED = (
    "Failed to process command during slot migration. Check logs for more information"
)
MSG_OOM = "Ran out of memory (OOM) during slot import"
MSG_PROMOTED = "A failover occurred during slot import"
MSG_FULL_SYNC = "Full resynchronization occurred"
MSG_RESTARTED = "Process restarted"


# ---- messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Establish:
    """``ESTABLISH SOURCE <id> NAME <name> SLOTSRANGE s e [...]``; ``source`` is None only when
    a tracking copy (AOF, replication) left it out."""

    name: bytes
    ranges: Ranges
    source: bytes | None


@dataclass(frozen=True, slots=True)
class Ack:
    pass


@dataclass(frozen=True, slots=True)
class SnapshotEof:
    pass


@dataclass(frozen=True, slots=True)
class RequestPause:
    pass


@dataclass(frozen=True, slots=True)
class Paused:
    pass


@dataclass(frozen=True, slots=True)
class RequestFailover:
    pass


@dataclass(frozen=True, slots=True)
class FailoverGranted:
    pass


@dataclass(frozen=True, slots=True)
class Finish:
    """``FINISH STATE SUCCESS|FAILED NAME <name> [MESSAGE <text>]`` (target -> replicas/AOF)."""

    name: bytes
    success: bool
    message: bytes | None


@dataclass(frozen=True, slots=True)
class Capa:
    fields: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Unknown:
    """A SYNCSLOTS subcommand nobody knows: fails a migration link (spec 3.4)."""

    sub: bytes


Message: TypeAlias = (
    Establish
    | Ack
    | SnapshotEof
    | RequestPause
    | Paused
    | RequestFailover
    | FailoverGranted
    | Finish
    | Capa
    | Unknown
)

_BARE: Final[dict[type, bytes]] = {
    Ack: b"ACK",
    SnapshotEof: b"SNAPSHOT-EOF",
    RequestPause: b"REQUEST-PAUSE",
    Paused: b"PAUSED",
    RequestFailover: b"REQUEST-FAILOVER",
    FailoverGranted: b"FAILOVER-GRANTED",
}
_BY_SUB: Final[dict[bytes, Message]] = {
    b"ack": Ack(),
    b"snapshot-eof": SnapshotEof(),
    b"request-pause": RequestPause(),
    b"paused": Paused(),
    b"request-failover": RequestFailover(),
    b"failover-granted": FailoverGranted(),
}
_PREFIX: Final = [b"CLUSTER", b"SYNCSLOTS"]


def message_argv(msg: Message) -> list[bytes]:
    """The command of one message, as Valkey spells it."""
    bare = _BARE.get(type(msg))
    if bare is not None:
        return [*_PREFIX, bare]  # src/cluster_migrateslots.c sendSyncSlotsMessage
    if isinstance(msg, Establish):
        # src/cluster_migrateslots.c generateSyncSlotsEstablishCommand
        argv = [*_PREFIX, b"ESTABLISH"]
        if msg.source is not None:
            argv += [b"SOURCE", msg.source]
        argv += [b"NAME", msg.name, b"SLOTSRANGE"]
        for s, e in msg.ranges:
            argv += [b"%d" % s, b"%d" % e]
        return argv
    if isinstance(msg, Finish):
        # src/cluster_migrateslots.c propagateSyncSlotsFinish; the status message is always
        # set (sdsnew(NULL) is ""), so MESSAGE is always there (observed in 9.0.4 and 9.1.2 AOFs)
        state = b"SUCCESS" if msg.success else b"FAILED"
        argv = [*_PREFIX, b"FINISH", b"STATE", state, b"NAME", msg.name]
        return [*argv, b"MESSAGE", msg.message or b""]
    if isinstance(msg, Capa):
        return [*_PREFIX, b"CAPA", *msg.fields]
    assert isinstance(msg, Unknown)
    return [*_PREFIX, msg.sub]


def encode(msg: Message) -> bytes:
    return encode_command(message_argv(msg))


def is_syncslots(argv: Sequence[bytes]) -> bool:
    return len(argv) >= 3 and argv[0].lower() == b"cluster" and argv[1].lower() == b"syncslots"


def parse(argv: Sequence[bytes], owner_of: Callable[[int], bytes | None] | None = None) -> Message:
    """One received ``CLUSTER SYNCSLOTS`` command as a message (check :func:`is_syncslots`
    first). ESTABLISH and FINISH are parsed as Valkey does, raising its errors; ``owner_of``
    (slot -> owner id) enables the ESTABLISH ownership checks of ``parseSlotRangesOrReply``."""
    sub = argv[2].lower()
    bare = _BY_SUB.get(sub)
    if bare is not None:
        return bare
    if sub == b"establish":
        return _parse_establish(argv, owner_of)
    if sub == b"finish":
        return _parse_finish(argv)
    if sub == b"capa":
        return Capa(tuple(argv[3:]))  # src/cluster_migrateslots.c: all CAPA fields ignored
    return Unknown(bytes(argv[2]))


def _parse_establish(
    argv: Sequence[bytes], owner_of: Callable[[int], bytes | None] | None
) -> Establish:
    # src/cluster_migrateslots.c clusterCommandSyncSlotsEstablish: order-agnostic pairs
    name: bytes | None = None
    source: bytes | None = None
    ranges: Ranges | None = None
    i = 3
    n = len(argv)
    while i < n:
        key = argv[i].lower()
        if key == b"source":
            if source is not None or i + 1 >= n or len(argv[i + 1]) != NAME_LEN:
                raise CommandError(SYNTAX)
            source = bytes(argv[i + 1])
            i += 2
        elif key == b"name":
            if name is not None or i + 1 >= n or len(argv[i + 1]) != NAME_LEN:
                raise CommandError(SYNTAX)
            name = bytes(argv[i + 1])
            i += 2
        elif key == b"slotsrange":
            if ranges is not None:
                raise CommandError(SYNTAX)
            ranges, i, _ = parse_slot_ranges(argv, i + 1, owner_of)
        else:
            raise CommandError(SYNTAX)
    if name is None or ranges is None:
        raise CommandError(SYNTAX)
    return Establish(name, ranges, source)


def _parse_finish(argv: Sequence[bytes]) -> Finish:
    # src/cluster_migrateslots.c clusterCommandSyncSlotsFinish
    state: bytes | None = None
    name: bytes | None = None
    message: bytes | None = None
    i = 3
    n = len(argv)
    while i < n:
        key = argv[i].lower()
        if i + 1 >= n:
            raise CommandError(SYNTAX)
        if key == b"state" and state is None:
            state = argv[i + 1].lower()
        elif key == b"name" and name is None and len(argv[i + 1]) == NAME_LEN:
            name = bytes(argv[i + 1])
        elif key == b"message" and message is None:
            message = bytes(argv[i + 1])
        else:
            raise CommandError(SYNTAX)
        i += 2
    if state not in (b"success", b"failed") or name is None:
        raise CommandError(SYNTAX)
    return Finish(name, state == b"success", message)


# ---- slot ranges ---------------------------------------------------------------------------


def _slot(arg: bytes) -> int:
    v = string2ll(arg)  # src/cluster.c getSlotOrReply
    if v is None or not 0 <= v < SLOTS:
        raise CommandError(ERR_BAD_SLOT)
    return v


def parse_slot_ranges(
    argv: Sequence[bytes], start: int, owner_of: Callable[[int], bytes | None] | None = None
) -> tuple[Ranges, int, bytes | None]:
    """src/cluster_migrateslots.c parseSlotRangesOrReply: integer pairs from ``argv[start]``
    until the first non-integer; returns (ranges, index of the next argument, the one owner of
    every slot). With ``owner_of`` None the ownership checks are skipped (tracking copies)."""
    ranges: list[Range] = []
    owner: bytes | None = None
    i = start
    n = len(argv)
    while i < n:
        if string2ll(argv[i]) is None:
            break  # a non-integer argument is the next keyword
        s = _slot(argv[i])
        if i + 1 >= n:
            raise CommandError(ERR_NO_END_SLOT)
        e = _slot(argv[i + 1])
        if s > e:
            raise err_start_after_end(s, e)
        if owner_of is not None:
            for slot in range(s, e + 1):
                node = owner_of(slot)
                if node is None:
                    raise err_no_node(slot)
                if owner is None:
                    owner = node
                elif owner != node:
                    raise CommandError(ERR_SPAN_SHARDS)
        for ps, pe in ranges:
            if e >= ps and s <= pe:
                raise err_overlap(s, e, ps, pe)
        ranges.append((s, e))
        i += 2
    if not ranges:
        raise CommandError(ERR_NO_RANGES)
    return tuple(ranges), i, owner


def ranges_text(ranges: Ranges) -> bytes:
    """``"s-e s-e"`` as GETSLOTMIGRATIONS shows it (representSlotRangeList)."""
    return b" ".join(b"%d-%d" % r for r in ranges)


def ranges_overlap(a: Ranges, b: Ranges) -> bool:
    return any(ae >= bs and as_ <= be for as_, ae in a for bs, be in b)


def in_ranges(slot: int, ranges: Ranges) -> bool:
    return any(s <= slot <= e for s, e in ranges)
