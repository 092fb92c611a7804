"""Command modules; importing this package registers every command in the table.

One module per data type (strings, lists, hashes, sets, zsets, streams), plus generic keys,
connection (PING, HELLO, AUTH, CLIENT, SELECT...), server (INFO, CONFIG, COMMAND, DBSIZE...),
transactions (MULTI/EXEC/WATCH), pub/sub and persistence (SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE).
"""

from engine.commands import (  # noqa: F401
    connection,
    hashes,
    keys,
    lists,
    persistence,
    pubsub,
    server,
    sets,
    streams,
    strings,
    transactions,
    zsets,
)
