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
    return CommandError(
        f"ERR unknown command '{_clip(name, 128)}', with args beginning with: {shown}"
    )


def unknown_subcommand(sub: bytes, cmd: bytes) -> CommandError:
    return CommandError(
        f"ERR unknown subcommand '{_clip(sub, 128)}'. Try {cmd.decode(errors='replace').upper()} HELP."
    )


def wrong_arity(name: bytes) -> CommandError:
    return CommandError(
        f"ERR wrong number of arguments for '{name.decode(errors='replace').lower()}' command"
    )


def invalid_expire(cmd: bytes) -> CommandError:
    """src/expire.c: the command name as typed, lower case."""
    return CommandError(
        f"ERR invalid expire time in '{cmd.decode(errors='replace').lower()}' command"
    )


def unsupported_option(opt: bytes) -> CommandError:
    return CommandError(f"ERR Unsupported option {opt.decode(errors='replace')}")


def _clip(b: bytes, n: int) -> str:
    return b[:n].decode(errors="replace")


# src/t_list.c, src/timeout.c (lists helper)
TIMEOUT_OUT_OF_RANGE = "ERR timeout is out of range"
LPOS_RANK_ZERO = (
    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
    "or use negative to start from the end of the list"
)
LPOS_COUNT_NEGATIVE = "ERR COUNT can't be negative"
LPOS_MAXLEN_NEGATIVE = "ERR MAXLEN can't be negative"


def out_of_range_between(lo: int, hi: int) -> str:
    """src/object.c getRangeLongFromObjectOrReply without a custom message (sic)."""
    return f"ERR value is out of range, value must between {lo} and {hi}"


# strings, bitmaps and generic keys (src/t_string.c, src/bitops.c, src/db.c, src/cluster.c)
DECR_OVERFLOW = "ERR decrement would overflow"
OFFSET_RANGE = "ERR offset is out of range"
BITPOS_BIT = "ERR The bit argument must be 1 or 0."
BITOP_NOT_ONE_KEY = "ERR BITOP NOT must be called with a single source key."
LCS_NOT_STRINGS = "ERR The specified keys must contain string values"
LCS_LEN_AND_IDX = "ERR If you want both the length and indexes, please just use IDX."
INVALID_CURSOR = "ERR invalid cursor"
INVALID_FIRST_DB = "ERR invalid first DB index"
INVALID_SECOND_DB = "ERR invalid second DB index"
DUMP_PAYLOAD = "ERR DUMP payload version or checksum are wrong"
BAD_DATA_FORMAT = "ERR Bad data format"
INVALID_TTL = "ERR Invalid TTL value, must be >= 0"
INVALID_IDLETIME = "ERR Invalid IDLETIME value, must be >= 0"
INVALID_FREQ = "ERR Invalid FREQ value, must be >= 0 and <= 255"
OBJECT_FREQ_NO_LFU = (
    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note"
    " that when switching between policies at runtime LRU and LFU data will take some time"
    " to adjust."
)
OBJECT_IDLE_LFU = (
    "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when"
    " switching between policies at runtime LRU and LFU data will take some time to adjust."
)
SWAPDB_CLUSTER = "ERR SWAPDB is not allowed in cluster mode"
BITFIELD_OVERFLOW_TYPE = "ERR Invalid OVERFLOW type specified"
BITFIELD_TYPE = (
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but"
    " i64 is."
)
BITFIELD_RO_WRITE = "ERR BITFIELD_RO only supports the GET subcommand"


def unknown_type_name(name: bytes) -> CommandError:
    """SCAN ... TYPE with an unknown type (src/db.c scanGenericCommand)."""
    return CommandError(f"ERR unknown type name '{_clip(name, 1 << 20)}'")


