"""Loading and skipping one RDB value (everything after the key) for every non-stream type.

``loader_table(magic)`` gives ``{type byte: loader}``; a loader reads the value at the cursor and
returns ``(value, encoding)``, or None for an empty collection (Valkey skips those with a log line,
src/rdb.c ``emptykey``). ``skipper_table(magic)`` gives functions that step over a value without
decoding it (used by filters). Type 22 means Valkey ``HASH_2`` in a ``VALKEY`` file and Redis 7.4's
``HASH_METADATA_PRE_GA`` in a ``REDIS`` file; 23-25 exist only in ``REDIS`` files.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from persistence.rdb import constants as C
from persistence.rdb import decode as D
from persistence.rdb.cursor import Cursor
from persistence.rdb.streams_decode import load_stream, skip_stream
from persistence.records import (
    HashValue,
    ListValue,
    SetValue,
    StringValue,
    Value,
    ZSetValue,
)

Loaded = tuple[Value, str] | None
Loader = Callable[[Cursor, int], Loaded]
Skipper = Callable[[Cursor, int], None]

MODULE_CHARSET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"  # src/module.c


def module_type_name(module_id: int) -> str:
    """The 9-character module type name of a 64-bit module id (src/module.c moduleTypeNameByID)."""
    mid = module_id >> 10
    chars = []
    for _ in range(9):
        chars.append(MODULE_CHARSET[mid & 63])
        mid >>= 6
    return bytes(reversed(chars)).decode("ascii")


_INT_RE = re.compile(rb"-?[1-9][0-9]{0,19}|0")


def string_encoding(value: bytes) -> str:
    """OBJECT ENCODING a loaded string gets (src/object.c tryObjectEncoding, string2ll)."""
    n = len(value)
    if (
        n <= 20
        and n
        and (value[0] == 45 or 48 <= value[0] <= 57)  # "-" or a digit: worth the full check
        and _INT_RE.fullmatch(value)
        and -(1 << 63) <= int(value) < (1 << 63)
    ):
        return "int"
    return "embstr" if n <= 44 else "raw"  # OBJ_ENCODING_EMBSTR_SIZE_LIMIT


def _blob(cur: Cursor) -> tuple[bytes, int]:
    pos = cur.pos
    return cur.string(), pos


def _decode(cur: Cursor, pos: int, fn: Callable[[bytes], object], blob: bytes, what: str) -> object:
    try:
        return fn(blob)
    except D.BlobError as e:
        raise cur.error(f"{what} integrity check failed: {e}", pos) from None


# ---- strings, plain collections ---------------------------------------------------------------


def _string(cur: Cursor, t: int) -> Loaded:
    v = cur.string()
    return StringValue(v), string_encoding(v)


def _list(cur: Cursor, t: int) -> Loaded:
    n = cur.length()
    s = cur.string
    items = [s() for _ in range(n)]
    return (ListValue(items), "quicklist") if items else None


def _set(cur: Cursor, t: int) -> Loaded:
    n = cur.length()
    s = cur.string
    members = [s() for _ in range(n)]
    return (SetValue(members), "hashtable") if members else None


def _zset(cur: Cursor, t: int) -> Loaded:
    n = cur.length()
    s = cur.string
    score = cur.string_double if t == C.TYPE_ZSET else cur.f64le
    items = []
    for _ in range(n):
        m = s()
        items.append((m, score()))
    return (ZSetValue(items), "skiplist") if items else None


def _hash(cur: Cursor, t: int) -> Loaded:
    n = cur.length()
    s = cur.string
    items = []
    for _ in range(n):
        f = s()
        items.append((f, s()))
    return (HashValue(items), "hashtable") if items else None


def _hash_2(cur: Cursor, t: int) -> Loaded:
    # Valkey 9 RDB_TYPE_HASH_2 (src/rdb.c): field, value, int64 LE expiry ms (-1 = none)
    n = cur.length()
    s = cur.string
    ms = cur.i64le
    items = []
    expires: dict[bytes, int] = {}
    for _ in range(n):
        pos = cur.pos
        f = s()
        v = s()
        when = ms()
        if when != -1:
            if when < -1:
                raise cur.error(f"Invalid hash field expiry {when}", pos)
            expires[f] = when
        items.append((f, v))
    return (HashValue(items, expires), "hashtable") if items else None


def _redis_hash_metadata(cur: Cursor, t: int) -> Loaded:
    # Redis 7.4 src/rdb.c: [HASH_METADATA: u64 LE minExpire] len, then (len ttl, field, value);
    # ttl 0 = none; HASH_METADATA stores ttl + minExpire - 1, the PRE_GA form the absolute ms.
    min_expire = cur.i64le() if t == C.TYPE_REDIS_HASH_METADATA else 0
    n = cur.length()
    s = cur.string
    items = []
    expires: dict[bytes, int] = {}
    for _ in range(n):
        ttl = cur.length()
        f = s()
        items.append((f, s()))
        if ttl:
            expires[f] = ttl + min_expire - 1 if t == C.TYPE_REDIS_HASH_METADATA else ttl
    return (HashValue(items, expires), "hashtable") if items else None


def _redis_hash_listpack_ex(cur: Cursor, t: int) -> Loaded:
    # Redis 7.4 src/rdb.c: [LISTPACK_EX: u64 LE minExpire] + listpack of field, value, ttl
    # triplets; ttl is absolute ms, 0 = none (src/t_hash.c HASH_LP_NO_TTL).
    if t == C.TYPE_REDIS_HASH_LISTPACK_EX:
        cur.i64le()
    blob, pos = _blob(cur)
    els: list[bytes | int] = _decode(cur, pos, D.lp_items, blob, "Hash listpack")  # type: ignore[assignment]
    if len(els) % 3:
        raise cur.error("Hash listpack integrity check failed: not field/value/ttl triplets", pos)
    items = []
    expires: dict[bytes, int] = {}
    for i in range(0, len(els), 3):
        f, v, ttl = els[i], els[i + 1], els[i + 2]
        fb = b"%d" % f if isinstance(f, int) else f
        items.append((fb, b"%d" % v if isinstance(v, int) else v))
        if not isinstance(ttl, int):
            raise cur.error("Hash listpack integrity check failed: TTL is not an integer", pos)
        if ttl:
            expires[fb] = ttl
    return (HashValue(items, expires), "hashtable") if items else None


# ---- blob encodings ---------------------------------------------------------------------------


def _zipmap(cur: Cursor, t: int) -> Loaded:
    blob, pos = _blob(cur)
    items: list[tuple[bytes, bytes]] = _decode(cur, pos, D.zipmap_pairs, blob, "Zipmap")  # type: ignore[assignment]
    return (HashValue(items), "listpack") if items else None


def _list_ziplist(cur: Cursor, t: int) -> Loaded:
    blob, pos = _blob(cur)
    items: list[bytes] = _decode(cur, pos, D.ziplist_strings, blob, "List ziplist")  # type: ignore[assignment]
    return (ListValue(items), "quicklist") if items else None


def _intset(cur: Cursor, t: int) -> Loaded:
    blob, pos = _blob(cur)
    members: list[bytes] = _decode(cur, pos, D.intset_members, blob, "Intset")  # type: ignore[assignment]
    return (SetValue(members), "intset") if members else None


def _set_listpack(cur: Cursor, t: int) -> Loaded:
    blob, pos = _blob(cur)
    members: list[bytes] = _decode(cur, pos, D.lp_strings, blob, "Set listpack")  # type: ignore[assignment]
    return (SetValue(members), "listpack") if members else None


def _zset_blob(cur: Cursor, t: int) -> Loaded:
    blob, pos = _blob(cur)
    listpack = t == C.TYPE_ZSET_LISTPACK
    what = "Zset listpack" if listpack else "Zset ziplist"
    try:
        els = D.lp_items(blob) if listpack else D.ziplist_items(blob, False)
        items = D.zset_pairs(els, what)
    except D.BlobError as e:
        raise cur.error(f"{what} integrity check failed: {e}", pos) from None
    return (ZSetValue(items), "listpack") if items else None


def _hash_blob(cur: Cursor, t: int) -> Loaded:
    blob, pos = _blob(cur)
    fn = D.lp_strings if t == C.TYPE_HASH_LISTPACK else D.ziplist_strings
    what = "Hash listpack" if t == C.TYPE_HASH_LISTPACK else "Hash ziplist"
    try:
        items = D.pairs(fn(blob), what)
    except D.BlobError as e:
        raise cur.error(f"{what} integrity check failed: {e}", pos) from None
    return (HashValue(items), "listpack") if items else None


def _quicklist(cur: Cursor, t: int) -> Loaded:
    # src/rdb.c: QUICKLIST = len + ziplist blobs; QUICKLIST_2 = len + (container, blob) where
    # container 1 = PLAIN (one element as is), 2 = PACKED (a listpack).
    n = cur.length()
    items: list[bytes] = []
    packed_nodes = 0
    plain_nodes = 0
    for _ in range(n):
        container = C.QUICKLIST_NODE_CONTAINER_PACKED
        if t == C.TYPE_LIST_QUICKLIST_2:
            cpos = cur.pos
            container = cur.length()
            if container not in (
                C.QUICKLIST_NODE_CONTAINER_PACKED,
                C.QUICKLIST_NODE_CONTAINER_PLAIN,
            ):
                raise cur.error("Quicklist integrity check failed.", cpos)
        blob, pos = _blob(cur)
        if not blob:
            raise cur.error("Quicklist node is empty", pos)
        if container == C.QUICKLIST_NODE_CONTAINER_PLAIN:
            items.append(blob)
            plain_nodes += 1
            continue
        fn = D.lp_strings if t == C.TYPE_LIST_QUICKLIST_2 else D.ziplist_strings
        what = "Listpack" if t == C.TYPE_LIST_QUICKLIST_2 else "Ziplist"
        node: list[bytes] = _decode(cur, pos, fn, blob, what)  # type: ignore[assignment]
        if node:  # src/rdb.c: empty nodes are silently skipped
            items.extend(node)
            packed_nodes += 1
    if not items:
        return None
    enc = "listpack" if packed_nodes == 1 and plain_nodes == 0 else "quicklist"
    return ListValue(items), enc


def _stream(cur: Cursor, t: int) -> Loaded:
    return load_stream(cur, t), "stream"


# ---- skipping ---------------------------------------------------------------------------------


def _skip_string(cur: Cursor, t: int) -> None:
    cur.skip_string()


def _skip_strings(per: int) -> Skipper:
    def skip(cur: Cursor, t: int) -> None:
        sk = cur.skip_string
        for _ in range(cur.length() * per):
            sk()

    return skip


def _skip_zset(cur: Cursor, t: int) -> None:
    sk = cur.skip_string
    for _ in range(cur.length()):
        sk()
        if t == C.TYPE_ZSET:
            cur.skip_string_double()
        else:
            cur.skip(8)


def _skip_hash_2(cur: Cursor, t: int) -> None:
    sk = cur.skip_string
    for _ in range(cur.length()):
        sk()
        sk()
        cur.skip(8)


def _skip_redis_hash_metadata(cur: Cursor, t: int) -> None:
    if t == C.TYPE_REDIS_HASH_METADATA:
        cur.skip(8)
    sk = cur.skip_string
    for _ in range(cur.length()):
        cur.length()
        sk()
        sk()


def _skip_redis_hash_listpack_ex(cur: Cursor, t: int) -> None:
    if t == C.TYPE_REDIS_HASH_LISTPACK_EX:
        cur.skip(8)
    cur.skip_string()


def _skip_quicklist(cur: Cursor, t: int) -> None:
    for _ in range(cur.length()):
        if t == C.TYPE_LIST_QUICKLIST_2:
            cur.length()
        cur.skip_string()


def skip_module_value(cur: Cursor) -> None:
    """Step over opcode-tagged module fields up to their EOF (src/rdb.c rdbLoadCheckModuleValue)."""
    while True:
        pos = cur.pos
        op = cur.length()
        if op == C.MODULE_OPCODE_EOF:
            return
        if op in (C.MODULE_OPCODE_SINT, C.MODULE_OPCODE_UINT):
            cur.length()
        elif op == C.MODULE_OPCODE_FLOAT:
            cur.skip(4)
        elif op == C.MODULE_OPCODE_DOUBLE:
            cur.skip(8)
        elif op == C.MODULE_OPCODE_STRING:
            cur.skip_string()
        else:
            raise cur.error(f"Unknown module opcode {op} in module value", pos)


def _skip_module_2(cur: Cursor, t: int) -> None:
    cur.length()  # module id
    skip_module_value(cur)


_COMMON_LOADERS: dict[int, Loader] = {
    C.TYPE_STRING: _string,
    C.TYPE_LIST: _list,
    C.TYPE_SET: _set,
    C.TYPE_ZSET: _zset,
    C.TYPE_HASH: _hash,
    C.TYPE_ZSET_2: _zset,
    C.TYPE_HASH_ZIPMAP: _zipmap,
    C.TYPE_LIST_ZIPLIST: _list_ziplist,
    C.TYPE_SET_INTSET: _intset,
    C.TYPE_ZSET_ZIPLIST: _zset_blob,
    C.TYPE_HASH_ZIPLIST: _hash_blob,
    C.TYPE_LIST_QUICKLIST: _quicklist,
    C.TYPE_STREAM_LISTPACKS: _stream,
    C.TYPE_HASH_LISTPACK: _hash_blob,
    C.TYPE_ZSET_LISTPACK: _zset_blob,
    C.TYPE_LIST_QUICKLIST_2: _quicklist,
    C.TYPE_STREAM_LISTPACKS_2: _stream,
    C.TYPE_SET_LISTPACK: _set_listpack,
    C.TYPE_STREAM_LISTPACKS_3: _stream,
}

_COMMON_SKIPPERS: dict[int, Skipper] = {
    C.TYPE_STRING: _skip_string,
    C.TYPE_LIST: _skip_strings(1),
    C.TYPE_SET: _skip_strings(1),
    C.TYPE_ZSET: _skip_zset,
    C.TYPE_HASH: _skip_strings(2),
    C.TYPE_ZSET_2: _skip_zset,
    C.TYPE_MODULE_2: _skip_module_2,
    C.TYPE_HASH_ZIPMAP: _skip_string,
    C.TYPE_LIST_ZIPLIST: _skip_string,
    C.TYPE_SET_INTSET: _skip_string,
    C.TYPE_ZSET_ZIPLIST: _skip_string,
    C.TYPE_HASH_ZIPLIST: _skip_string,
    C.TYPE_LIST_QUICKLIST: _skip_quicklist,
    C.TYPE_STREAM_LISTPACKS: skip_stream,
    C.TYPE_HASH_LISTPACK: _skip_string,
    C.TYPE_ZSET_LISTPACK: _skip_string,
    C.TYPE_LIST_QUICKLIST_2: _skip_quicklist,
    C.TYPE_STREAM_LISTPACKS_2: skip_stream,
    C.TYPE_SET_LISTPACK: _skip_string,
    C.TYPE_STREAM_LISTPACKS_3: skip_stream,
}

_VALKEY_LOADERS = {**_COMMON_LOADERS, C.TYPE_HASH_2: _hash_2}
_VALKEY_SKIPPERS = {**_COMMON_SKIPPERS, C.TYPE_HASH_2: _skip_hash_2}
_REDIS_LOADERS = {
    **_COMMON_LOADERS,
    C.TYPE_REDIS_HASH_METADATA_PRE_GA: _redis_hash_metadata,
    C.TYPE_REDIS_HASH_LISTPACK_EX_PRE_GA: _redis_hash_listpack_ex,
    C.TYPE_REDIS_HASH_METADATA: _redis_hash_metadata,
    C.TYPE_REDIS_HASH_LISTPACK_EX: _redis_hash_listpack_ex,
}
_REDIS_SKIPPERS = {
    **_COMMON_SKIPPERS,
    C.TYPE_REDIS_HASH_METADATA_PRE_GA: _skip_redis_hash_metadata,
    C.TYPE_REDIS_HASH_LISTPACK_EX_PRE_GA: _skip_redis_hash_listpack_ex,
    C.TYPE_REDIS_HASH_METADATA: _skip_redis_hash_metadata,
    C.TYPE_REDIS_HASH_LISTPACK_EX: _skip_redis_hash_listpack_ex,
}

_TYPE_NAMES = {
    C.TYPE_STRING: "string",
    C.TYPE_LIST: "list",
    C.TYPE_SET: "set",
    C.TYPE_ZSET: "zset",
    C.TYPE_HASH: "hash",
    C.TYPE_ZSET_2: "zset",
    C.TYPE_HASH_ZIPMAP: "hash",
    C.TYPE_LIST_ZIPLIST: "list",
    C.TYPE_SET_INTSET: "set",
    C.TYPE_ZSET_ZIPLIST: "zset",
    C.TYPE_HASH_ZIPLIST: "hash",
    C.TYPE_LIST_QUICKLIST: "list",
    C.TYPE_STREAM_LISTPACKS: "stream",
    C.TYPE_HASH_LISTPACK: "hash",
    C.TYPE_ZSET_LISTPACK: "zset",
    C.TYPE_LIST_QUICKLIST_2: "list",
    C.TYPE_STREAM_LISTPACKS_2: "stream",
    C.TYPE_SET_LISTPACK: "set",
    C.TYPE_STREAM_LISTPACKS_3: "stream",
    22: "hash",
    23: "hash",
    24: "hash",
    25: "hash",
}


def loader_table(redis_magic: bool) -> dict[int, Loader]:
    return _REDIS_LOADERS if redis_magic else _VALKEY_LOADERS


def skipper_table(redis_magic: bool) -> dict[int, Skipper]:
    return _REDIS_SKIPPERS if redis_magic else _VALKEY_SKIPPERS


def type_name_table(redis_magic: bool) -> dict[int, str]:
    """Type byte -> TypeName ("module" for module values)."""
    names = dict(_TYPE_NAMES)
    if not redis_magic:
        for t in (23, 24, 25):
            del names[t]
    names[C.TYPE_MODULE_2] = "module"
    names[C.TYPE_MODULE_PRE_GA] = "module"
    return names
