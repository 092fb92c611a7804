"""Shared mutators and case runners for the fuzz tests (tests/test_fuzz_*.py).

How this works: every fuzz test takes a real file from fixtures/ (or a slice of one), applies one
to three mutations with a ``random.Random`` seeded from :data:`SEED` and the test name (runs are
reproducible: a failure message carries the case number and the mutation log, and
``mutant(seed, i)`` rebuilds it), and hands the bytes to a reader in memory. Generic mutations
(bit flips, byte overwrites, truncations, inserted, deleted and duplicated ranges, splices from
another file, interesting integers) work on any format; :class:`RdbMutator` adds structure-aware
ones on the places :func:`rdb_spots` finds: type bytes, length fields made huge, LZF streams
rewritten to point outside their buffer or lie about their lengths, and listpacks whose headers
lie. :func:`check_case` runs one case and enforces the contract: a valid result or the library's
typed error with an offset inside the input, in bounded time (:data:`CASE_SECONDS`) and, on a
sample, bounded memory (:func:`memory_limit`).

``--fuzz-long`` (tests/conftest.py) multiplies every case count by :data:`LONG_FACTOR`.
"""

from __future__ import annotations

import io
import itertools
import random
import re
import struct
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persistence.crc import crc64
from persistence.errors import MissingFileError, PersistenceError
from persistence.rdb.reader import RdbReader
from persistence.records import KeyRecord

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REAL = FIXTURES / "valkey-9.1.2"

SEED = 0x7A1CE  # fixed: every run mutates the same way
LONG_FACTOR = 20
CASE_SECONDS = 1.0  # no single case may take longer
MEMORY_SAMPLE = 25  # every Nth case runs under tracemalloc
MEMORY_CAP = 64 << 20


def memory_limit(input_size: int) -> int:
    """Peak bytes a case may allocate: 50x its input plus 1 MB of fixed overhead, at most 64 MB."""
    return min(MEMORY_CAP, 50 * input_size + (1 << 20))


def case_count(config: Any, default: int) -> int:
    """``default`` cases, or ``LONG_FACTOR`` times as many under ``--fuzz-long``."""
    return default * LONG_FACTOR if config.getoption("--fuzz-long") else default


def rng_for(name: str, salt: int = 0) -> random.Random:
    return random.Random(f"{SEED}:{name}:{salt}")


# ---- generic mutations ----------------------------------------------------------------------

INTERESTING = (
    0,
    1,
    0x7F,
    0x80,
    0xFF,
    0xFFFF,
    0x7FFFFFFF,
    0xFFFFFFFF,
    (1 << 63) - 1,
    (1 << 64) - 1,
)


def _pos(rng: random.Random, n: int) -> int:
    return rng.randrange(n) if n else 0


def bit_flip(rng: random.Random, d: bytearray) -> str:
    if not d:
        return "bitflip(empty)"
    p = _pos(rng, len(d))
    bit = rng.randrange(8)
    d[p] ^= 1 << bit
    return f"bitflip@{p}.{bit}"


def byte_set(rng: random.Random, d: bytearray) -> str:
    if not d:
        return "byteset(empty)"
    p = _pos(rng, len(d))
    d[p] = rng.choice((0, 0xFF, 0x7F, 0x80, 0xC0, 0xC3, 0x0D, 0x0A, 0x2A, 0x24, rng.randrange(256)))
    return f"byteset@{p}={d[p]}"


def truncate(rng: random.Random, d: bytearray) -> str:
    p = _pos(rng, len(d))
    del d[p:]
    return f"truncate@{p}"


def insert_bytes(rng: random.Random, d: bytearray) -> str:
    p = _pos(rng, len(d) + 1)
    n = rng.choice((1, 1, 2, 4, 8, rng.randrange(1, 64)))
    d[p:p] = rng.randbytes(n)
    return f"insert@{p}+{n}"


def delete_range(rng: random.Random, d: bytearray) -> str:
    if not d:
        return "delete(empty)"
    p = _pos(rng, len(d))
    n = rng.choice((1, 1, 2, 4, 8, rng.randrange(1, 256)))
    del d[p : p + n]
    return f"delete@{p}-{n}"


