"""Hashes with Valkey 9 per-field TTLs (src/t_hash.c, spec valkey9.md section 1).

How this works: a :class:`Hash` is a dict ``data`` (field -> value, in insertion order, which is
the listpack order Valkey replies in) and a dict ``expires`` (volatile field -> absolute ms).
``listpack`` says which encoding Valkey would use: new hashes start as listpack and convert to
hashtable when they grow past ``hash-max-listpack-entries`` / ``-value`` or get any field TTL;
the conversion is sticky (src/t_hash.c hashTypeConvert has no way back).

A field is logically expired when ``now > expiry`` (src/expire.c timestampIsExpired); such fields
are hidden from every lookup but stay stored (HLEN, RDB and AOF rewrite still see them) until
the active field expiry job or a command overwriting/deleting them reclaims them. Readers pass
``now = -1`` to see expired fields (while loading, src/t_hash.c hashHashtableTypeValidate).
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.types.base import TypeInfo, register
from persistence.records import HashValue, Value

NO_EXPIRY_CHECK = -1  # ``now`` that makes no field expired


class Hash:
    __slots__ = ("data", "expires", "listpack")

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.expires: dict[bytes, int] = {}  # only ever non-empty on hashtable-encoded hashes
        self.listpack = True

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Hash({self.data!r}, expires={self.expires!r}, listpack={self.listpack})"

    # -- reads that hide expired fields ---------------------------------------------------
    def get(self, field: bytes, now: int) -> bytes | None:
        v = self.data.get(field)
        if v is not None and self.expires:
            e = self.expires.get(field)
            if e is not None and now > e:
                return None
        return v

    def is_expired(self, field: bytes, now: int) -> bool:
        """True if ``field`` is stored but logically expired."""
        e = self.expires.get(field)
        return e is not None and now > e

    def items(self, now: int) -> Iterator[tuple[bytes, bytes]]:
        if not self.expires:
            yield from self.data.items()
            return
        exp = self.expires
        for f, v in self.data.items():
            e = exp.get(f)
            if e is None or now <= e:
                yield f, v

    # -- encoding -------------------------------------------------------------------------
    def convert(self) -> None:
        self.listpack = False

    # -- records --------------------------------------------------------------------------
    def copy(self) -> Hash:
        h = Hash()
        h.data = dict(self.data)
        h.expires = dict(self.expires)
        h.listpack = self.listpack
        return h


# the defaults of valkey-server 9.1.2 (src/config.c); the command module passes the live config
MAX_LISTPACK_ENTRIES = 512
MAX_LISTPACK_VALUE = 64


def encoding(value: Hash) -> str:
    return "listpack" if value.listpack else "hashtable"


def _to_record(value: Hash) -> Value:
    # expired-not-yet-reclaimed fields are included with their past expiry (spec 1.8 / 1.9)
    return HashValue(list(value.data.items()), dict(value.expires))


def _from_record(value: Value) -> Hash:
    assert isinstance(value, HashValue)
    h = Hash()
    h.data = dict(value.items)
    if value.expires:
        # src/rdb.c: RDB_TYPE_HASH_2 always loads as a hashtable
        h.expires = {f: ms for f, ms in value.expires.items() if f in h.data}
        h.listpack = False
    else:
        # src/rdb.c rdbLoadObject: small hashes load as listpack
        h.listpack = len(h.data) <= MAX_LISTPACK_ENTRIES and all(
            len(f) <= MAX_LISTPACK_VALUE and len(v) <= MAX_LISTPACK_VALUE for f, v in h.data.items()
        )
    return h


register(TypeInfo("hash", Hash, _to_record, _from_record, encoding, Hash.copy))
