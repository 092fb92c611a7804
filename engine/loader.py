"""Loading a stream of AOF items into the engine (start-up, ``valkey-aof export``/``rewrite``).

Pure: the caller opens the files (``persistence.aof.reader.read_aof_batches``) and hands the
items over; base records go straight into the keyspace, commands run through the engine's
command table with ``engine.loading`` set (no expiry, "already expired" checks off: spec 1.5).
An unknown command or a wrong arity stops the load (src/aof.c); other errors are replies the
loading client discards. ``CLUSTER SYNCSLOTS ESTABLISH`` opens a slot import; ``FINISH STATE
SUCCESS`` keeps its keys, ``FAILED`` drops them, and an import still open at the end is dropped
("Process restarted", spec 3.11). ``FUNCTION LOAD`` libraries are kept as opaque code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.context import ClientState
from engine.engine import Engine
from engine.keyspace import DatabaseCountError
from persistence.aof.reader import AofItem, AofRecord, TornTail, parse_syncslots
from persistence.aof.resp_scan import AofCommand
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

    def load(self, batches: Iterable[list[AofItem]]) -> LoadResult:
        engine = self.engine
        was = engine.loading
        engine.loading = True
        try:
            for batch in batches:
                for item in batch:
                    self.feed(item)
            self.finish()
        finally:
            engine.loading = was
        return self.result

    def feed(self, item: AofItem) -> None:
        if type(item) is AofCommand:
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
            msg = reply.message.decode(errors="replace")
            if msg.startswith(("ERR unknown command", "ERR wrong number of arguments")):
                raise LoadError(msg, file=item.file, offset=item.offset)
            self.result.skipped_errors.append((item.file, item.offset, msg))

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