# sets and sorted sets (src/t_set.c, src/t_zset.c, src/db.c scanGenericCommand)
NUMKEYS_GT_ARGS = "ERR Number of keys can't be greater than number of args"
LIMIT_NEGATIVE = "ERR LIMIT can't be negative"
LONG_RANGE_SYMMETRIC = (
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
)
NOVALUES_ONLY_HSCAN = "ERR NOVALUES option can only be used in HSCAN"
NOSCORES_ONLY_ZSCAN = "ERR NOSCORES option can only be used in ZSCAN"
ZADD_XX_NX = "ERR XX and NX options at the same time are not compatible"
ZADD_GT_LT_NX = "ERR GT, LT, and/or NX options at the same time are not compatible"
ZADD_INCR_PAIR = "ERR INCR option supports a single increment-element pair"
ZADD_NAN = "ERR resulting score is not a number (NaN)"
WEIGHT_NOT_FLOAT = "ERR weight value is not a float"
ZRANGE_LIMIT_RANK = (
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
)
ZRANGE_WITHSCORES_BYLEX = "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
VALUE_OUT_OF_RANGE = "ERR value is out of range"


def at_least_one_key(cmd: str) -> CommandError:
    """src/t_zset.c zunionInterDiffGenericCommand: numkeys < 1."""
    return CommandError(f"ERR at least 1 input key is needed for '{cmd}' command")


# streams (src/t_stream.c, src/timeout.c)
STREAM_ID_INVALID = "ERR Invalid stream ID specified as stream command argument"
XADD_ID_SMALL = "ERR The ID specified in XADD is equal or smaller than the target stream top item"
XADD_ID_ZERO = "ERR The ID specified in XADD must be greater than 0-0"
STREAM_EXHAUSTED = "ERR The stream has exhausted the last possible ID, unable to add more items"
STREAM_TOO_LARGE = "ERR Elements are too large to be stored"
XTRIM_BOTH = "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
XTRIM_MAXLEN_NEG = "ERR The MAXLEN argument must be >= 0."
XTRIM_LIMIT_NEG = "ERR The LIMIT argument must be >= 0."
XTRIM_LIMIT_NO_STRATEGY = (
    "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
)
XTRIM_NO_STRATEGY = "ERR syntax error, XTRIM must be called with a trimming strategy"
XTRIM_LIMIT_NO_APPROX = "ERR syntax error, LIMIT cannot be used without the special ~ option"
STREAM_START_ID = "ERR invalid start ID for the interval"
STREAM_END_ID = "ERR invalid end ID for the interval"
TIMEOUT_NOT_INTEGER = "ERR timeout is not an integer or out of range"
XREAD_GROUP_OPTION = (
    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
)
XREAD_NOACK_OPTION = (
    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
)
XREADGROUP_NO_GROUP = "ERR Missing GROUP option for XREADGROUP"
XREADGROUP_DOLLAR = (
    "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of "
    "this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID "
    "would just return an empty result set."
)
XREAD_GT_ID = (
    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> "
    "<consumer> option."
)
XGROUP_ENTRIESREAD = "ERR value for ENTRIESREAD must be positive or -1"
XGROUP_NO_KEY = (
    "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to "
    "use the MKSTREAM option to create an empty stream automatically."
)
BUSYGROUP = "BUSYGROUP Consumer Group name already exists"
XSETID_ENTRIES_ADDED_NEG = "ERR entries_added must be positive"
XSETID_LT_ARG_MAXDEL = (
    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"
)
XSETID_LT_MAXDEL = "ERR The ID specified in XSETID is smaller than current max_deleted_entry_id"
XSETID_LT_TOP = "ERR The ID specified in XSETID is smaller than the target stream top item"
XSETID_ENTRIES_ADDED_SMALL = (
    "ERR The entries_added specified in XSETID is smaller than the target stream length"
)
XAUTOCLAIM_COUNT = "ERR COUNT must be > 0"


def xread_unbalanced(cmd: str, symbol: str) -> CommandError:
    return CommandError(
        f"ERR Unbalanced '{cmd}' list of streams: for each stream key an ID or '{symbol}' must "
        "be specified."
    )


def nogroup_read(key: bytes, group: bytes) -> CommandError:
    """XREADGROUP on a missing key or group."""
    return CommandError(
        f"NOGROUP No such key '{_clip(key, 1 << 20)}' or consumer group "
        f"'{_clip(group, 1 << 20)}' in XREADGROUP with GROUP option"
    )


