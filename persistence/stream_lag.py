"""A consumer group's lag and a stream ID's logical read counter (src/t_stream.c).

Shared by the engine (XINFO GROUPS / XINFO STREAM FULL, XREADGROUP's entries_read) and the
tools' JSON view. IDs are ``(ms, seq)`` tuples; ``None`` stands for Valkey's
``SCG_INVALID_ENTRIES_READ`` (an unknown counter).
"""

from __future__ import annotations

Id = tuple[int, int]

ZERO: Id = (0, 0)
MAX: Id = (2**64 - 1, 2**64 - 1)


def range_has_tombstones(length: int, max_deleted_id: Id, start: Id, end: Id = MAX) -> bool:
    """streamRangeHasTombstones: may [start, end] hold a deleted entry?"""
    if not length or max_deleted_id == ZERO:
        return False
    return start <= max_deleted_id <= end


def estimate_distance(
    entries_added: int, length: int, first_id: Id, last_id: Id, max_deleted_id: Id, sid: Id
) -> int | None:
    """streamEstimateDistanceFromFirstEverEntry: the read counter of ``sid``, or None."""
    if not entries_added:
        return 0
    if not length and sid <= last_id:
        return entries_added
    # src/t_stream.c: an ID before the last tombstone has an unknown counter
    if sid != ZERO and sid < max_deleted_id:
        return None
    if sid == last_id:
        return entries_added
    if sid > last_id:
        return None
    if max_deleted_id == ZERO or max_deleted_id < first_id:
        if sid < first_id:
            return entries_added - length
        if sid == first_id:
            return entries_added - length + 1
    return None


def group_lag(
    entries_added: int,
    length: int,
    first_id: Id,
    last_id: Id,
    max_deleted_id: Id,
    group_last_id: Id,
    entries_read: int,
) -> int | None:
    """streamReplyWithCGLag: entries not yet delivered to the group, None when unknown.
    ``entries_read`` is -1 when invalid (SCG_INVALID_ENTRIES_READ)."""
    if not entries_added:
        return 0
    if entries_read >= 0 and not range_has_tombstones(length, max_deleted_id, group_last_id):
        return entries_added - entries_read
    read = estimate_distance(
        entries_added, length, first_id, last_id, max_deleted_id, group_last_id
    )
    return None if read is None else entries_added - read
