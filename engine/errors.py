"""Every error text the engine replies with, in Valkey's exact words (src/server.c shared
objects, src/*.c addReplyError* calls). Handlers raise :class:`CommandError`; nothing else in the
engine spells an error message."""

from __future__ import annotations


class CommandError(Exception):
    """An error reply. ``message`` includes its code (``ERR ...``, ``WRONGTYPE ...``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# src/server.c createSharedObjects
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
OUT_OF_RANGE = "ERR index out of range"
NO_SUCH_KEY = "ERR no such key"
DB_INDEX = "ERR DB index is out of range"
SAME_OBJECT = "ERR source and destination objects are the same"
NOT_POSITIVE = "ERR value is out of range, must be positive"
EXEC_ABORT = "EXECABORT Transaction discarded because of previous errors."
NOSCRIPT = "NOSCRIPT No matching script."
NOAUTH = "NOAUTH Authentication required."
OOM = "OOM command not allowed when used memory > 'maxmemory'."
BUSYKEY = "BUSYKEY Target key name already exists."
INCR_OVERFLOW = "ERR increment or decrement would overflow"
INCRFLOAT_NAN = "ERR increment would produce NaN or Infinity"
HASH_NOT_INTEGER = "ERR hash value is not an integer"
HASH_NOT_FLOAT = "ERR hash value is not a float"
STRING_TOO_LONG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
BIT_OFFSET = "ERR bit offset is not an integer or out of range"
BIT_VALUE = "ERR bit is not an integer or out of range"
MULTI_NESTED = "ERR MULTI calls can not be nested"
EXEC_WITHOUT_MULTI = "ERR EXEC without MULTI"
DISCARD_WITHOUT_MULTI = "ERR DISCARD without MULTI"
WATCH_IN_MULTI = "ERR WATCH inside MULTI is not allowed"
NUMKEYS_POSITIVE = "ERR numkeys should be greater than 0"
TIMEOUT_NOT_FLOAT = "ERR timeout is not a float or out of range"
TIMEOUT_NEGATIVE = "ERR timeout is negative"
MIN_MAX_NOT_FLOAT = "ERR min or max is not a float"
MIN_MAX_NOT_STRING = "ERR min or max not valid string range item"
COUNT_POSITIVE = "ERR count should be greater than 0"
# src/t_hash.c / src/expire.c field TTLs (spec 1.2)
NUMFIELDS = "ERR numfields should be greater than 0 and match the provided number of fields"
NX_XX_GT_LT = "ERR NX and XX, GT or LT options at the same time are not compatible"
GT_LT = "ERR GT and LT options at the same time are not compatible"


def unknown_command(name: bytes, args: list[bytes]) -> CommandError:
    """src/server.c processCommand: the args part lists at most 128 bytes of arguments."""
    shown = ""
    for a in args:
        if len(shown) >= 128:
            break
        shown += f"'{_clip(a, 128 - len(shown))}' "
    return CommandError(f"ERR unknown command '{_clip(name, 128)}', with args beginning with: {shown}")


def unknown_subcommand(sub: bytes, cmd: bytes) -> CommandError:
    return CommandError(
        f"ERR unknown subcommand '{_clip(sub, 128)}'. Try {cmd.decode(errors='replace').upper()} HELP."
    )


def wrong_arity(name: bytes) -> CommandError:
    return CommandError(f"ERR wrong number of arguments for '{name.decode(errors='replace').lower()}' command")


def invalid_expire(cmd: bytes) -> CommandError:
    """src/expire.c: the command name as typed, lower case."""
    return CommandError(f"ERR invalid expire time in '{cmd.decode(errors='replace').lower()}' command")


def unsupported_option(opt: bytes) -> CommandError:
    return CommandError(f"ERR Unsupported option {opt.decode(errors='replace')}")


def _clip(b: bytes, n: int) -> str:
    return b[:n].decode(errors="replace")
