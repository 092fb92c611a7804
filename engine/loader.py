"""Loading a stream of AOF items into the engine (start-up, ``valkey-aof export``/``rewrite``).

Pure: the caller opens the files (``persistence.aof.reader.read_aof_runs``) and hands the
items over; base records go straight into the keyspace, commands run through the engine's
command table with ``engine.loading`` set (no expiry, "already expired" checks off: spec 1.5).
An unknown command or a wrong arity stops the load (src/aof.c); other errors are replies the
loading client discards. ``CLUSTER SYNCSLOTS ESTABLISH`` opens a slot import; ``FINISH STATE
SUCCESS`` keeps its keys, ``FAILED`` drops them, and an import still open at the end is dropped
("Process restarted", spec 3.11). ``FUNCTION LOAD`` libraries are kept as opaque code.

Runs of commands (``read_aof_runs``) take a fast path: ``SET k v`` and
``SET k v PXAT ms`` (the forms Valkey's AOF holds) go straight into the keyspace dicts, with what
the table's SET handler would leave (old TTL and volatile-field tracking dropped, the new TTL
set); a run of nothing but plain SETs is one ``dict.update``. It is taken only where the handler
would do nothing more: outside MULTI and cluster mode, nobody WATCHing or subscribed, no slot
index, and a PXAT time that is a plain positive integer not yet past (the handler checks those).
Every other command goes through :meth:`Engine.execute_loading`, one by one.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from engine.commands.table import TABLE
from engine.context import ClientState
from engine.engine import Engine
from engine.keyspace import DatabaseCountError
from persistence.aof.reader import AofItem, AofRecord, TornTail, parse_syncslots
from persistence.aof.resp_scan import AofCommand, CommandRun, run_size
from persistence.crc import key_slot
from persistence.records import FunctionLibrary, KeyRecord, SlotImport, StringRecords
from persistence.resp.frames import Error


class LoadError(Exception):
    """A command the loader cannot run; ``file``/``offset`` say where."""

    def __init__(self, message: str, *, file: str, offset: int) -> None:
        super().__init__(f"{file}, offset {offset}: {message}")
        self.message = message
        self.file = file
        self.offset = offset


@dataclass
class LoadResult:
    commands: int = 0
    keys_from_base: int = 0
    torn: list[TornTail] = field(default_factory=list)
    skipped_errors: list[tuple[str, int, str]] = field(default_factory=list)  # file, offset, msg
    functions: list[bytes] = field(default_factory=list)


class Loader:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.client = ClientState(id=-1)
        self.imports: dict[bytes, list[tuple[int, int]]] = {}
        self.result = LoadResult()

    def load(self, batches: Iterable[Sequence[AofItem | CommandRun]]) -> LoadResult:
        engine = self.engine
        was = engine.loading
        engine.loading = True
        # the cyclic GC would walk every container of the growing keyspace again and again
        # while nothing loaded is garbage yet; it runs once at the end instead
        gc_was = gc.isenabled()
        gc.disable()
        try:
            for batch in batches:
                for item in batch:
                    self.feed(item)
            self.finish()
        finally:
            engine.loading = was
            if gc_was:
                gc.enable()
        return self.result

    def feed(self, item: AofItem | CommandRun) -> None:
        if type(item) is CommandRun:
            self.run(item)
        elif type(item) is AofCommand:
            self.command(item)
        elif isinstance(item, AofRecord):
            ev = item.event
            if type(ev) is StringRecords:  # a run of plain strings (string_runs=True)
                try:
                    self.engine.keyspace.load_strings(ev)
                except DatabaseCountError as e:
                    raise LoadError(str(e), file=item.file, offset=ev.offset or 0) from e
                self.result.keys_from_base += len(ev.keys)
            elif isinstance(ev, KeyRecord):
                try:
                    self.engine.keyspace.load_record(ev)
                except DatabaseCountError as e:
                    raise LoadError(str(e), file=item.file, offset=ev.offset or 0) from e
                self.result.keys_from_base += 1
            elif isinstance(ev, SlotImport):
                self.imports[ev.job_name] = list(ev.ranges)
            elif isinstance(ev, FunctionLibrary):
                self.result.functions.append(ev.code)
        elif isinstance(item, TornTail):
            self.result.torn.append(item)

    def command(self, item: AofCommand) -> None:
        argv = item.argv
        first = argv[0].upper()
        if first == b"CLUSTER":
            mark = parse_syncslots(argv)
            if mark is not None:
                if mark.kind == "establish":
                    self.imports[mark.job] = list(mark.ranges or [])
                else:
                    ranges = self.imports.pop(mark.job, [])
                    if mark.state != b"SUCCESS":
                        self.drop_slots(ranges)
                return
        elif first == b"FUNCTION" and len(argv) >= 3 and argv[1].upper() == b"LOAD":
            self.result.functions.append(argv[-1])
            return
        reply = self.engine.execute_loading(self.client, argv)
        self.result.commands += 1
        if type(reply) is Error:
            self._error(reply, item.file, item.offset)

    def run(self, run: CommandRun) -> None:
        """The commands of a run, plain SETs on the fast path (see the module docstring)."""
        argvs = run.argvs
        names = set(map(_first, argvs))
        if any(n.upper() in _LOADER_NAMES for n in names):
            for cmd in run.commands():
                self.command(cmd)
            return
        i = counted = 0
        while True:
            i, reply = _replay(self.engine, self.client, argvs, i, names)
            if reply is None:
                break
            self.result.commands += i + 1 - counted
            counted = i + 1
            self._error(reply, run.file, run.offset + run_size(argvs[:i]))
            i += 1
        self.result.commands += len(argvs) - counted

    def _error(self, reply: Error, file: str, offset: int) -> None:
        msg = reply.message.decode(errors="replace")
        if msg.startswith(("ERR unknown command", "ERR wrong number of arguments")):
            raise LoadError(msg, file=file, offset=offset)
        self.result.skipped_errors.append((file, offset, msg))

    def finish(self) -> None:
        for ranges in self.imports.values():
            self.drop_slots(ranges)
        self.imports.clear()

    def drop_slots(self, ranges: list[tuple[int, int]]) -> None:
        if not ranges:
            return
        for db in self.engine.keyspace.dbs:
            doomed = [k for k in db.data if any(a <= key_slot(k) <= b for a, b in ranges)]
            for key in doomed:
                db.delete(key)


# ---- the fast path for runs ------------------------------------------------------------------

_first = itemgetter(0)
_second = itemgetter(1)
_third = itemgetter(2)
_LOADER_NAMES = frozenset((b"CLUSTER", b"FUNCTION"))  # what Loader.command handles itself
_set_names: dict[bytes, bool] = {}  # argv[0] as written -> names the table's SET command


def _is_set(name: bytes) -> bool:
    known = _set_names.get(name)
    if known is None:
        cmd = TABLE.get(name) or TABLE.get(name.lower())
        known = _set_names[name] = cmd is not None and cmd.name == "set" and not cmd.container
        if len(_set_names) > 256:
            _set_names.clear()
    return known


def _fast_ok(engine: Engine, client: ClientState) -> Any:
    """The db the SET fast path may write straight into, or None (see the module docstring)."""
    if (
        not engine.loading
        or client.multi is not None
        or engine.cluster is not None
        or engine.keyspace.watchers
        or (engine.notify_flags and (engine.channels or engine.patterns))
    ):
        return None
    db = engine.keyspace.dbs[client.db]
    return db if db.slot_keys is None else None


def _replay(
    engine: Engine,
    client: ClientState,
    argvs: list[list[bytes]],
    start: int,
    names: set[bytes],
) -> tuple[int, Error | None]:
    """Run argvs[start:] as :meth:`Engine.execute_loading` would; stop at the first error
    reply: (its index, the error), else (len(argvs), None). ``names``: their argv[0]s."""
    n = len(argvs)
    db = _fast_ok(engine, client)
    if (
        db is not None
        and start == 0
        and all(map(_is_set, names))
        and len(argvs[0]) == 3
        and len(set(map(len, argvs))) == 1
    ):
        # src/t_string.c setGenericCommand without options, for each: the value replaces any
        # old one, whose TTL and volatile-field tracking go (setKey)
        db.data.update(zip(map(_second, argvs), map(_third, argvs)))
        if db.expires or db.volatile_keys:
            keys = list(map(_second, argvs))
            pop = db.expires.pop
            for k in keys:
                pop(k, None)
            db.volatile_keys.difference_update(keys)
        return n, None
    clock = engine.clock
    execute = engine.execute_loading
    for i in range(start, n):
        argv = argvs[i]
        m = len(argv)
        if db is not None and (m == 3 or m == 5) and _is_set(argv[0]):
            when = -1
            if m == 5:
                ms = argv[4]
                # the handler's checks: PXAT, a positive integer (string2ll) not yet past
                if (
                    argv[3].upper() == b"PXAT"
                    and ms.isdigit()
                    and ms[0] != 48
                    and len(ms) < 19
                    and int(ms) > clock.now_ms()  # the handler's ctx.now_ms
                ):
                    when = int(ms)
                else:
                    when = 0
            if when:
                key = argv[1]
                db.data[key] = argv[2]
                if db.volatile_keys:
                    db.volatile_keys.discard(key)
                if when > 0:
                    db.set_expire(key, when)
                elif db.expires:
                    db.expires.pop(key, None)
                continue
        reply = execute(client, argv)
        if type(reply) is Error:
            return i, reply
        db = _fast_ok(engine, client)
    return n, None