def nogroup_key(key: bytes, group: bytes) -> CommandError:
    """XPENDING / XCLAIM / XAUTOCLAIM on a missing key or group."""
    return CommandError(
        f"NOGROUP No such key '{_clip(key, 1 << 20)}' or consumer group '{_clip(group, 1 << 20)}'"
    )


def nogroup_for_key(group: bytes, key: bytes) -> CommandError:
    """XGROUP / XINFO CONSUMERS on a missing group."""
    return CommandError(
        f"NOGROUP No such consumer group '{_clip(group, 1 << 20)}' for key name "
        f"'{_clip(key, 1 << 20)}'"
    )


def stream_option_error(what: str, cmd: str) -> str:
    """XCLAIM / XAUTOCLAIM integer arguments: 'Invalid <what> argument for <cmd>'."""
    return f"ERR Invalid {what} argument for {cmd}"


def xclaim_unrecognized(opt: bytes) -> CommandError:
    return CommandError(f"ERR Unrecognized XCLAIM option '{_clip(opt, 1 << 20)}'")


def subcommand_syntax(sub: bytes, cmd: bytes) -> CommandError:
    """addReplySubcommandSyntaxError (src/networking.c)."""
    return CommandError(
        f"ERR unknown subcommand or wrong number of arguments for '{_clip(sub, 128)}'. "
        f"Try {cmd.decode(errors='replace').upper()} HELP."
    )


XREADGROUP_PLUS = (
    "ERR The + ID is meaningless in the context of XREADGROUP: you want to read the history of "
    "this consumer by specifying a proper ID, or use the > ID to get new messages. The + ID "
    "would just return an empty result set."
)


# src/t_hash.c, src/db.c, src/object.c (hashes helper)
HASH_NAN_OR_INF = "ERR value is NaN or Infinity"
HASH_VALUE_OUT_OF_RANGE = "ERR value is out of range"
HASH_LONG_RANGE = (
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
)
HASH_INVALID_CURSOR = "ERR invalid cursor"


# -- connection, server, transactions, pub/sub (src/networking.c, src/server.c, src/config.c,
# src/multi.c, src/pubsub.c) --
NOPROTO = "NOPROTO unsupported protocol version"
PROTO_NOT_INTEGER = "ERR Protocol version is not an integer or out of range"
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
AUTH_NOT_CONFIGURED = (
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?"
)
CLIENT_NAME_CHARS = "ERR Client names cannot contain spaces, newlines or special characters."
NO_SUCH_CLIENT = "ERR No such client"
MAXAGE_NOT_INTEGER = "ERR maxage is not an integer or out of range"
NO_CONFIG_FILE = "ERR The server is running without a config file"
GETKEYS_INVALID_COMMAND = "ERR Invalid command specified"
GETKEYS_INVALID_ARGS = "ERR Invalid number of arguments specified for command"
GETKEYS_NO_KEYS = "ERR The command has no key arguments"
SHUTDOWN_NOT_ALLOWED = "ERR Errors trying to SHUTDOWN. Check logs."


def not_in_transaction(fullname: str) -> CommandError:
    """src/server.c processCommand: a no-multi command inside MULTI."""
    return CommandError(f"ERR Command '{fullname}' not allowed inside a transaction")


def exec_abort_because(message: str) -> CommandError:
    """src/multi.c execCommandAbort: an error rejecting EXEC itself (arity ...)."""
    if message.startswith("ERR "):
        message = message[4:]
    return CommandError(f"EXECABORT Transaction discarded because of: {message}")


def setinfo_chars(option: str) -> CommandError:
    return CommandError(f"ERR {option} cannot contain spaces, newlines or special characters.")


def unrecognized_option(opt: bytes) -> CommandError:
    return CommandError(f"ERR Unrecognized option '{_clip(opt, 128)}'")


def unknown_client_type(t: bytes) -> CommandError:
    return CommandError(f"ERR Unknown client type '{_clip(t, 128)}'")


def no_such_user(u: bytes) -> CommandError:
    return CommandError(f"ERR No such user '{_clip(u, 128)}'")


