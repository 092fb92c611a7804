"""List, set and hash commands of the minimal AOF applier (src/t_list.c, t_set.c, t_hash.c)."""

from __future__ import annotations

from tools.applier_base import (
    LLONG_MAX,
    LLONG_MIN,
    SYNTAX,
    ApplyError,
    HashObj,
    Keyspace,
    ListObj,
    SetObj,
    command,
    expire_condition,
    expire_flags,
    format_double,
    parse_float,
    parse_int,
    upper,
)

# ---- lists ---------------------------------------------------------------------------------


def _list(ks: Keyspace, key: bytes) -> ListObj | None:
    v = ks.get(key, ListObj)
    assert v is None or isinstance(v, ListObj)
    return v


def _push(ks: Keyspace, argv: list[bytes], left: bool, only_existing: bool) -> None:
    lst = _list(ks, argv[1])
    if lst is None:
        if only_existing:
            return
        lst = ListObj()
        ks.put(argv[1], lst)
    for v in argv[2:]:
        if left:
            lst.insert(0, v)
        else:
            lst.append(v)


@command("RPUSH", -3)
def _rpush(ks: Keyspace, argv: list[bytes]) -> None:
    _push(ks, argv, False, False)


@command("LPUSH", -3)
def _lpush(ks: Keyspace, argv: list[bytes]) -> None:
    _push(ks, argv, True, False)


@command("RPUSHX", -3)
def _rpushx(ks: Keyspace, argv: list[bytes]) -> None:
    _push(ks, argv, False, True)


@command("LPUSHX", -3)
def _lpushx(ks: Keyspace, argv: list[bytes]) -> None:
    _push(ks, argv, True, True)


def _pop(ks: Keyspace, argv: list[bytes], left: bool) -> None:
    if len(argv) > 3:
        raise ApplyError(SYNTAX)
    count = 1
    if len(argv) == 3:
        count = parse_int(argv[2], "ERR value is out of range, must be positive")
        if count < 0:
            raise ApplyError("ERR value is out of range, must be positive")
    lst = _list(ks, argv[1])
    if lst is None:
        return
    if left:
        del lst[:count]
    else:
        del lst[max(0, len(lst) - count) :]
    ks.drop_if_empty(argv[1], lst)


@command("LPOP", -2)
def _lpop(ks: Keyspace, argv: list[bytes]) -> None:
    _pop(ks, argv, True)


@command("RPOP", -2)
def _rpop(ks: Keyspace, argv: list[bytes]) -> None:
    _pop(ks, argv, False)


@command("LSET", 4)
def _lset(ks: Keyspace, argv: list[bytes]) -> None:
    index = parse_int(argv[2])
    lst = _list(ks, argv[1])
    if lst is None:
        raise ApplyError("ERR no such key")
    if not -len(lst) <= index < len(lst):
        raise ApplyError("ERR index out of range")
    lst[index] = argv[3]


@command("LINSERT", 5)
def _linsert(ks: Keyspace, argv: list[bytes]) -> None:
    where = upper(argv[2])
    if where not in ("BEFORE", "AFTER"):
        raise ApplyError(SYNTAX)
    lst = _list(ks, argv[1])
    if lst is None or argv[3] not in lst:
        return
    i = lst.index(argv[3])
    lst.insert(i if where == "BEFORE" else i + 1, argv[4])


@command("LREM", 4)
def _lrem(ks: Keyspace, argv: list[bytes]) -> None:
    count = parse_int(argv[2])
    lst = _list(ks, argv[1])
    if lst is None:
        return
    idx = [i for i, v in enumerate(lst) if v == argv[3]]
    if count > 0:
        idx = idx[:count]
    elif count < 0:
        idx = idx[count:]
    for i in reversed(idx):
        del lst[i]
    ks.drop_if_empty(argv[1], lst)


@command("LTRIM", 4)
def _ltrim(ks: Keyspace, argv: list[bytes]) -> None:
    start, end = parse_int(argv[2]), parse_int(argv[3])
    lst = _list(ks, argv[1])
    if lst is None:
        return
    n = len(lst)
    start = max(0, start + n if start < 0 else start)
    end = end + n if end < 0 else end
    if start > end or start >= n:
        lst.clear()
    else:
        lst[:] = lst[start : min(end, n - 1) + 1]
    ks.drop_if_empty(argv[1], lst)


