"""``valkey-aof replay``: stream an AOF/RDB into a live Valkey/Redis server or cluster.

How this works: :class:`tools.replay_source.Source` turns the input into segments (original
bytes where nothing changes); a sender (:class:`Standalone` or :class:`Cluster`) pipelines them
without waiting for replies, adding a SELECT whenever a connection's db must change and, on a
cluster, splitting each segment by slot; on a standalone target runs of plain SETs go as MSET
(tools/replay_mset.py; ``as_is`` turns it off), still counted as the file's commands.
Acknowledged pieces come back with their error replies, which ``--on-error`` decides about;
the index of the first command not yet acknowledged everywhere is the resume point written to
the checkpoint. Ctrl-C / SIGTERM stop sending, wait for every reply and save the checkpoint,
so ``--resume`` replays nothing twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persistence.resp import Array, Bulk
from tools.replay_cluster import ClusterMap, CrossSlot, auth, parse_redirect
from tools.replay_conn import Cmd, Conn, ReplayConnError, Target, TlsOptions, parse_target
from tools.replay_fastscan import RawCmds
from tools.replay_mset import MSET_PAIRS
from tools.replay_send import Cluster, Standalone
from tools.replay_source import Segment, Source, SourceStats
from tools.replay_xslot import CrossSlotRunner, handled, split_by_slot

ON_ERROR = ("stop", "skip", "log")
MAX_ERRORS_KEPT = 20


class ReplayError(Exception):
    """A replay that cannot go on (the message says why and how to go on)."""


@dataclass
class ReplayOptions:
    target: str
    cluster: bool | None = None  # None: detect
    rate: float | None = None
    rate_bytes: float | None = None
    checkpoint: str | None = None
    checkpoint_every: int = 10_000
    resume: bool = False
    on_error: str = "stop"
    dry_run: bool = False
    verify: bool = False
    map_db: dict[int, int] = field(default_factory=dict)
    flatten_db: bool = False
    verify_checksum: bool = True
    ttl_tolerance_ms: int = 5_000
    timeout: float = 30.0
    tls: TlsOptions | None = None  # for rediss:// (defaults when None)
    as_is: bool = False  # standalone: no runs of SET as MSET (tools/replay_mset.py)
    mset_pairs: int = MSET_PAIRS  # pairs per MSET at most
    log: Callable[[str], None] | None = None
    progress: Callable[[Progress], None] | None = None


@dataclass
class Progress:
    sent: int
    acked: int
    bytes_sent: int
    errors: int
    elapsed: float
    input_done: int
    input_total: int


@dataclass
class ReplayResult:
    mode: str = "standalone"
    commands: int = 0  # commands acknowledged in this run
    resumed_from: int = 0
    total_commands: int = 0
    bytes_sent: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    interrupted: bool = False
    per_node: dict[str, int] = field(default_factory=dict)
    cross_slot: dict[str, int] = field(default_factory=dict)  # replayed as per-slot effects
    sent_as_mset: int = 0  # file commands (plain SETs) sent inside MSETs
    source: SourceStats = field(default_factory=SourceStats)
    plan: dict[str, Any] | None = None
    verify: Any = None  # tools.replay_verify.VerifyReport

    @property
    def ops_per_sec(self) -> float:
        return self.commands / self.elapsed if self.elapsed > 0 else 0.0


# ---- checkpoint ------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    input: str
    target: str
    index: int = 0
    file: str | None = None
    offset: int | None = None
    done: bool = False

    def save(self, path: str) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"version": 1, **self.__dict__}, f)
        os.replace(tmp, path)  # atomic against a killed process

    @classmethod
    def load(cls, path: str) -> Checkpoint:
        try:
            doc = json.loads(Path(path).read_text())
            return cls(
                doc["input"], doc["target"], int(doc["index"]), doc.get("file"),
                doc.get("offset"), bool(doc.get("done")),
            )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ReplayError(f"{path}: not a replay checkpoint ({e})") from e


# ---- the replay ------------------------------------------------------------------------------


def _input_size(path: str | os.PathLike[str]) -> int:
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.iterdir() if f.is_file())
    return p.stat().st_size if p.exists() else 0


def _command_names(conn: Conn) -> set[bytes] | None:
    reply = conn.call("COMMAND", "LIST")
    if not isinstance(reply, Array) or reply.items is None:
        return None
    return {f.value.lower() for f in reply.items if isinstance(f, Bulk) and f.value}


def _cluster_info(conn: Conn) -> tuple[bool, int]:
    reply = conn.call("INFO", "cluster")
    enabled = isinstance(reply, Bulk) and b"cluster_enabled:1" in (reply.value or b"")
    dbs = 1
    if enabled:
        cfg = conn.call("CONFIG", "GET", "cluster-databases")
        if isinstance(cfg, Array) and cfg.items and len(cfg.items) == 2:
            v = cfg.items[1]
            if isinstance(v, Bulk) and v.value and v.value.isdigit():
                dbs = int(v.value)
    return enabled, dbs


def _mapper(target: Target, opts: ReplayOptions) -> Callable[[int], int]:
    fixed = target.db if target.db is not None else (0 if opts.flatten_db else None)
    table = dict(opts.map_db)

    def map_db(db: int) -> int:
        to = table.get(db)
        if to is not None:
            return to
        return fixed if fixed is not None else db

    return map_db


@contextlib.contextmanager
def _stop_signals() -> Iterator[list[bool]]:
    """SIGINT/SIGTERM set a flag: the replay stops between segments, cleanly."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        flag[0] = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def replay(path: str | os.PathLike[str], opts: ReplayOptions) -> ReplayResult:
    if opts.on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}")
    try:
        target = parse_target(opts.target, opts.tls)
        tls = target.ssl_context()
    except (ValueError, OSError, ssl.SSLError) as e:  # OSError: a certificate file
        raise ReplayError(f"{opts.target}: {e}") from e
    input_abs = os.path.abspath(os.fspath(path))
    ckpt = Checkpoint(input_abs, target.describe())
    if opts.resume:
        if not opts.checkpoint:
            raise ReplayError("--resume needs --checkpoint FILE")
        if os.path.exists(opts.checkpoint):
            ckpt = Checkpoint.load(opts.checkpoint)
            if ckpt.input != input_abs:
                raise ReplayError(
                    f"{opts.checkpoint} is the checkpoint of {ckpt.input}, not of {input_abs}"
                )
    try:
        seed = Conn(
            target.host, target.port, timeout=opts.timeout, tls=tls,
            server_name=target.tls.sni if target.tls else None,
        )  # fmt: skip
    except ReplayConnError as e:
        raise ReplayError(str(e)) from e
    try:
        auth(seed, target)
        names = _command_names(seed)
        enabled, cluster_dbs = _cluster_info(seed)
        if opts.cluster and not enabled:
            raise ReplayError(f"{target.describe()} is not a cluster node (cluster_enabled:0)")
    except (ReplayConnError, ReplayError) as e:
        seed.close()
        raise ReplayError(str(e)) from e
    result = ReplayResult(mode="cluster" if enabled else "standalone", resumed_from=ckpt.index)
    known: Callable[[bytes], bool] = (lambda n: n.lower() in names) if names else (lambda n: True)
    map_db = _mapper(target, opts)
    source = Source(
        path,
        map_db=map_db,
        known=known,
        verify_checksum=opts.verify_checksum,
        skip=ckpt.index,
        remaps=bool(opts.map_db or opts.flatten_db or target.db is not None),
        max_run=min(opts.checkpoint_every, int(opts.rate / 10) if opts.rate else 1 << 30),
    )
    result.source = source.stats
    run = _Run(opts, result, source, ckpt, _input_size(path))
    try:
        if enabled:
            cmap = ClusterMap(seed, target, timeout=opts.timeout)
            run.sender = Cluster(cmap, cluster_dbs > 1, run.cross_slot, run.sync_cross)
            run.xslot = CrossSlotRunner(cmap, cluster_dbs > 1)
            run.multi_db = cluster_dbs > 1
        else:
            pairs = 0 if opts.as_is else opts.mset_pairs
            if pairs >= 2 and names and b"mset" not in names:
                pairs = 0
                result.source.notes.append(
                    "the target has no MSET command (renamed or removed): every command is "
                    "sent as the file has it (as with --as-is)"
                )
            run.sender = Standalone(seed, pairs, result.source.notes.append)
        if opts.dry_run:
            run.dry_run()
        else:
            run.go()
    except ReplayConnError as e:
        run.save_checkpoint()
        raise ReplayError(f"{e}{run.resume_hint()}") from e
    finally:
        for c in list(run.sender.conns.values()) if run.sender else [seed]:
            c.close()
    if opts.verify and not opts.dry_run and not result.interrupted:
        from tools.replay_verify import verify

        nodes = list(run.sender.conns) if enabled and run.sender else [seed.name]
        if enabled and isinstance(run.sender, Cluster):
            nodes = run.sender.map.primaries
        result.verify = verify(
            path, nodes, target, map_db=map_db, tolerance_ms=opts.ttl_tolerance_ms,
            verify_checksum=opts.verify_checksum,
        )  # fmt: skip
    return result