def hello_syntax(opt: bytes) -> CommandError:
    return CommandError(f"ERR Syntax error in HELLO option '{_clip(opt, 128)}'")


def subcommand_or_arity(sub: bytes, cmd: str) -> CommandError:
    """addReplySubcommandSyntaxError (src/networking.c)."""
    return CommandError(
        f"ERR unknown subcommand or wrong number of arguments for '{_clip(sub, 128)}'. "
        f"Try {cmd} HELP."
    )


def config_set_failed(name: str, reason: str) -> CommandError:
    return CommandError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")


def pubsub_context(name: str) -> CommandError:
    return CommandError(
        f"ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
        "RESET are allowed in this context"
    )


HELLO_NOAUTH = (
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
    "<proto> AUTH <user> <pass> option can be used to authenticate the client and select the "
    "RESP protocol version at the same time"
)
GETKEYS_INVALID = "ERR Invalid arguments specified for command"


# ==== cluster mode (src/cluster.c clusterRedirectClient, src/cluster_legacy.c) ====
# -- redirections (src/cluster.c clusterRedirectClient) ---------------------------------------
CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot"
TRYAGAIN = "TRYAGAIN Multiple keys request during rehashing of slot"
CLUSTERDOWN = "CLUSTERDOWN The cluster is down"
CLUSTERDOWN_RO = "CLUSTERDOWN The cluster is down and only accepts read commands"
CLUSTERDOWN_UNBOUND = "CLUSTERDOWN Hash slot not served"


def moved(slot: int, host: str, port: int) -> str:
    return f"MOVED {slot} {host}:{port}"


def ask(slot: int, host: str, port: int) -> str:
    return f"ASK {slot} {host}:{port}"


# -- CLUSTER subcommands (src/cluster.c, src/cluster_legacy.c) --------------------------------
CLUSTER_DISABLED = "ERR This instance has cluster support disabled"
INVALID_SLOT = "ERR Invalid or out of range slot"
INVALID_SLOT_SHORT = "ERR Invalid slot"  # COUNTKEYSINSLOT
INVALID_SLOT_OR_COUNT = "ERR Invalid slot or number of keys"  # GETKEYSINSLOT
SETSLOT_SYNTAX = "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP"
TARGET_NOT_PRIMARY = "ERR Target node is not a master"
MISSING_TIMEOUT = "ERR Missing timeout value"
TIMEOUT_NOT_INT = "ERR timeout is not an integer or out of range"
FORGET_MYSELF = "ERR I tried hard but I can't forget myself..."
FORGET_PRIMARY = "ERR Can't forget my master!"
RESET_WITH_KEYS = "ERR CLUSTER RESET can't be called with master nodes containing keys"
FLUSHSLOTS_NOT_EMPTY = "ERR DB must be empty to perform CLUSTER FLUSHSLOTS."
PORT_RANGE = "ERR Port number is out of range"
BUS_PORT_RANGE = "ERR Cluster bus port number is out of range"
EPOCH_OTHER_NODES = (
    "ERR The user can assign a config epoch only when the node does not know any other node."
)
EPOCH_NONZERO = "ERR Node config epoch is already non-zero"
NOT_A_PRIMARY = "ERR The specified node is not a master"
NO_ID = "ERR No ID yet"
SETSLOT_REPLICA = "ERR Please use SETSLOT only with masters."


def slot_busy(slot: int) -> str:
    return f"ERR Slot {slot} is already busy"


def slot_unassigned(slot: int) -> str:
    return f"ERR Slot {slot} is already unassigned"


def slot_twice(slot: int) -> str:
    return f"ERR Slot {slot} specified multiple times"


def start_after_end(start: int, end: int) -> str:
    return f"ERR start slot number {start} is greater than end slot number {end}"


def not_owner(slot: int) -> str:
    return f"ERR I'm not the owner of hash slot {slot}"


def already_owner(slot: int) -> str:
    return f"ERR I'm already the owner of hash slot {slot}"


def dont_know_node(name: str) -> str:
    return f"ERR I don't know about node {name}"


