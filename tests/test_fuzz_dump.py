"""Fuzz DUMP payload decoding and the RDB reader's windowed mode (issue 8).

- DUMP payloads: every value of the real RDB fixtures, dumped (VALKEY080 and REDIS0011 forms,
  compressed and not), then mutated; about half the mutants get a fresh CRC64 so the structural
  checks are reached. ``load_payload`` must return a value or raise its typed error with an
  offset inside the payload; RESTORE through the engine must answer a reply, never raise.
- Windowed mode (files over 512 MB, pipes): the same RDB mutants read from a non-seekable stream
  with a tiny window, so records run off the window and are re-parsed after it grows.
"""

from __future__ import annotations

import io
import struct

import pytest
from fuzzing import (
    RdbMutator,
    Tally,
    case_count,
    check_case,
    mutate_generic,
    read_fixture,
    report,
    rng_for,
    split_rdb,
)

from engine.clock import ManualClock
from engine.engine import Engine
from persistence.crc import crc64
from persistence.errors import PersistenceError
from persistence.rdb import reader as rdb_reader
from persistence.rdb.dump import FOOTER_SIZE, dump_payload, load_payload
from persistence.rdb.reader import RdbReader
from persistence.records import KeyRecord

FIXTURES = ["rdb_all_nocomp/dump.rdb", "rdb_all_comp/dump.rdb", "cluster_node/dump.rdb"]


def _records() -> list[KeyRecord]:
    out: list[KeyRecord] = []
    for rel in FIXTURES:
        for ev in RdbReader(io.BytesIO(read_fixture(rel))):
            if isinstance(ev, KeyRecord):
                out.append(ev)
    return out


def _payloads() -> list[bytes]:
    seen: set[bytes] = set()
    for rec in _records():
        for version in (80, 11):
            for compression in (True, False):
                try:
                    seen.add(dump_payload(rec.value, version=version, compression=compression))
                except (ValueError, PersistenceError):
                    continue  # e.g. field-TTL hashes cannot be written as RDB 11
    return sorted(seen)


def _fresh_crc(data: bytes) -> bytes:
    if len(data) < FOOTER_SIZE:
        return data
    head = data[:-8]
    return head + struct.pack("<Q", crc64(head))


def test_fuzz_dump_payloads(request: pytest.FixtureRequest) -> None:
    corpus = _payloads()
    assert len(corpus) > 100
    n = case_count(request.config, 6000)
    rng = rng_for("dump")
    tally = Tally()
    for i in range(n):
        data, log = mutate_generic(rng, corpus[i % len(corpus)], corpus)
        if rng.random() < 0.6:
            data = _fresh_crc(data)
            log.append("crc")
        verify = rng.random() < 0.8
        check_case(tally, i, log, data, lambda p, v=verify: load_payload(p, verify_checksum=v))
    report("dump", tally)
    assert tally.ok and tally.errors


def test_fuzz_restore_through_the_engine(request: pytest.FixtureRequest) -> None:
    """RESTORE of a mutant answers a reply (a value or Valkey's error), never an exception."""
    corpus = _payloads()
    engine = Engine(clock=ManualClock(1_700_000_000_000))
    client = engine.new_client("fuzz:1", "fuzz:0")
    rng = rng_for("restore")
    for i in range(case_count(request.config, 1500)):
        data, log = mutate_generic(rng, corpus[i % len(corpus)], corpus)
        payload = _fresh_crc(data) if rng.random() < 0.6 else data
        try:
            _reply, _effects = engine.execute(client, [b"RESTORE", b"k%d" % i, b"0", payload])
        except Exception as e:  # what the fuzzer looks for
            raise AssertionError(f"case {i} {log}: {type(e).__name__}: {e}") from e
        engine.execute(client, [b"DEL", b"k%d" % i])


class _Pipe(io.RawIOBase):
    """A non-seekable stream (a pipe, a socket): the reader must use its window."""

    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._b.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


def test_fuzz_rdb_windowed_mode(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus: list[bytes] = [read_fixture(r) for r in FIXTURES]
    small: list[bytes] = []
    for whole in corpus:
        small.extend(split_rdb(whole))
    small = sorted(set(small))
    rng = rng_for("rdb-window")
    tally = Tally()
    mutators = [RdbMutator(d) for d in corpus + small[:60]]
    pool = corpus + small[:60]
    for i in range(case_count(request.config, 1500)):
        monkeypatch.setattr(rdb_reader, "CHUNK", rng.choice((16, 64, 257, 4096)))
        m = mutators[i % len(mutators)]
        data, log = m.mutate(rng, pool)
        verify = rng.random() < 0.7
        log.append(f"chunk={rdb_reader.CHUNK} verify={verify}")

        def run(d: bytes, v: bool = verify) -> None:
            for _ in RdbReader(io.BufferedReader(_Pipe(d)), verify_checksum=v):
                pass

        check_case(tally, i, log, data, run)
    report("rdb-window", tally)
    assert tally.ok and tally.errors


def test_windowed_reading_equals_whole_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unmutated files: every window size gives the same events as reading the whole file."""
    for rel in FIXTURES:
        data = read_fixture(rel)
        whole = list(RdbReader(io.BytesIO(data)))
        for chunk in (16, 100, 4096):
            monkeypatch.setattr(rdb_reader, "CHUNK", chunk)
            assert list(RdbReader(io.BufferedReader(_Pipe(data)))) == whole, (rel, chunk)