def _lmove(ks: Keyspace, src: bytes, dst: bytes, from_left: bool, to_left: bool) -> None:
    s = _list(ks, src)
    d = _list(ks, dst)
    if s is None:
        return
    v = s.pop(0 if from_left else -1)
    if d is None:
        d = ListObj()
        ks.put(dst, d)
    if to_left:
        d.insert(0, v)
    else:
        d.append(v)
    ks.drop_if_empty(src, s)


def _side(b: bytes) -> bool:
    u = upper(b)
    if u not in ("LEFT", "RIGHT"):
        raise ApplyError(SYNTAX)
    return u == "LEFT"


@command("LMOVE", 5)
def _lmove_cmd(ks: Keyspace, argv: list[bytes]) -> None:
    _lmove(ks, argv[1], argv[2], _side(argv[3]), _side(argv[4]))


@command("RPOPLPUSH", 3)
def _rpoplpush(ks: Keyspace, argv: list[bytes]) -> None:
    _lmove(ks, argv[1], argv[2], False, True)


# ---- sets ----------------------------------------------------------------------------------


def _set(ks: Keyspace, key: bytes) -> SetObj | None:
    v = ks.get(key, SetObj)
    assert v is None or isinstance(v, SetObj)
    return v


@command("SADD", -3)
def _sadd(ks: Keyspace, argv: list[bytes]) -> None:
    s = _set(ks, argv[1])
    if s is None:
        s = SetObj()
        ks.put(argv[1], s)
    for m in argv[2:]:
        s[m] = None


@command("SREM", -3)
def _srem(ks: Keyspace, argv: list[bytes]) -> None:
    s = _set(ks, argv[1])
    if s is None:
        return
    for m in argv[2:]:
        s.pop(m, None)
    ks.drop_if_empty(argv[1], s)


@command("SMOVE", 4)
def _smove(ks: Keyspace, argv: list[bytes]) -> None:
    src, dst, m = argv[1], argv[2], argv[3]
    s, d = _set(ks, src), _set(ks, dst)
    if s is None or m not in s or src == dst:
        return
    del s[m]
    ks.drop_if_empty(src, s)
    if d is None:
        d = SetObj()
        ks.put(dst, d)
    d[m] = None


def _setop(ks: Keyspace, argv: list[bytes], op: str) -> None:
    """SINTERSTORE/SUNIONSTORE/SDIFFSTORE: the result replaces dst (TTL cleared) or deletes it."""
    sets = [_set(ks, k) for k in argv[2:]]
    if op == "inter":
        if any(s is None for s in sets):
            result = SetObj()
        else:
            first, *rest = sorted((s for s in sets if s is not None), key=len)
            result = SetObj((m, None) for m in first if all(m in r for r in rest))
    elif op == "union":
        result = SetObj()
        for s in sets:
            result.update(s or {})
    else:
        first_set, *others = sets
        result = SetObj(first_set or {})
        for s in others:
            for m in s or {}:
                result.pop(m, None)
    if result:
        ks.put(argv[1], result)
    else:
        ks.delete(argv[1])


@command("SINTERSTORE", -3)
def _sinterstore(ks: Keyspace, argv: list[bytes]) -> None:
    _setop(ks, argv, "inter")


@command("SUNIONSTORE", -3)
def _sunionstore(ks: Keyspace, argv: list[bytes]) -> None:
    _setop(ks, argv, "union")


@command("SDIFFSTORE", -3)
def _sdiffstore(ks: Keyspace, argv: list[bytes]) -> None:
    _setop(ks, argv, "diff")


# ---- hashes --------------------------------------------------------------------------------

NUMFIELDS = "ERR numfields should be greater than 0 and match the provided number of fields"


def _hash(ks: Keyspace, key: bytes) -> HashObj | None:
    v = ks.get(key, HashObj)
    assert v is None or isinstance(v, HashObj)
    return v


def _hash_create(ks: Keyspace, key: bytes) -> HashObj:
    h = _hash(ks, key)
    if h is None:
        h = HashObj()
        ks.put(key, h)
    return h


def _hset_pairs(ks: Keyspace, key: bytes, pairs: list[bytes]) -> None:
    """HSET/HMSET: overwriting a field removes its TTL (spec 1.4)."""
    h = _hash_create(ks, key)
    for i in range(0, len(pairs), 2):
        h.fields[pairs[i]] = pairs[i + 1]
        h.expires.pop(pairs[i], None)