def unknown_node(name: str) -> str:
    return f"ERR Unknown node {name}"


def still_holding_keys(slot: int) -> str:
    return (
        f"ERR Can't assign hashslot {slot} to a different node while I still hold keys for "
        "this hash slot."
    )


def bad_port(text: str) -> str:
    return f"ERR Invalid base port specified: {text}"


def bad_bus_port(text: str) -> str:
    return f"ERR Invalid bus port specified: {text}"


def bad_address(ip: str, port: str) -> str:
    return f"ERR Invalid node address specified: {ip}:{port}"


def bad_epoch(epoch: int) -> str:
    return f"ERR Invalid config epoch specified: {epoch}"


def save_failed(why: str) -> str:
    return f"ERR error saving the cluster node config: {why}"


# ==== persistence commands (src/rdb.c, src/aof.c, src/server.c) ====
BGSAVE_IN_PROGRESS = "ERR Background save already in progress"
BGSAVE_BUSY = (
    "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE "
    "in order to schedule a BGSAVE whenever possible."
)
BGSAVE_NOTHING_TO_CANCEL = "ERR Background saving is currently not in progress or scheduled"
REWRITE_IN_PROGRESS = "ERR Background append only file rewriting already in progress"
REWRITE_FAILED = (
    "ERR Can't execute an AOF background rewriting. Please check the server logs for more "
    "information."
)
GENERIC_ERR = "ERR"  # shared.err: "-ERR\r\n"
SHUTDOWN_FAILED = "ERR Errors trying to SHUTDOWN. Check logs."
NO_PERSISTENCE = "ERR persistence is not available in this engine (no server)"


# ==== atomic slot migration (src/cluster_migrateslots.c) ====
ERR_NOT_PRIMARY = "ERR Slot migration can only be used on primary nodes."
ERR_MANUAL_IMPORT = "ERR Slots are being manually imported"
ERR_MANUAL_MIGRATE = "ERR Slots are being manually migrated"
ERR_NO_END_SLOT = "ERR No end slot for final slot range"
ERR_SPAN_SHARDS = "ERR Requested slots span multiple shards"
ERR_NO_RANGES = "ERR No slot ranges specified"
ERR_NOT_SERVED = "ERR Slots are not served by this node."
ERR_RANGES_OVERLAP = "ERR Slot ranges in migrations overlap"
ERR_TARGET_SELF = "ERR Target node can not be this node."
ERR_NO_MIGRATIONS = "ERR No migrations ongoing"
ERR_UNKNOWN_SOURCE = "ERR Target node does not know the source node"
ERR_SOURCE_SELF = "ERR Source node is target node itself"
ERR_ALREADY_IMPORTING = (
    "ERR Slot is already being imported on the target by a different migration"  # one text
)
ERR_OWNERSHIP = "ERR Target node does not agree about current slot ownership"
ERR_NO_SUCH_JOB = "ERR No such slot migration job"


# ==== disk errors (src/server.c writeCommandsDeniedByDiskError / GetDiskErrorMessage) ====
MISCONF_RDB = (
    "MISCONF Valkey is configured to save RDB snapshots, but it's currently unable to persist "
    "to disk. Commands that may modify the data set are disabled, because this instance is "
    "configured to report errors during writes if RDB snapshotting fails "
    "(stop-writes-on-bgsave-error option). Please check the Valkey logs for details about the "
    "RDB error."
)


def misconf_aof(strerror: str) -> str:
    return f"MISCONF Errors writing to the AOF file: {strerror}"


AOF_ENABLE_FAILED = "Unable to turn on AOF. Check server logs."  # src/config.c updateAppendonly


# -- the cluster bus on the client port (engine/cluster/gossip.py; not a Valkey text) ---------
def bus_message(why: str) -> str:
    return f"ERR Invalid cluster bus message: {why}"


# -- atomic slot migration: CLUSTER SETSLOT while a job runs (src/cluster_legacy.c) -----------
ERR_SETSLOT_IMPORTING = "ERR Slot import in progress."
ERR_SETSLOT_EXPORTING = "ERR Slot export in progress."