class _Run:
    def __init__(
        self, opts: ReplayOptions, result: ReplayResult, source: Source, ckpt: Checkpoint,
        input_total: int,
    ) -> None:  # fmt: skip
        self.opts = opts
        self.result = result
        self.source = source
        self.ckpt = ckpt
        self.input_total = input_total
        self.sender: Standalone | Cluster | None = None
        self.xslot: CrossSlotRunner | None = None
        self.multi_db = True
        self.next_index = ckpt.index
        self.recent: deque[Segment] = deque()
        self.stop_error: str | None = None
        self.last_ckpt = ckpt.index
        self.t0 = time.perf_counter()
        self.sent = 0
        self.sent_bytes = 0

    # -- errors ------------------------------------------------------------------------------
    def resume_hint(self) -> str:
        if self.opts.checkpoint:
            return (
                f"; {self.ckpt.index} command(s) acknowledged, checkpoint saved in "
                f"{self.opts.checkpoint} (run again with --resume)"
            )
        return f"; {self.ckpt.index} command(s) acknowledged (use --checkpoint to resume)"

    def error(self, cmd: Cmd, msg: str) -> None:
        res = self.result
        res.errors += 1
        name = cmd.argv[0].decode(errors="replace").upper()
        line = f"{cmd.file} offset {cmd.offset}: {name}: {msg}"
        if len(res.error_samples) < MAX_ERRORS_KEPT:
            res.error_samples.append(line)
        if self.opts.on_error == "log" and self.opts.log:
            self.opts.log(f"error: {line}")
        if self.opts.on_error == "stop" and self.stop_error is None:
            self.stop_error = line

    def cross_slot(self, cmd: Cmd, msg: str) -> None:
        self.error(cmd, msg)

    def sync_cross(self, cmd: Cmd, db: int, index: int) -> None:
        """A cross-slot command as its per-slot effects, once all before it is applied."""
        assert self.xslot is not None
        self.drain_all()
        msg = self.xslot.run(cmd.argv, db)
        if msg is None:
            self.result.commands += 1
        else:
            self.error(cmd, msg)

    # -- acknowledgements --------------------------------------------------------------------
    def collect(self) -> None:
        assert self.sender is not None
        for conn in self.sender.conns.values():
            if not conn.acked:
                continue
            done, conn.acked = conn.acked, []
            for piece in done:
                self.result.commands += len(piece.cmds)
                if piece.control_errors:
                    raise ReplayConnError(f"{conn.name}: {'; '.join(piece.control_errors)}")
                for pos, msg in piece.errors:
                    cmd = piece.cmds[pos]
                    cl = self.sender if isinstance(self.sender, Cluster) else None
                    redirect = parse_redirect(msg) if cl is not None else None
                    if cl is not None and (
                        redirect is not None or msg.startswith(("TRYAGAIN", "CLUSTERDOWN"))
                    ):
                        kind, node = (redirect[0], redirect[2]) if redirect else ("TRY", "")
                        entry = (piece.index_of(pos), cmd, kind, node, piece.db)
                        cl.redirects.append(entry)
                        self.result.commands -= 1
                    else:
                        self.error(cmd, msg)

    def safe_index(self) -> int:
        assert self.sender is not None
        safe = self.next_index
        for conn in self.sender.conns.values():
            if conn.pending:
                safe = min(safe, conn.pending[0].min_index)
        if isinstance(self.sender, Cluster) and self.sender.redirects:
            safe = min(safe, min(r[0] for r in self.sender.redirects))
        return safe

    def save_checkpoint(self, done: bool = False) -> None:
        if self.sender is None:
            return
        with contextlib.suppress(ReplayConnError):
            for conn in self.sender.conns.values():
                conn.poll()
            self.collect()
        safe = self.safe_index()
        ck = self.ckpt
        ck.index = safe
        while self.recent and self.recent[0].first_index + len(self.recent[0].cmds) < safe:
            self.recent.popleft()
        for seg in self.recent if self.opts.checkpoint else ():
            if seg.first_index < safe <= seg.first_index + len(seg.cmds):
                k = safe - seg.first_index - 1
                if type(seg.cmds) is RawCmds:  # no need to build the run's command objects
                    ck.file, ck.offset = seg.cmds.file, seg.cmds.end_of(k)
                else:
                    cmd = seg.cmds[k]
                    ck.file, ck.offset = cmd.file, cmd.offset + cmd.size
                break
        ck.done = done
        self.last_ckpt = safe
        if self.opts.checkpoint:
            ck.save(self.opts.checkpoint)

    # -- main loop ---------------------------------------------------------------------------
    def drain_all(self) -> None:
        assert self.sender is not None
        sender = self.sender
        for _ in range(50):
            for conn in list(sender.conns.values()):
                conn.drain()
            self.collect()
            if not isinstance(sender, Cluster) or not sender.redirects:
                return
            redirects, sender.redirects = sender.redirects, []
            if any(k == "TRY" for _, _, k, _, _ in redirects):
                time.sleep(0.1)  # TRYAGAIN / CLUSTERDOWN: the cluster is settling
            sender.resend(redirects)
        raise ReplayConnError("the cluster keeps redirecting the same commands")

    def go(self) -> None:
        assert self.sender is not None
        sender = self.sender
        opts = self.opts
        every = max(1, opts.checkpoint_every)
        tick = time.perf_counter()
        with _stop_signals() as stop:
            for seg in self.source.segments():
                if not self.multi_db and seg.db != 0:
                    self.drain_all()
                    self.save_checkpoint()
                    raise ReplayError(
                        f"the input writes to database {seg.db}, but the cluster has "
                        "cluster-databases 1: replay with --flatten-db (all into db 0) or "
                        f"--map-db {seg.db}:0, or start the cluster with --cluster-databases 16"
                        f"{self.resume_hint()}"
                    )
                if opts.rate or opts.rate_bytes:
                    self.throttle(len(seg.cmds), len(seg.data))
                self.recent.append(seg)
                sender.send(seg)
                n = len(seg.cmds)
                self.next_index = seg.first_index + n
                self.sent += n
                self.sent_bytes += len(seg.data)
                self.collect()
                if isinstance(sender, Cluster) and sender.redirects:
                    self.drain_all()
                if self.stop_error or stop[0]:
                    break
                if self.next_index - self.last_ckpt >= every:
                    self.save_checkpoint()
                if opts.progress is not None:
                    now = time.perf_counter()
                    if now - tick >= 0.2:
                        tick = now
                        opts.progress(self.snapshot())
            self.drain_all()
            interrupted = stop[0]
        res = self.result
        res.elapsed = time.perf_counter() - self.t0
        res.bytes_sent = sum(c.bytes_sent for c in sender.conns.values())
        res.per_node = {name: c.received for name, c in sender.conns.items()}
        if isinstance(sender, Standalone):  # replies as if every command had its own
            res.sent_as_mset = sender.batched
            res.per_node[sender.conn.name] += sender.batched - sender.msets
        res.total_commands = self.source.stats.commands
        if isinstance(sender, Cluster):
            res.commands -= sender.extra_parts
            res.cross_slot = dict(sorted(sender.cross_slot.items()))
            if sender.split_txns:
                res.source.warnings.append(
                    f"{sender.split_txns} MULTI/EXEC transaction(s) touching several slots were "
                    "split into one transaction per slot: a cluster cannot keep them atomic "
                    "across slots"
                )
        res.interrupted = interrupted and self.stop_error is None
        finished = not interrupted and self.stop_error is None
        self.check_resume_point()
        self.save_checkpoint(done=finished)
        if opts.progress is not None:
            opts.progress(self.snapshot())
        if self.stop_error is not None:
            raise ReplayError(
                f"stopped at the first error (--on-error stop): {self.stop_error}; commands "
                f"already pipelined after it were applied{self.resume_hint()}"
            )

    def check_resume_point(self) -> None:
        ck, cmd = self.ckpt, self.source.at_skip
        if (
            self.result.resumed_from
            and cmd is not None
            and ck.offset is not None
            and (cmd.file, cmd.offset + cmd.size) != (ck.file, ck.offset)
        ):
            self.result.source.warnings.append(
                f"the checkpoint's position ({ck.file} offset {ck.offset}) does not match "
                f"command #{ck.index} of the input ({cmd.file} offset "
                f"{cmd.offset + cmd.size}): has the input changed?"
            )

    def throttle(self, n: int, size: int) -> None:
        assert self.sender is not None
        opts = self.opts
        wait = 0.0
        elapsed = time.perf_counter() - self.t0
        if opts.rate:
            wait = max(wait, (self.sent + n) / opts.rate - elapsed)
        if opts.rate_bytes:
            wait = max(wait, (self.sent_bytes + size) / opts.rate_bytes - elapsed)
        if wait > 0:
            for conn in self.sender.conns.values():
                conn.flush()
            time.sleep(wait)

    def snapshot(self) -> Progress:
        assert self.sender is not None
        conns = self.sender.conns.values()
        return Progress(
            sent=self.sent, acked=self.result.commands,
            bytes_sent=sum(c.bytes_sent for c in conns), errors=self.result.errors,
            elapsed=time.perf_counter() - self.t0, input_done=self.source.input_done,
            input_total=self.input_total,
        )  # fmt: skip

    def dry_run(self) -> None:
        """Count and route only: nothing is sent."""
        assert self.sender is not None
        per_node: Counter[str] = Counter()
        cross: Counter[str] = Counter()
        refused = 0
        split_txns = 0
        refused_db: set[int] = set()
        bytes_total = 0
        for seg in self.source.segments():
            bytes_total += len(seg.data)
            if not self.multi_db and seg.db != 0:
                refused_db.add(seg.db)
            if isinstance(self.sender, Cluster):
                cmap = self.sender.map
                if seg.txn:
                    try:
                        slot = cmap.slot_of_all([c.argv for c in seg.cmds])
                        per_node[cmap.node_of(slot) if slot >= 0 else "all"] += len(seg.cmds)
                        continue
                    except CrossSlot:
                        split_txns += 1
                for c in seg.cmds:
                    try:
                        slot = cmap.slot_of(c.argv)
                    except CrossSlot:
                        if split_by_slot(c.argv) is not None or handled(c.argv):
                            cross[c.argv[0].decode(errors="replace").upper()] += 1
                        else:
                            refused += 1
                        continue
                    per_node[cmap.node_of(slot) if slot >= 0 else "all primaries"] += 1
            else:
                per_node[self.sender.conn.name] += len(seg.cmds)
        st = self.source.stats
        self.result.total_commands = st.commands
        self.result.plan = {
            "commands": st.commands - self.ckpt.index,
            "bytes": bytes_total,
            "per_db": dict(sorted(st.dbs.items())),
            "per_node": dict(sorted(per_node.items())),
            "cross_slot": dict(sorted(cross.items())),  # replayed as their per-slot effects
            "cross_slot_refused": refused,
            "cross_slot_transactions": split_txns,  # split per slot
            "refused_dbs": sorted(refused_db),
        }
