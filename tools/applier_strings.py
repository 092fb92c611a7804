"""String commands of the minimal AOF applier (src/t_string.c)."""

from __future__ import annotations

from tools.applier_base import (
    LLONG_MAX,
    SYNTAX,
    ApplyError,
    Keyspace,
    command,
    format_double,
    parse_float,
    parse_int,
    upper,
)

PROTO_MAX_BULK_LEN = 512 * 1024 * 1024  # proto-max-bulk-len default (src/config.c)
TOO_BIG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"


# ---- strings -------------------------------------------------------------------------------


def _get_str(ks: Keyspace, key: bytes) -> bytes | None:
    v = ks.get(key, bytes)
    assert v is None or isinstance(v, bytes)
    return v


def _time_arg(ks: Keyspace, unit: str, b: bytes, cmd: str) -> int:
    """EX/PX/EXAT/PXAT -> absolute ms (getExpireMillisecondsOrReply, src/t_string.c)."""
    v = parse_int(b)
    bad = ApplyError(f"ERR invalid expire time in '{cmd}' command")
    if v <= 0 or (unit in ("EX", "EXAT") and v > LLONG_MAX // 1000):
        raise bad
    if unit in ("EX", "EXAT"):
        v *= 1000
    if unit in ("EX", "PX"):
        v += ks.now()
        if v > LLONG_MAX:
            raise bad
    return v


@command("SET", -3)
def _set(ks: Keyspace, argv: list[bytes]) -> None:
    """SET key value [NX|XX|IFEQ v] [GET] [EX|PX|EXAT|PXAT t|KEEPTTL] (src/t_string.c)."""
    key, value = argv[1], argv[2]
    cond: str | None = None
    ifeq: bytes | None = None
    get = keepttl = False
    expire: int | None = None
    seen_time = False
    i = 3
    while i < len(argv):
        opt = upper(argv[i])
        more = i + 1 < len(argv)
        if opt in ("NX", "XX") and cond is None:
            cond = opt
        elif opt == "IFEQ" and cond is None and more:
            cond, ifeq = opt, argv[i + 1]
            i += 1
        elif opt == "GET" and not get:
            get = True
        elif opt == "KEEPTTL" and not seen_time:
            keepttl = seen_time = True
        elif opt in ("EX", "PX", "EXAT", "PXAT") and not seen_time and more:
            expire, seen_time = _time_arg(ks, opt, argv[i + 1], "set"), True
            i += 1
        else:
            raise ApplyError(SYNTAX)
        i += 1
    cur = ks.get(key, bytes) if (get or cond == "IFEQ") else ks.kv().get(key)
    if cond == "NX" and cur is not None:
        return
    if cond == "XX" and cur is None:
        return
    if cond == "IFEQ" and (cur is None or cur != ifeq):
        return
    ks.put(key, bytes(value), keep_ttl=keepttl)
    if expire is not None:
        ks.ttls()[key] = expire


@command("SETNX", 3)
def _setnx(ks: Keyspace, argv: list[bytes]) -> None:
    if argv[1] not in ks.kv():
        ks.put(argv[1], bytes(argv[2]))


@command("SETEX", 4)
def _setex(ks: Keyspace, argv: list[bytes]) -> None:
    when = _time_arg(ks, "EX", argv[2], "setex")
    ks.put(argv[1], bytes(argv[3]))
    ks.ttls()[argv[1]] = when


@command("PSETEX", 4)
def _psetex(ks: Keyspace, argv: list[bytes]) -> None:
    when = _time_arg(ks, "PX", argv[2], "psetex")
    ks.put(argv[1], bytes(argv[3]))
    ks.ttls()[argv[1]] = when


@command("GETSET", 3)
def _getset(ks: Keyspace, argv: list[bytes]) -> None:
    _get_str(ks, argv[1])
    ks.put(argv[1], bytes(argv[2]))


@command("MSET", -3)
def _mset(ks: Keyspace, argv: list[bytes]) -> None:
    if len(argv) % 2 == 0:
        raise ApplyError("ERR wrong number of arguments for 'mset' command")
    for i in range(1, len(argv), 2):
        ks.put(argv[i], bytes(argv[i + 1]))


@command("MSETNX", -3)
def _msetnx(ks: Keyspace, argv: list[bytes]) -> None:
    if len(argv) % 2 == 0:
        raise ApplyError("ERR wrong number of arguments for 'msetnx' command")
    if any(argv[i] in ks.kv() for i in range(1, len(argv), 2)):
        return
    for i in range(1, len(argv), 2):
        ks.put(argv[i], bytes(argv[i + 1]))


@command("GETDEL", 2)
def _getdel(ks: Keyspace, argv: list[bytes]) -> None:
    if _get_str(ks, argv[1]) is not None:
        ks.delete(argv[1])


@command("GETEX", -2)
def _getex(ks: Keyspace, argv: list[bytes]) -> None:
    expire: int | None = None
    persist = False
    opts = argv[2:]
    if opts:
        opt = upper(opts[0])
        if opt == "PERSIST" and len(opts) == 1:
            persist = True
        elif opt in ("EX", "PX", "EXAT", "PXAT") and len(opts) == 2:
            expire = _time_arg(ks, opt, opts[1], "getex")
        else:
            raise ApplyError(SYNTAX)
    if _get_str(ks, argv[1]) is None:
        return
    if persist:
        ks.ttls().pop(argv[1], None)
    elif expire is not None:
        ks.ttls()[argv[1]] = expire


@command("APPEND", 3)
def _append(ks: Keyspace, argv: list[bytes]) -> None:
    cur = _get_str(ks, argv[1]) or b""
    if len(cur) + len(argv[2]) > PROTO_MAX_BULK_LEN:
        raise ApplyError(TOO_BIG)
    ks.put(argv[1], cur + argv[2], keep_ttl=True)


@command("SETRANGE", 4)
def _setrange(ks: Keyspace, argv: list[bytes]) -> None:
    offset = parse_int(argv[2])
    if offset < 0:
        raise ApplyError("ERR offset is out of range")
    cur = _get_str(ks, argv[1])
    value = argv[3]
    if not value:
        return
    if offset + len(value) > PROTO_MAX_BULK_LEN:
        raise ApplyError(TOO_BIG)
    base = (cur or b"").ljust(offset, b"\0")
    ks.put(argv[1], base[:offset] + value + base[offset + len(value) :], keep_ttl=True)


def _incr(ks: Keyspace, key: bytes, by: int) -> None:
    cur = _get_str(ks, key)
    v = parse_int(cur) if cur is not None else 0
    if not -(2**63) <= v + by <= LLONG_MAX:
        raise ApplyError("ERR increment or decrement would overflow")
    ks.put(key, str(v + by).encode(), keep_ttl=True)


@command("INCR", 2)
def _incr_cmd(ks: Keyspace, argv: list[bytes]) -> None:
    _incr(ks, argv[1], 1)


@command("DECR", 2)
def _decr(ks: Keyspace, argv: list[bytes]) -> None:
    _incr(ks, argv[1], -1)


@command("INCRBY", 3)
def _incrby(ks: Keyspace, argv: list[bytes]) -> None:
    _incr(ks, argv[1], parse_int(argv[2]))


@command("DECRBY", 3)
def _decrby(ks: Keyspace, argv: list[bytes]) -> None:
    by = parse_int(argv[2])
    if by == -(2**63):
        raise ApplyError("ERR decrement would overflow")
    _incr(ks, argv[1], -by)


@command("INCRBYFLOAT", 3)
def _incrbyfloat(ks: Keyspace, argv: list[bytes]) -> None:
    cur = _get_str(ks, argv[1])
    v = parse_float(cur) if cur is not None else 0.0
    r = v + parse_float(argv[2])
    if r != r or r in (float("inf"), float("-inf")):
        raise ApplyError("ERR increment would produce NaN or Infinity")
    ks.put(argv[1], format_double(r), keep_ttl=True)
