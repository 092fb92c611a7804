"""Fuzz the RDB reader with mutants of the real RDB files in fixtures/ (issue 8).

Each case ends in events (a valid result) or a ``PersistenceError`` with an offset inside the
input, within a second and (sampled) 50x its size in memory. Most cases mutate one-record RDBs cut
out of the real files (fast, and every value type gets its share); the rest mutate whole files.
A fifth of the cases read with a key filter that rejects everything, so the skippers run too.
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
    rdb_spots,
    rdb_with_crc,
    read_fixture,
    report,
    rng_for,
    split_rdb,
)

from persistence.errors import FormatError, PersistenceError
from persistence.rdb.reader import RdbFilter, RdbReader

SMALL = ["cluster_node/dump.rdb", "rdb_lzf/dump.rdb", "aof_preamble/stage1_appendonlydir/"
         "appendonly.aof.1.base.rdb"]  # fmt: skip
BIG = [
    "rdb_all_nocomp/dump.rdb",
    "rdb_all_comp/dump.rdb",
    "aof_preamble/appendonlydir/appendonly.aof.2.base.rdb",
]
NOTHING = RdbFilter(match=b"\x00no key matches this\x00")


def read_all(data: bytes, verify: bool, skip: bool) -> None:
    for _ in RdbReader(io.BytesIO(data), verify_checksum=verify, filter=NOTHING if skip else None):
        pass


def _fuzz(request: pytest.FixtureRequest, name: str, corpus: list[bytes], default: int) -> Tally:
    n = case_count(request.config, default)
    rng = rng_for(name)
    mutators = [RdbMutator(d) for d in corpus]
    tally = Tally()
    for i in range(n):
        m = mutators[i % len(mutators)]
        data, log = m.mutate(rng, corpus)
        if rng.random() < 0.5 and len(data) > 17 and data[-9:-8] == b"\xff":
            data = rdb_with_crc(data[:-8])  # a fresh CRC: the structural error must show
            log.append("crc")
        verify = rng.random() < 0.7
        skip = rng.random() < 0.2
        log.append(f"verify={verify} skip={skip}")
        check_case(tally, i, log, data, lambda d, v=verify, s=skip: read_all(d, v, s))
    report(name, tally)
    return tally


def test_fuzz_rdb_records(request: pytest.FixtureRequest) -> None:
    corpus: list[bytes] = []
    for rel in SMALL + BIG:
        corpus.extend(split_rdb(read_fixture(rel)))
    corpus = sorted(set(corpus))
    assert len(corpus) > 150
    tally = _fuzz(request, "rdb-records", corpus, 8500)
    assert tally.ok and tally.errors  # both outcomes are reached


def test_fuzz_rdb_small_files(request: pytest.FixtureRequest) -> None:
    tally = _fuzz(request, "rdb-small", [read_fixture(r) for r in SMALL], 1200)
    assert tally.errors


def test_fuzz_rdb_big_files(request: pytest.FixtureRequest) -> None:
    tally = _fuzz(request, "rdb-big", [read_fixture(r) for r in BIG], 300)
    assert tally.errors


def test_mutators_find_rdb_structure() -> None:
    comp = rdb_spots(read_fixture("rdb_all_comp/dump.rdb"))
    nocomp = rdb_spots(read_fixture("rdb_all_nocomp/dump.rdb"))
    assert comp.lzf and len(nocomp.listpacks) > 10 and len(nocomp.type_bytes) > 50


# ---- regression tests for what the fuzzer found -----------------------------------------------


def _expect_format_error(data: bytes) -> FormatError:
    with pytest.raises(FormatError) as info:
        read_all(data, False, False)
    assert info.value.offset is not None and 0 <= info.value.offset <= len(data)
    return info.value


def test_rdb_huge_string_length_is_truncation() -> None:
    body = b"REDIS0011" + b"\x00\x01k\x81" + struct.pack(">Q", (1 << 64) - 1) + b"v\xff"
    err = _expect_format_error(rdb_with_crc(body))
    assert isinstance(err, PersistenceError)