@command("HSET", -4)
@command("HMSET", -4)
def _hset(ks: Keyspace, argv: list[bytes]) -> None:
    if len(argv) % 2:
        name = argv[0].decode("latin-1").lower()
        raise ApplyError(f"ERR wrong number of arguments for '{name}' command")
    _hset_pairs(ks, argv[1], argv[2:])


@command("HSETNX", 4)
def _hsetnx(ks: Keyspace, argv: list[bytes]) -> None:
    h = _hash(ks, argv[1])
    if h is None or argv[2] not in h.fields:
        _hset_pairs(ks, argv[1], argv[2:])


@command("HDEL", -3)
def _hdel(ks: Keyspace, argv: list[bytes]) -> None:
    h = _hash(ks, argv[1])
    if h is None:
        return
    for f in argv[2:]:
        h.fields.pop(f, None)
        h.expires.pop(f, None)
    ks.drop_if_empty(argv[1], h)


@command("HINCRBY", 4)
def _hincrby(ks: Keyspace, argv: list[bytes]) -> None:
    by = parse_int(argv[3])
    h = _hash(ks, argv[1])
    cur = h.fields.get(argv[2]) if h else None
    v = parse_int(cur, "ERR hash value is not an integer") if cur is not None else 0
    if not LLONG_MIN <= v + by <= LLONG_MAX:
        raise ApplyError("ERR increment or decrement would overflow")
    _hash_create(ks, argv[1]).fields[argv[2]] = str(v + by).encode()  # keeps the field TTL


@command("HINCRBYFLOAT", 4)
def _hincrbyfloat(ks: Keyspace, argv: list[bytes]) -> None:
    by = parse_float(argv[3])
    h = _hash(ks, argv[1])
    cur = h.fields.get(argv[2]) if h else None
    v = parse_float(cur, "ERR hash value is not a float") if cur is not None else 0.0
    r = v + by
    if r != r or abs(r) == float("inf"):
        raise ApplyError("ERR increment would produce NaN or Infinity")
    _hash_create(ks, argv[1]).fields[argv[2]] = format_double(r)


def _fields_after(argv: list[bytes], start: int, pairs: bool) -> tuple[int, list[bytes]]:
    """Locate FIELDS scanning from ``start`` (spec 1.2): (index of FIELDS, field arguments)."""
    for i in range(start, len(argv) - 1):
        if upper(argv[i]) == "FIELDS":
            n = parse_int(argv[i + 1])
            rest = argv[i + 2 :]
            if n <= 0 or n * (2 if pairs else 1) != len(rest):
                raise ApplyError(NUMFIELDS)
            return i, rest
    raise ApplyError(NUMFIELDS)


