"""Pub/sub commands (src/pubsub.c): SUBSCRIBE/PSUBSCRIBE/SSUBSCRIBE and their UN-, PUBLISH,
SPUBLISH, PUBSUB introspection.

How replies work: a (un)subscribe command answers one confirmation frame per channel — a push
(``>``) in RESP3, an array in RESP2. The handler queues every confirmation but the last in
``ClientState.pushes`` (through ``Engine._push``) and returns the last one as the reply, so the
server must write a client's pending pushes *before* the reply of its command. Messages go to
subscribers with ``Engine.publish`` (channels and patterns) and :func:`spublish` (shard
channels), also through ``ClientState.pushes``. The confirmation count of SUBSCRIBE/PSUBSCRIBE
is channels + patterns; that of SSUBSCRIBE is shard channels only (observed on 9.1.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.commands.client import help_reply
from engine.commands.table import command, container
from engine.context import ClientState, Ctx
from engine.errors import subcommand_or_arity
from persistence.rdb.glob import glob_match
from persistence.resp.frames import Bulk, Integer, Push

if TYPE_CHECKING:
    from engine.engine import Engine

_PS = "pubsub noscript loading stale"


def _confirm(kind: bytes, name: bytes | None, count: int) -> Push:
    return Push([Bulk(kind), Bulk(name), Integer(count)])


def _reply_all(engine: Engine, client: ClientState, frames: list[Push]) -> Push:
    for f in frames[:-1]:
        client.pushes.append(f)
    if len(frames) > 1:
        engine.pushed.add(client)
    return frames[-1]


def _add(registry: dict[bytes, set[ClientState]], name: bytes, client: ClientState) -> None:
    subs = registry.get(name)
    if subs is None:
        subs = registry[name] = set()
    subs.add(client)


def _remove(registry: dict[bytes, set[ClientState]], name: bytes, client: ClientState) -> None:
    subs = registry.get(name)
    if subs is not None:
        subs.discard(client)
        if not subs:
            del registry[name]


def _count(c: ClientState) -> int:
    return len(c.channels) + len(c.patterns)


@command("subscribe", -2, _PS, acl="@pubsub @slow")
def subscribe(ctx: Ctx, argv: list[bytes]) -> Any:
    engine, c = ctx.engine, ctx.client
    frames = []
    for ch in argv[1:]:
        if ch not in c.channels:
            c.channels.add(ch)
            _add(engine.channels, ch, c)
        frames.append(_confirm(b"subscribe", ch, _count(c)))
    return _reply_all(engine, c, frames)


@command("psubscribe", -2, _PS, acl="@pubsub @slow")
def psubscribe(ctx: Ctx, argv: list[bytes]) -> Any:
    engine, c = ctx.engine, ctx.client
    frames = []
    for pat in argv[1:]:
        if pat not in c.patterns:
            c.patterns.add(pat)
            _add(engine.patterns, pat, c)
        frames.append(_confirm(b"psubscribe", pat, _count(c)))
    return _reply_all(engine, c, frames)


@command("ssubscribe", -2, _PS, 1, -1, 1, acl="@pubsub @slow")
def ssubscribe(ctx: Ctx, argv: list[bytes]) -> Any:
    engine, c = ctx.engine, ctx.client
    frames = []
    for ch in argv[1:]:
        if ch not in c.shard_channels:
            c.shard_channels.add(ch)
            _add(engine.shard_channels, ch, c)
        frames.append(_confirm(b"ssubscribe", ch, len(c.shard_channels)))
    return _reply_all(engine, c, frames)


def _unsub(
    engine: Engine,
    c: ClientState,
    names: list[bytes],
    mine: set[bytes],
    registry: dict[bytes, set[ClientState]],
    kind: bytes,
    shard: bool,
) -> list[Push]:
    frames = []
    # with no arguments: every subscription of this kind (in the client's dict order)
    for name in names or list(mine):
        if name in mine:
            mine.discard(name)
            _remove(registry, name, c)
        frames.append(_confirm(kind, name, len(c.shard_channels) if shard else _count(c)))
    if not frames:  # nothing to unsubscribe from: one reply with a null name
        frames.append(_confirm(kind, None, len(c.shard_channels) if shard else _count(c)))
    return frames


@command("unsubscribe", -1, _PS, acl="@pubsub @slow")
def unsubscribe(ctx: Ctx, argv: list[bytes]) -> Any:
    e, c = ctx.engine, ctx.client
    frames = _unsub(e, c, argv[1:], c.channels, e.channels, b"unsubscribe", False)
    return _reply_all(e, c, frames)


@command("punsubscribe", -1, _PS, acl="@pubsub @slow")
def punsubscribe(ctx: Ctx, argv: list[bytes]) -> Any:
    e, c = ctx.engine, ctx.client
    frames = _unsub(e, c, argv[1:], c.patterns, e.patterns, b"punsubscribe", False)
    return _reply_all(e, c, frames)


@command("sunsubscribe", -1, _PS, 1, -1, 1, acl="@pubsub @slow")
def sunsubscribe(ctx: Ctx, argv: list[bytes]) -> Any:
    e, c = ctx.engine, ctx.client
    frames = _unsub(e, c, argv[1:], c.shard_channels, e.shard_channels, b"sunsubscribe", True)
    return _reply_all(e, c, frames)


def unsubscribe_everything(engine: Engine, c: ClientState) -> None:
    """RESET: drop every subscription without confirmations (src/pubsub.c)."""
    for name in c.channels:
        _remove(engine.channels, name, c)
    for name in c.patterns:
        _remove(engine.patterns, name, c)
    for name in c.shard_channels:
        _remove(engine.shard_channels, name, c)
    c.channels.clear()
    c.patterns.clear()
    c.shard_channels.clear()


@command("publish", 3, "pubsub loading stale fast", acl="@pubsub @fast")
def publish(ctx: Ctx, argv: list[bytes]) -> Any:
    return ctx.engine.publish(argv[1], argv[2])


def spublish(engine: Engine, channel: bytes, message: bytes) -> int:
    subs = engine.shard_channels.get(channel)
    if not subs:
        return 0
    for c in subs:
        engine._push(c, [b"smessage", channel, message])
    return len(subs)


@command("spublish", 3, "pubsub loading stale fast", 1, 1, 1, acl="@pubsub @fast")
def spublish_(ctx: Ctx, argv: list[bytes]) -> Any:
    return spublish(ctx.engine, argv[1], argv[2])


# -- PUBSUB -------------------------------------------------------------------------------
container("pubsub", -2, acl="@slow")


def _channels(registry: dict[bytes, set[ClientState]], argv: list[bytes]) -> Any:
    if len(argv) > 3:
        raise subcommand_or_arity(argv[1], "PUBSUB")
    pat = argv[2] if len(argv) == 3 else None
    return [ch for ch in registry if pat is None or glob_match(pat, ch)]


@command("pubsub|channels", -2, "pubsub loading stale", acl="@pubsub @slow")
def pubsub_channels(ctx: Ctx, argv: list[bytes]) -> Any:
    return _channels(ctx.engine.channels, argv)


@command("pubsub|shardchannels", -2, "pubsub loading stale", acl="@pubsub @slow")
def pubsub_shardchannels(ctx: Ctx, argv: list[bytes]) -> Any:
    return _channels(ctx.engine.shard_channels, argv)


def _numsub(registry: dict[bytes, set[ClientState]], names: list[bytes]) -> Any:
    # src/pubsub.c: a flat array (channel, count, ...) in RESP2 and RESP3, repeats kept
    out: list[Any] = []
    for ch in names:
        out += (ch, len(registry.get(ch, ())))
    return out


@command("pubsub|numsub", -2, "pubsub loading stale", acl="@pubsub @slow")
def pubsub_numsub(ctx: Ctx, argv: list[bytes]) -> Any:
    return _numsub(ctx.engine.channels, argv[2:])


@command("pubsub|shardnumsub", -2, "pubsub loading stale", acl="@pubsub @slow")
def pubsub_shardnumsub(ctx: Ctx, argv: list[bytes]) -> Any:
    return _numsub(ctx.engine.shard_channels, argv[2:])


@command("pubsub|numpat", 2, "pubsub loading stale", acl="@pubsub @slow")
def pubsub_numpat(ctx: Ctx, argv: list[bytes]) -> Any:
    return len(ctx.engine.patterns)


_HELP = [
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Print this help.",
]


@command("pubsub|help", 2, "loading stale", acl="@slow")
def pubsub_help(ctx: Ctx, argv: list[bytes]) -> Any:
    return help_reply(_HELP)
