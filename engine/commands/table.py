"""The one command table: name, arity, flags, key positions, ACL categories, handler.

It drives dispatch, arity errors, MULTI queueing, COMMAND/COMMAND INFO/COMMAND GETKEYS, cluster
slot routing and "is this a write" (propagation), and tells ``valkey-aof replay`` where the keys
of a command are. Handlers live in one module per data type and register here with
:func:`command`. Arity follows Valkey: ``n`` exactly n arguments (name included), ``-n`` at least n.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.context import Ctx

Handler = Callable[["Ctx", list[bytes]], Any]
# (ctx, the first command, the rest of the run) -> the replies (RESP) of those it ran, in order
RunHandler = Callable[["Ctx", list[bytes], list[Any]], list[bytes]]
KeysFn = Callable[[list[bytes]], list[int]]


@dataclass(slots=True)
class Command:
    name: str  # lower case; "config|get" for a subcommand
    handler: Handler
    arity: int
    flags: frozenset[str]
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    acl: tuple[str, ...] = ()
    keys_fn: KeysFn | None = None  # keyword/numkeys based key specs (ZUNIONSTORE, XREAD ...)
    subcommands: dict[bytes, Command] = field(default_factory=dict)
    blocking: bool = False
    write: bool = False
    readonly: bool = False
    # no arity/key checks of its own: the subcommand decides (CONFIG, CLIENT, XGROUP ...)
    container: bool = False
    # a pipelined run of this command with one shape (Engine.execute_run), besides the handler
    run: RunHandler | None = None

    lname: bytes = b""  # the name as bytes, for the per-command checks

    def __post_init__(self) -> None:
        self.write = "write" in self.flags
        self.readonly = "readonly" in self.flags
        self.lname = self.name.encode()

    def arity_ok(self, argc: int) -> bool:
        a = self.arity
        return argc == a if a >= 0 else argc >= -a

    def key_positions(self, argv: list[bytes]) -> list[int]:
        """Indexes of the keys in ``argv`` (COMMAND GETKEYS, cluster routing, replay)."""
        if self.container and len(argv) > 1:
            sub = self.subcommands.get(argv[1].lower())
            return sub.key_positions(argv) if sub else []
        if self.keys_fn is not None:
            return self.keys_fn(argv)
        if self.first_key <= 0:
            return []
        last = self.last_key if self.last_key >= 0 else len(argv) + self.last_key
        return list(range(self.first_key, min(last, len(argv) - 1) + 1, self.step or 1))


TABLE: dict[bytes, Command] = {}


def command(
    name: str,
    arity: int,
    flags: str = "",
    first: int = 0,
    last: int = 0,
    step: int = 0,
    acl: str = "",
    keys: KeysFn | None = None,
    blocking: bool = False,
) -> Callable[[Handler], Handler]:
    """Register a handler. ``name`` may be ``"parent|sub"`` for a subcommand (its parent must be
    registered as a container first, see :func:`container`). ``flags`` and ``acl`` are space
    separated (``"write denyoom fast"``, ``"@string @fast"``)."""

    def register(fn: Handler) -> Handler:
        cmd = Command(
            name=name,
            handler=fn,
            arity=arity,
            flags=frozenset(flags.split()),
            first_key=first,
            last_key=last,
            step=step,
            acl=tuple(acl.split()),
            keys_fn=keys,
            blocking=blocking,
        )
        if "|" in name:
            parent, sub = name.split("|", 1)
            TABLE[parent.encode()].subcommands[sub.encode()] = cmd
        else:
            TABLE[name.encode()] = cmd
        return fn

    return register


def container(name: str, arity: int = -2, flags: str = "", acl: str = "") -> None:
    """Register a command made of subcommands (``CONFIG GET``, ``XGROUP CREATE`` ...)."""

    def dispatch(ctx: Ctx, argv: list[bytes]) -> Any:  # replaced by the engine's dispatch
        raise AssertionError("containers are dispatched by the engine")

    TABLE[name.encode()] = Command(
        name=name,
        handler=dispatch,
        arity=arity,
        flags=frozenset(flags.split()),
        acl=tuple(acl.split()),
        container=True,
    )


def lookup(argv: list[bytes]) -> Command | None:
    """The command (or subcommand) ``argv`` names, None if unknown."""
    cmd = TABLE.get(argv[0]) or TABLE.get(argv[0].lower())
    if cmd is not None and cmd.container and len(argv) > 1:
        return cmd.subcommands.get(argv[1].lower(), cmd)
    return cmd


def run_handler(name: str) -> Callable[[RunHandler], RunHandler]:
    """Give the registered command ``name`` a handler for runs (:meth:`Engine.execute_run`):
    ``run(ctx, argv, more)`` does ``argv`` and then the commands of ``more`` (the arguments
    after the name of each, as ``RequestParser.same_after`` gives them: same name, same number
    and sizes of arguments) in order, exactly as the handler would one at a time, and returns
    the replies of those it did (RESP bytes for ``ctx.client.resp``). It may stop at any
    command (none done: nothing changed); the engine runs the rest one at a time. It is
    called only where nothing else needs per-command work (no WATCH, keyspace events, cluster
    routing, MULTI ...), and every command it does must be propagated as it came, if at all: it
    stops before one that would change nothing, block, fail, or expire a key."""

    def register(fn: RunHandler) -> RunHandler:
        TABLE[name.encode()].run = fn
        return fn

    return register


def keys_from_numkeys(numkeys_at: int, first: int, step: int = 1) -> KeysFn:
    """Key specs like ZUNIONSTORE dst numkeys k1 k2 / LMPOP numkeys k1 k2 / EVAL s numkeys k."""

    def keys(argv: list[bytes]) -> list[int]:
        try:
            n = int(argv[numkeys_at])
        except (ValueError, IndexError):
            return []
        return [i for i in range(first, first + n * step, step) if i < len(argv)]

    return keys