def _hash_time(ks: Keyspace, unit: str, b: bytes, cmd: str) -> int:
    """convertExpireArgumentToUnixTime (src/expire.c): integer >= 0, seconds * 1000, + now."""
    v = parse_int(b)
    bad = ApplyError(f"ERR invalid expire time in '{cmd}' command")
    if v < 0 or (unit in ("EX", "EXAT") and v > LLONG_MAX // 1000):
        raise bad
    if unit in ("EX", "EXAT"):
        v *= 1000
    if unit in ("EX", "PX"):
        v += ks.now()
        if v > LLONG_MAX:
            raise bad
    return v


@command("HSETEX", -6)
def _hsetex(ks: Keyspace, argv: list[bytes]) -> None:
    """HSETEX key [NX|XX] [FNX|FXX] [EX|PX|EXAT|PXAT t|KEEPTTL] FIELDS n f v ... (spec 1.3.1)."""
    fi, rest = _fields_after(argv, 0, True)  # t_hash.c scans from argv[0]
    key_cond = field_cond = time_opt = None
    when: bytes | None = None
    opts = argv[2:fi]
    i = 0
    while i < len(opts):
        o = upper(opts[i])
        if o in ("NX", "XX") and key_cond is None:
            key_cond = o
        elif o in ("FNX", "FXX") and field_cond is None:
            field_cond = o
        elif o == "KEEPTTL" and time_opt is None:
            time_opt = o
        elif o in ("EX", "PX", "EXAT", "PXAT") and time_opt in (None, o) and i + 1 < len(opts):
            time_opt, when = o, opts[i + 1]  # a repeated time option: the last one wins
            i += 1
        else:
            raise ApplyError(SYNTAX)
        i += 1
    h = _hash(ks, argv[1])
    expire = _hash_time(ks, time_opt, when, "hsetex") if when is not None and time_opt else None
    if (key_cond == "NX" and h is not None) or (key_cond == "XX" and h is None):
        return
    names = rest[::2]
    if field_cond == "FNX" and h is not None and any(f in h.fields for f in names):
        return
    if field_cond == "FXX" and (h is None or not all(f in h.fields for f in names)):
        return
    h = _hash_create(ks, argv[1])
    for f, v in zip(rest[::2], rest[1::2]):
        h.fields[f] = v
        if expire is not None:
            h.expires[f] = expire  # while loading a past time is stored (spec 1.1)
        elif time_opt != "KEEPTTL":
            h.expires.pop(f, None)


def _hexpire(ks: Keyspace, argv: list[bytes], unit: str) -> None:
    """HEXPIRE/HPEXPIRE/HEXPIREAT/HPEXPIREAT key t [NX|XX|GT|LT] FIELDS n f ... (spec 1.3.3)."""
    fi, fields = _fields_after(argv, 3, False)
    flags = expire_flags(argv[3:fi])
    when = _hash_time(ks, unit, argv[2], argv[0].decode("latin-1").lower())
    h = _hash(ks, argv[1])
    if h is None:
        return
    for f in fields:
        if f in h.fields and expire_condition(flags, h.expires.get(f, -1), when):
            h.expires[f] = when


@command("HEXPIRE", -6)
def _hexpire_cmd(ks: Keyspace, argv: list[bytes]) -> None:
    _hexpire(ks, argv, "EX")


@command("HPEXPIRE", -6)
def _hpexpire(ks: Keyspace, argv: list[bytes]) -> None:
    _hexpire(ks, argv, "PX")


@command("HEXPIREAT", -6)
def _hexpireat(ks: Keyspace, argv: list[bytes]) -> None:
    _hexpire(ks, argv, "EXAT")


@command("HPEXPIREAT", -6)
def _hpexpireat(ks: Keyspace, argv: list[bytes]) -> None:
    _hexpire(ks, argv, "PXAT")


def _positional_fields(argv: list[bytes]) -> list[bytes]:
    """HPERSIST/HGETDEL: numfields read from argv[3], argv[2] not checked (spec 1.2)."""
    n = parse_int(argv[3])
    if n <= 0 or n != len(argv) - 4:
        raise ApplyError(NUMFIELDS)
    return argv[4:]


@command("HPERSIST", -5)
def _hpersist(ks: Keyspace, argv: list[bytes]) -> None:
    fields = _positional_fields(argv)
    h = _hash(ks, argv[1])
    for f in fields if h else []:
        h.expires.pop(f, None)  # type: ignore[union-attr]


@command("HGETDEL", -5)
def _hgetdel(ks: Keyspace, argv: list[bytes]) -> None:
    fields = _positional_fields(argv)
    h = _hash(ks, argv[1])
    if h is None:
        return
    for f in fields:
        h.fields.pop(f, None)
        h.expires.pop(f, None)
    ks.drop_if_empty(argv[1], h)


@command("HGETEX", -5)
def _hgetex(ks: Keyspace, argv: list[bytes]) -> None:
    """HGETEX key [EX|PX|EXAT|PXAT t|PERSIST] FIELDS n f ... (spec 1.3.2)."""
    fi, fields = _fields_after(argv, 0, False)
    opts = argv[2:fi]
    opt = upper(opts[0]) if opts else None
    if opts and not (
        (opt == "PERSIST" and len(opts) == 1)
        or (opt in ("EX", "PX", "EXAT", "PXAT") and len(opts) == 2)
    ):
        raise ApplyError(SYNTAX)
    h = _hash(ks, argv[1])
    expire = _hash_time(ks, opt, opts[1], "hgetex") if opt and len(opts) == 2 else None
    if h is None or opt is None:
        return
    for f in fields:
        if f in h.fields:
            if expire is not None:
                h.expires[f] = expire
            else:
                h.expires.pop(f, None)
