"""Cross-slot commands of an AOF replayed into a cluster, as their per-slot effects.

A cluster refuses a command whose keys hash to different slots (src/cluster.c getNodeByQuery:
CROSSSLOT), but an AOF of a standalone server is full of them. An AOF holds the *propagated*
forms, i.e. commands that succeeded on the source, so each one is replaced by single-slot
commands with the same effect on a target in the same state:

- split without waiting (:func:`split_by_slot`): MSET/MSETNX -> MSET per slot (an MSETNX in an
  AOF succeeded: every key was set), DEL/UNLINK/TOUCH per slot, SMOVE src dst m -> SREM src m +
  SADD dst m (in the AOF only when m was in src);
- executed one by one, every connection drained first so they see all earlier commands
  (:class:`CrossSlotRunner`): RENAME/RENAMENX a b -> DUMP a + PEXPIRETIME a on a's node,
  RESTORE b <abs-ms> payload REPLACE ABSTTL on b's node, DEL a (RENAME keeps the TTL; a RENAMENX
  in an AOF succeeded, so it is a RENAME); COPY -> DUMP/RESTORE ... REPLACE (a COPY in an AOF
  copied); LMOVE/RPOPLPUSH/BLMOVE/BRPOPLPUSH -> LPOP/RPOP on the source node, then the element
  LPUSH/RPUSH on the destination's (TYPE checked first, so nothing is popped for a push that
  would fail); one-destination writers (SINTERSTORE, SUNIONSTORE, SDIFFSTORE, ZUNIONSTORE,
  ZINTERSTORE, ZDIFFSTORE, ZRANGESTORE, GEOSEARCHSTORE, BITOP, PFMERGE, SORT ... STORE,
  GEORADIUS ... STORE) -> every source key in another slot is copied by DUMP/RESTORE to a
  temporary key in the destination's slot, the command runs there on the copies and the copies
  are deleted: the server computes the result itself from the same inputs, so it is exact for
  every option (WEIGHTS, AGGREGATE, BYSCORE ...) without reimplementing any of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from persistence.crc import key_slot
from persistence.resp import Bulk, Error, Frame, Integer, SimpleString
from tools.replay_cluster import ClusterMap, parse_redirect
from tools.replay_conn import Conn, ReplayConnError

TMP = b"valkey-aof-replay:tmp:"

# one written key (the destination) computed from the others
DEST_FIRST = {
    b"SINTERSTORE", b"SUNIONSTORE", b"SDIFFSTORE", b"ZUNIONSTORE", b"ZINTERSTORE",
    b"ZDIFFSTORE", b"ZRANGESTORE", b"GEOSEARCHSTORE", b"BITOP", b"PFMERGE",
}  # fmt: skip
DEST_LAST = {b"SORT", b"GEORADIUS", b"GEORADIUSBYMEMBER"}
MOVES = {b"LMOVE", b"BLMOVE", b"RPOPLPUSH", b"BRPOPLPUSH"}
RENAMES = {b"RENAME", b"RENAMENX"}
HANDLED = DEST_FIRST | DEST_LAST | MOVES | RENAMES | {b"COPY"}


def split_by_slot(argv: list[bytes]) -> list[tuple[int, list[bytes]]] | None:
    """A cross-slot command as independent single-slot commands (in key order), or None."""
    name = argv[0].upper()
    if name == b"SMOVE" and len(argv) == 4:
        return [
            (key_slot(argv[1]), [b"SREM", argv[1], argv[3]]),
            (key_slot(argv[2]), [b"SADD", argv[2], argv[3]]),
        ]
    step = {b"MSET": 2, b"MSETNX": 2, b"DEL": 1, b"UNLINK": 1, b"TOUCH": 1}.get(name)
    if step is None or len(argv) < 2 or (len(argv) - 1) % step:
        return None
    out_name = b"MSET" if name == b"MSETNX" else argv[0]
    groups: dict[int, list[bytes]] = {}
    for i in range(1, len(argv), step):
        groups.setdefault(key_slot(argv[i]), []).extend(argv[i : i + step])
    return [(slot, [out_name, *args]) for slot, args in groups.items()]


def handled(argv: list[bytes]) -> bool:
    return argv[0].upper() in HANDLED


def _err(frame: Frame) -> str | None:
    return frame.message.decode(errors="replace") if isinstance(frame, Error) else None


class CrossSlotRunner:
    """Runs one cross-slot command as its single-slot effects, synchronously."""

    def __init__(self, cmap: ClusterMap, multi_db: bool) -> None:
        self.map = cmap
        self.multi_db = multi_db
        self._tags: dict[int, bytes] = {}
        self.tmp_seq = 0

    # -- one routed, synchronous call ----------------------------------------------------------
    def _select(self, conn: Conn, db: int) -> None:
        if self.multi_db and conn.db != db:
            conn.call_ok("SELECT", db)
            conn.db = db

    def call(self, key: bytes, db: int, *argv: bytes | str | int) -> Frame:
        """``argv`` on the node serving ``key``'s slot, following MOVED/ASK/TRYAGAIN."""
        slot = key_slot(key)
        name = self.map.node_of(slot)
        for _ in range(10):
            conn = self.map.conn(name)
            self._select(conn, db)
            reply = conn.call(*argv)
            msg = _err(reply)
            if msg is None:
                return reply
            redirect = parse_redirect(msg)
            if redirect is not None and redirect[0] == "MOVED":
                self.map.refresh()
                name = self.map.node_of(slot)
                continue
            if redirect is not None:  # ASK: this one command on the importing node
                conn = self.map.conn(redirect[2])
                self._select(conn, db)
                conn.call_ok("ASKING")
                return conn.call(*argv)
            if msg.startswith(("TRYAGAIN", "CLUSTERDOWN")):
                time.sleep(0.1)
                continue
            return reply
        raise ReplayConnError(f"the cluster keeps redirecting {argv[0]!r} for slot {slot}")

    # -- helpers -----------------------------------------------------------------------------
    def _dump(self, key: bytes, db: int) -> tuple[bytes, int] | None:
        """(payload, absolute expiry ms or 0) of ``key``; None when it does not exist."""
        payload = self.call(key, db, "DUMP", key)
        if not isinstance(payload, Bulk) or payload.value is None:
            if isinstance(payload, Error):
                raise _Failed(_err(payload) or "")
            return None
        at = self.call(key, db, "PEXPIRETIME", key)
        expire = at.value if isinstance(at, Integer) and at.value > 0 else 0
        return payload.value, expire

    def _restore(self, key: bytes, db: int, dumped: tuple[bytes, int]) -> None:
        payload, expire = dumped
        argv: list[bytes | str | int] = ["RESTORE", key, expire, payload, "REPLACE"]
        if expire:
            argv.append("ABSTTL")
        reply = self.call(key, db, *argv)
        if isinstance(reply, Error):
            raise _Failed(_err(reply) or "")

    def tmp_key(self, slot: int) -> bytes:
        """A fresh key name in ``slot`` (a hash tag that hashes there)."""
        tag = self._tags.get(slot)
        if tag is None:
            i = 0
            while key_slot(b"%d" % i) != slot:
                i += 1
            tag = self._tags[slot] = b"%d" % i
        self.tmp_seq += 1
        return b"{" + tag + b"}" + TMP + b"%d" % self.tmp_seq

    # -- the commands ------------------------------------------------------------------------
    def run(self, argv: list[bytes], db: int) -> str | None:
        """Apply ``argv``'s effect; an error text (as the target said it) or None."""
        name = argv[0].upper()
        try:
            if name in RENAMES and len(argv) == 3:
                return self._rename(argv, db)
            if name == b"COPY" and len(argv) >= 3:
                return self._copy(argv, db)
            if name in MOVES:
                return self._move(name, argv, db)
            if name in DEST_FIRST or name in DEST_LAST:
                return self._colocated(name, argv, db)
        except _Failed as e:
            return str(e)
        return f"ERR {name.decode(errors='replace')} across slots cannot be replayed on a cluster"

    def _rename(self, argv: list[bytes], db: int) -> str | None:
        src, dst = argv[1], argv[2]
        dumped = self._dump(src, db)
        if dumped is None:
            return "ERR no such key"
        self._restore(dst, db, dumped)
        return _err(self.call(src, db, "DEL", src))

    def _copy(self, argv: list[bytes], db: int) -> str | None:
        src, dst = argv[1], argv[2]
        to_db = db
        i = 3
        while i < len(argv):
            if argv[i].upper() == b"DB" and i + 1 < len(argv):
                to_db = int(argv[i + 1])
                i += 1
            i += 1
        dumped = self._dump(src, db)
        if dumped is None:
            return None  # COPY of a missing key does nothing
        self._restore(dst, to_db, dumped)
        return None

    def _move(self, name: bytes, argv: list[bytes], db: int) -> str | None:
        if name in (b"RPOPLPUSH", b"BRPOPLPUSH") and len(argv) >= 3:
            wherefrom, whereto = b"RIGHT", b"LEFT"
        elif len(argv) >= 5:
            wherefrom, whereto = argv[3].upper(), argv[4].upper()
        else:
            return "ERR wrong number of arguments"
        src, dst = argv[1], argv[2]
        kind = self.call(dst, db, "TYPE", dst)
        if isinstance(kind, SimpleString) and kind.value not in (b"none", b"list"):
            return "WRONGTYPE Operation against a key holding the wrong kind of value"
        elem = self.call(src, db, "LPOP" if wherefrom == b"LEFT" else "RPOP", src)
        if isinstance(elem, Error):
            return _err(elem)
        if not isinstance(elem, Bulk) or elem.value is None:
            return None  # an empty source: the move did nothing
        return _err(self.call(dst, db, "LPUSH" if whereto == b"LEFT" else "RPUSH", dst, elem.value))

    def _colocated(self, name: bytes, argv: list[bytes], db: int) -> str | None:
        keys = self.map.key_positions(argv)
        if name in DEST_LAST:  # SORT/GEORADIUS ... STORE|STOREDIST dest: the keyword decides
            up = [a.upper() for a in argv]
            at = [i + 1 for i, a in enumerate(up[:-1]) if a in (b"STORE", b"STOREDIST")]
            keys = sorted({*keys[:1], *at})
        if not keys:
            return f"ERR {name.decode()}: no keys found"
        dest_at = keys[-1] if name in DEST_LAST else keys[0]
        dest_slot = key_slot(argv[dest_at])
        out = list(argv)
        temps: list[bytes] = []
        copied: dict[bytes, bytes] = {}
        try:
            for k in keys:
                key = argv[k]
                if k == dest_at or key_slot(key) == dest_slot:
                    continue
                if key in copied:
                    out[k] = copied[key]
                    continue
                tmp = copied[key] = self.tmp_key(dest_slot)
                temps.append(tmp)
                dumped = self._dump(key, db)
                if dumped is not None:
                    self._restore(tmp, db, (dumped[0], 0))
                out[k] = tmp
            return _err(self.call(argv[dest_at], db, *out))
        finally:
            if temps:
                self.call(argv[dest_at], db, "DEL", *temps)


class _Failed(Exception):
    pass


SyncHook = Callable[[list[bytes], int], str | None]