def duplicate_range(rng: random.Random, d: bytearray) -> str:
    if not d:
        return "dup(empty)"
    p = _pos(rng, len(d))
    n = rng.randrange(1, 128)
    d[p:p] = d[p : p + n]
    return f"dup@{p}x{n}"


def interesting_int(rng: random.Random, d: bytearray) -> str:
    if len(d) < 8:
        return "int(short)"
    p = _pos(rng, len(d) - 8)
    width, fmt = rng.choice(((1, "<B"), (2, "<H"), (4, "<I"), (4, ">I"), (8, "<Q"), (8, ">Q")))
    v = rng.choice(INTERESTING) & ((1 << (8 * width)) - 1)
    d[p : p + width] = struct.pack(fmt, v)
    return f"int@{p}:{fmt}={v}"


GENERIC: tuple[Callable[[random.Random, bytearray], str], ...] = (
    bit_flip,
    bit_flip,
    byte_set,
    byte_set,
    truncate,
    insert_bytes,
    delete_range,
    duplicate_range,
    interesting_int,
)


def splice(rng: random.Random, d: bytearray, other: bytes) -> str:
    """Replace a range of ``d`` with a range of ``other``."""
    if not other:
        return "splice(empty)"
    p = _pos(rng, len(d) + 1)
    q = _pos(rng, len(other))
    n = rng.randrange(1, 256)
    d[p : p + rng.randrange(0, 64)] = other[q : q + n]
    return f"splice@{p}<-{q}+{n}"


def mutate_generic(
    rng: random.Random, data: bytes, others: Sequence[bytes] = (), rounds: int = 0
) -> tuple[bytes, list[str]]:
    d = bytearray(data)
    log = []
    for _ in range(rounds or rng.choice((1, 1, 1, 2, 3))):
        if others and rng.random() < 0.08:
            log.append(splice(rng, d, rng.choice(others)))
        else:
            log.append(rng.choice(GENERIC)(rng, d))
    return bytes(d), log


# ---- RDB structure ----------------------------------------------------------------------------


def rdb_len(n: int) -> bytes:
    """An RDB length field (src/rdb.c rdbSaveLen)."""
    if n < 0x40:
        return bytes([n])
    if n < 0x4000:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n)


def _parse_len(d: bytes, p: int) -> tuple[int, int] | None:
    """(length, bytes used) of an RDB length at ``p``, or None."""
    if p >= len(d):
        return None
    b = d[p]
    if b < 0x40:
        return b, 1
    if b < 0x80:
        return (((b & 0x3F) << 8) | d[p + 1], 2) if p + 1 < len(d) else None
    if b == 0x80 and p + 5 <= len(d):
        return struct.unpack_from(">I", d, p + 1)[0], 5
    if b == 0x81 and p + 9 <= len(d):
        return struct.unpack_from(">Q", d, p + 1)[0], 9
    return None


@dataclass(slots=True)
class LzfSpot:
    pos: int  # the 0xC3 byte
    data_start: int
    clen: int
    ulen: int


@dataclass(slots=True)
class RdbSpots:
    """Places in one RDB worth mutating on purpose."""

    type_bytes: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)  # the first byte of a length field
    lzf: list[LzfSpot] = field(default_factory=list)
    listpacks: list[tuple[int, int]] = field(default_factory=list)  # (header pos, total bytes)


def rdb_spots(data: bytes) -> RdbSpots:
    """Type bytes and key lengths from a clean parse; LZF strings and listpacks by scanning."""
    spots = RdbSpots()
    try:
        for ev in RdbReader(io.BytesIO(data), verify_checksum=False):
            if isinstance(ev, KeyRecord):
                spots.type_bytes.append(ev.offset)
                spots.lengths.append(ev.offset + 1)
            else:
                spots.lengths.append(ev.offset + 1)
    except PersistenceError:
        pass
    n = len(data)
    for p in range(9, n - 8):
        if data[p] == 0xC3:
            c = _parse_len(data, p + 1)
            if c is None:
                continue
            u = _parse_len(data, p + 1 + c[1])
            if u is None:
                continue
            start = p + 1 + c[1] + u[1]
            if 0 < c[0] < u[0] and start + c[0] <= n:
                spots.lzf.append(LzfSpot(p, start, c[0], u[0]))
        total = int.from_bytes(data[p : p + 4], "little")
        if total >= 7 and p + total <= n and data[p + total - 1] == 0xFF:
            hdr = _parse_len(data, p - 1) if total < 0x40 else _parse_len(data, p - 2)
            if hdr is not None and hdr[0] == total:
                spots.listpacks.append((p, total))
    return spots


