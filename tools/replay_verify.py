"""``valkey-aof replay --verify``: compare a live target with the input's expected final state.

The expected state is ``tools.export.load_contents`` (the input loaded by our engine, keys that
expired by now dropped), with the replay's database mapping applied. The target is read with
SCAN, then DUMP + PEXPIRETIME per key (pipelined); DUMP payloads are decoded by the project's
RDB reader (``persistence.rdb.dump.load_payload``), so both sides become key records and are
compared in the JSON form of ``valkey-aof export``. Key and field TTLs match within a
tolerance; keys or fields whose TTL falls before the end of the comparison (plus the tolerance)
may have expired meanwhile and are not counted. Stream consumers' seen/active times are not
compared (a server stamps them with its own clock when XCLAIM is replayed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from persistence.errors import PersistenceError
from persistence.rdb.dump import load_payload
from persistence.records import KeyRecord
from tools.export import load_contents
from tools.jsonview import record_to_json
from tools.replay_conn import Target

MAX_LISTED = 20


@dataclass
class VerifyReport:
    compared: int = 0
    missing: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.different or self.extra or self.unreadable)

    def summary(self) -> str:
        if self.clean:
            return f"verify: {self.compared} keys compared, no differences"
        return (
            f"verify: {self.compared} keys compared: {len(self.missing)} missing, "
            f"{len(self.different)} different, {len(self.extra)} extra"
            + (f", {len(self.unreadable)} unreadable" if self.unreadable else "")
        )

    def details(self) -> list[str]:
        out: list[str] = []
        for what, keys in (
            ("missing", self.missing),
            ("different", self.different),
            ("extra", self.extra),
            ("unreadable", self.unreadable),
        ):
            out.extend(f"  {what}: {k}" for k in keys[:MAX_LISTED])
            if len(keys) > MAX_LISTED:
                out.append(f"  ... and {len(keys) - MAX_LISTED} more {what}")
        return out


def _now_ms() -> int:
    return int(time.time() * 1000)


def _label(db: int, key: bytes) -> str:
    return f"db {db} {key.decode(errors='backslashreplace')!r}"


def _comparable(rec: KeyRecord, horizon: int) -> dict[str, Any]:
    """The JSON form minus what may differ: encodings, consumer times, soon-expiring fields."""
    doc = record_to_json(rec, with_encoding=False)
    doc.pop("expire_at_ms", None)
    fttl = doc.get("field_expire_at_ms")
    if fttl:
        soon = {json.dumps(f) for f, ms in fttl if ms <= horizon}
        doc["value"] = [fv for fv in doc["value"] if json.dumps(fv[0]) not in soon]
        doc["field_expire_at_ms"] = [[f, ms] for f, ms in fttl if ms > horizon]
    for g in doc.get("stream_groups", []):
        for c in g["consumers"]:
            c.pop("seen_time_ms", None)
            c.pop("active_time_ms", None)
    return doc


def _ttls_close(a: dict[str, Any], b: dict[str, Any], tol: int) -> bool:
    fa = a.pop("field_expire_at_ms", None) or []
    fb = b.pop("field_expire_at_ms", None) or []
    if [f for f, _ in fa] != [f for f, _ in fb]:
        return False
    return all(abs(x - y) <= tol for (_, x), (_, y) in zip(fa, fb))


def read_target(
    nodes: list[str], target: Target, dbs: set[int]
) -> tuple[dict[tuple[int, bytes], KeyRecord], list[str]]:
    """Every key of ``dbs`` on every node, as records (and the keys that could not be read)."""
    got: dict[tuple[int, bytes], KeyRecord] = {}
    bad: list[str] = []
    for node in nodes:
        host, port = node.rsplit(":", 1)
        for db in sorted(dbs):
            tls = target.tls
            extra: dict[str, Any] = {}
            if tls is not None:
                extra = {
                    "ssl": True, "ssl_ca_certs": tls.ca_cert, "ssl_certfile": tls.cert,
                    "ssl_keyfile": tls.key, "ssl_cert_reqs": "none" if tls.insecure else "required",
                    "ssl_check_hostname": not tls.insecure,
                }  # fmt: skip
            client = redis.Redis(
                host=host, port=int(port), db=db, username=target.username,
                password=target.password, socket_timeout=60, **extra,
            )  # fmt: skip
            try:
                keys = list(client.scan_iter(count=1000))
                for i in range(0, len(keys), 500):
                    chunk = keys[i : i + 500]
                    pipe = client.pipeline(transaction=False)
                    for k in chunk:
                        pipe.dump(k)
                        pipe.execute_command("PEXPIRETIME", k)  # type: ignore[no-untyped-call]
                    replies = pipe.execute()
                    for j, k in enumerate(chunk):
                        payload, pexp = replies[2 * j], replies[2 * j + 1]
                        if payload is None:
                            continue  # expired or deleted meanwhile
                        try:
                            value = load_payload(payload)
                        except PersistenceError as e:
                            bad.append(f"{_label(db, k)}: {e}")
                            continue
                        exp = int(pexp) if int(pexp) >= 0 else None
                        got[(db, k)] = KeyRecord(db, k, value, exp)
            finally:
                client.close()
    return got, bad


def verify(
    path: str | os.PathLike[str],
    nodes: list[str],
    target: Target,
    *,
    map_db: Callable[[int], int] = lambda db: db,
    tolerance_ms: int = 5_000,
    verify_checksum: bool = True,
) -> VerifyReport:
    start = _now_ms()
    exp_records = load_contents(path, verify_checksum=verify_checksum, now_ms=start).records
    expected: dict[tuple[int, bytes], KeyRecord] = {}
    for r in exp_records:
        db = map_db(r.db)
        expected[(db, r.key)] = KeyRecord(db, r.key, r.value, r.expire_at_ms)
    dbs = {db for db, _ in expected} or {map_db(0)}
    got, bad = read_target(nodes, target, dbs)
    horizon = _now_ms() + tolerance_ms
    report = VerifyReport(unreadable=bad)
    for (db, key), exp in sorted(expected.items()):
        soon = exp.expire_at_ms is not None and exp.expire_at_ms <= horizon
        have = got.pop((db, key), None)
        if have is None:
            if not soon:
                report.missing.append(_label(db, key))
            continue
        if soon:
            continue
        report.compared += 1
        a, b = _comparable(exp, horizon), _comparable(have, horizon)
        ttl_ok = (exp.expire_at_ms is None) == (have.expire_at_ms is None) and (
            exp.expire_at_ms is None
            or have.expire_at_ms is None
            or abs(exp.expire_at_ms - have.expire_at_ms) <= tolerance_ms
        )
        if not (ttl_ok and _ttls_close(a, b, tolerance_ms) and a == b):
            report.different.append(_describe(db, key, exp, have, a, b, ttl_ok))
    report.extra = [_label(db, key) for db, key in sorted(got)]
    return report


def _describe(
    db: int, key: bytes, exp: KeyRecord, have: KeyRecord, a: dict[str, Any], b: dict[str, Any],
    ttl_ok: bool,
) -> str:  # fmt: skip
    label = _label(db, key)
    if exp.type_name != have.type_name:
        return f"{label}: type {have.type_name}, expected {exp.type_name}"
    if not ttl_ok:
        return f"{label}: expire_at_ms {have.expire_at_ms}, expected {exp.expire_at_ms}"
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            return f"{label}: {name} differs"
    return f"{label}: field TTLs differ"