def rdb_with_crc(body: bytes) -> bytes:
    """``body`` (header .. EOF opcode) plus its CRC64, as the RDB writer appends it."""
    return body + struct.pack("<Q", crc64(body))


def split_rdb(data: bytes) -> list[bytes]:
    """One small RDB per record of ``data``: its header, that record, EOF and a fresh CRC64.

    Mutating these keeps each case fast while every value type still gets mutated."""
    offsets: list[int] = []
    try:
        reader = RdbReader(io.BytesIO(data), verify_checksum=False)
        offsets = [ev.offset for ev in reader]
        end = reader.end_offset - 9  # the EOF opcode (checksum follows)
    except PersistenceError:
        return []
    offsets = [*sorted(set(offsets)), end]
    return [
        rdb_with_crc(data[:9] + data[a:b] + b"\xff")
        for a, b in itertools.pairwise(offsets)
        if b > a
    ]


class RdbMutator:
    """Structure-aware RDB mutations on top of the generic ones."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.spots = rdb_spots(data)

    def mutate(self, rng: random.Random, others: Sequence[bytes] = ()) -> tuple[bytes, list[str]]:
        s = self.spots
        kinds = ["generic", "generic", "huge_length"]
        if s.type_bytes:
            kinds.append("wrong_type")
        if s.lzf:
            kinds += ["lzf", "lzf"]
        if s.listpacks:
            kinds += ["listpack", "listpack"]
        kind = rng.choice(kinds)
        d = bytearray(self.data)
        if kind == "generic":
            return mutate_generic(rng, self.data, others)
        if kind == "wrong_type":
            p = rng.choice(s.type_bytes)
            d[p] = rng.choice((*range(0, 26), *range(243, 256), rng.randrange(256)))
            log = [f"type@{p}={d[p]}"]
        elif kind == "huge_length":
            p = rng.choice(s.lengths) if s.lengths and rng.random() < 0.7 else _pos(rng, len(d))
            old = _parse_len(bytes(d), p)
            used = old[1] if old else 1
            big = rng.choice((0xFFFFFFFF, (1 << 64) - 1, 1 << 40, len(d) + 1, 0x3FFF))
            d[p : p + used] = rdb_len(big)
            log = [f"hugelen@{p}={big}"]
        elif kind == "lzf":
            log = [self._lzf(rng, d, rng.choice(s.lzf))]
        else:
            log = [self._listpack(rng, d, *rng.choice(s.listpacks))]
        if rng.random() < 0.3:
            extra, more = mutate_generic(rng, bytes(d), others, rounds=1)
            d = bytearray(extra)
            log += more
        return bytes(d), log

    @staticmethod
    def _lzf(rng: random.Random, d: bytearray, spot: LzfSpot) -> str:
        end = spot.data_start + spot.clen
        payload = bytearray(d[spot.data_start : end])
        ulen = spot.ulen
        how = rng.choice(("backref", "literal", "ulen", "clen", "payload"))
        if how == "backref":  # a reference before the start of the output
            i = rng.choice((0, _pos(rng, len(payload))))
            payload[i : i + 3] = bytes([0xE0 | 0x1F, 0xFF, 0xFF])
        elif how == "literal":  # a literal run longer than what is left
            payload[-1:] = bytes([0x1F])
        elif how == "ulen":
            ulen = rng.choice((0, 1, ulen - 1, ulen + 1, 0xFFFFFFFF, (1 << 64) - 1))
        elif how == "clen":
            clen = rng.choice((0, len(payload) + 1, 0xFFFFFFFF, (1 << 64) - 1))
            d[spot.pos : end] = b"\xc3" + rdb_len(clen) + rdb_len(ulen) + bytes(payload)
            return f"lzf@{spot.pos}:clen={clen}"
        else:
            j = _pos(rng, len(payload))
            payload[j] = rng.randrange(256)
        d[spot.pos : end] = b"\xc3" + rdb_len(len(payload)) + rdb_len(ulen) + bytes(payload)
        return f"lzf@{spot.pos}:{how}"

    @staticmethod
    def _listpack(rng: random.Random, d: bytearray, p: int, total: int) -> str:
        how = rng.choice(("total", "count", "entry", "eof", "shrink"))
        if how == "total":
            v = rng.choice((0, 6, total - 1, total + 1, 0xFFFFFFFF, rng.randrange(1 << 32)))
            d[p : p + 4] = struct.pack("<I", v)
        elif how == "count":
            v = rng.choice((0, 1, 0xFFFF, 0xFFFE, rng.randrange(1 << 16)))
            d[p + 4 : p + 6] = struct.pack("<H", v)
        elif how == "entry":
            j = p + 6 + _pos(rng, max(1, total - 7))
            d[j] = rng.choice((0x80 | 0x3F, 0xE0 | 0x0F, 0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xFF))
        elif how == "eof":
            d[p + total - 1] = rng.randrange(255)
        else:  # cut the blob short and fix the RDB string length so only the listpack lies
            keep = rng.randrange(0, total)
            hdr = 1 if total < 0x40 else 2
            d[p - hdr : p + total] = rdb_len(keep) + d[p : p + keep]
        return f"listpack@{p}:{how}"


# ---- running one case -------------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """What the cases of one run ended in."""

    cases: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    slowest: float = 0.0
    peak_ratio: float = 0.0

    def __str__(self) -> str:
        errs = ", ".join(f"{k}={v}" for k, v in sorted(self.errors.items()))
        return (
            f"{self.cases} cases: {self.ok} valid, errors {{{errs}}}; slowest "
            f"{self.slowest * 1000:.1f} ms; peak memory {self.peak_ratio:.1f}x input (sampled)"
        )


class FuzzFailure(AssertionError):
    pass


def check_case(
    tally: Tally,
    index: int,
    log: list[str],
    data: bytes,
    run: Callable[[bytes], object],
    expected: tuple[type[BaseException], ...] = (PersistenceError,),
    offset_limit: int | None = None,
    input_size: int | None = None,
) -> None:
    """Run ``run(data)``; it must return, or raise one of ``expected`` carrying an offset inside
    the input (``offset_limit`` defaults to ``len(data)``), within the time and memory bounds
    (``input_size``, default ``len(data)``, is what the memory bound scales with)."""
    size = len(data) if input_size is None else input_size
    sample = index % MEMORY_SAMPLE == 0
    if sample:
        tracemalloc.start()
    t0 = time.process_time()  # CPU time: other processes on a busy CI box do not count
    outcome = "ok"
    try:
        run(data)
    except expected as e:
        outcome = type(e).__name__
        offset = getattr(e, "offset", None)
        limit = len(data) if offset_limit is None else offset_limit
        # a file the manifest names but the disk lacks has no offset (only a name)
        located = isinstance(e, PersistenceError) and not isinstance(e, MissingFileError)
        if located and (offset is None or not 0 <= offset <= limit):
            raise FuzzFailure(
                f"case {index} {log}: {outcome} without a valid offset ({offset!r}): {e}"
            ) from e
    except Exception as e:  # exactly what the fuzzer looks for
        raise FuzzFailure(f"case {index} {log}: {type(e).__name__}: {e}") from e
    finally:
        elapsed = time.process_time() - t0
        if sample:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            tally.peak_ratio = max(tally.peak_ratio, peak / max(1, size))
            if peak > memory_limit(size):
                raise FuzzFailure(f"case {index} {log}: peak {peak} bytes for {size} input bytes")
    # tracemalloc makes allocation-heavy code several times slower: sampled cases get 4x
    if elapsed > (4 * CASE_SECONDS if sample else CASE_SECONDS):
        raise FuzzFailure(f"case {index} {log}: took {elapsed:.2f} s")
    tally.cases += 1
    tally.slowest = max(tally.slowest, elapsed)
    if outcome == "ok":
        tally.ok += 1
    else:
        tally.errors[outcome] = tally.errors.get(outcome, 0) + 1


def read_fixture(rel: str) -> bytes:
    return (REAL / rel).read_bytes()


def report(name: str, tally: Tally) -> None:
    """One line per run on stdout (``pytest -s``) and in the file the fuzz report reads."""
    print(f"fuzz {name}: {tally}")


# ---- RESP / AOF structure ---------------------------------------------------------------------

_HEADER = re.compile(rb"[*$](-?[0-9]+)\r\n")
_COMMAND_START = re.compile(rb"(?:^|\n)[*#]")
HUGE_NUMBERS = (
    b"0",
    b"-1",
    b"-2",
    b"1",
    b"2147483648",
    b"4294967296",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"99999999999999999999999999",
    b"9" * 1000,
    b"9" * 5000,
    b"+3",
    b" 3",
    b"3_0",
    b"0x10",
    b"",
    b"abc",
)
ANNOTATIONS = (
    b"#TS:1795694366\r\n",
    b"#TS:abc\r\n",
    b"#TS:\r\n",
    b"#TS:" + b"9" * 900 + b"\r\n",
    b"#" + b"x" * 1100 + b"\r\n",
    b"#\n",
    b"#no newline",
)
SPECIAL_COMMANDS: tuple[tuple[bytes, ...], ...] = (
    (b"MULTI",),
    (b"EXEC",),
    (b"multi",),
    (b"SELECT", b"1"),
    (b"SELECT", b"-1"),
    (b"SELECT", b"99999999999999999999999"),
    (b"SELECT", b"x"),
    (b"SELECT",),
    (b"SET", b"k", b"v"),
)


def resp_command(argv: Sequence[bytes]) -> bytes:
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in argv)


def _boundary(rng: random.Random, d: bytearray) -> int:
    starts = [m.end() - 1 for m in _COMMAND_START.finditer(d)]
    return rng.choice(starts) if starts else len(d)


def mutate_resp(
    rng: random.Random, data: bytes, others: Sequence[bytes] = ()
) -> tuple[bytes, list[str]]:
    """RESP-aware mutations (lengths, annotations, CRLFs, MULTI/EXEC/SELECT), else generic."""
    kind = rng.choice(("generic", "generic", "number", "number", "annotation", "crlf", "special"))
    if kind == "generic":
        return mutate_generic(rng, data, others)
    d = bytearray(data)
    if kind == "number":
        headers = list(_HEADER.finditer(d))
        if not headers:
            return mutate_generic(rng, data, others)
        m = rng.choice(headers)
        new = rng.choice(HUGE_NUMBERS)
        d[m.start(1) : m.end(1)] = new
        log = [f"number@{m.start()}={new[:20]!r}"]
    elif kind == "annotation":
        p = _boundary(rng, d)
        line = rng.choice(ANNOTATIONS)
        d[p:p] = line
        log = [f"annotation@{p}={line[:12]!r}"]
    elif kind == "crlf":
        crlfs = [i for i in range(len(d) - 1) if d[i] == 13 and d[i + 1] == 10]
        if not crlfs:
            return mutate_generic(rng, data, others)
        p = rng.choice(crlfs)
        new = rng.choice((b"\n", b"\r", b"\r\r\n", b"\n\r", b""))
        d[p : p + 2] = new
        log = [f"crlf@{p}={new!r}"]
    else:
        p = _boundary(rng, d)
        argv = rng.choice(SPECIAL_COMMANDS)
        d[p:p] = resp_command(argv)
        log = [f"command@{p}={argv!r}"]
    if rng.random() < 0.25:
        extra, more = mutate_generic(rng, bytes(d), others, rounds=1)
        return extra, log + more
    return bytes(d), log
