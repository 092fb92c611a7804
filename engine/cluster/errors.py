"""Error texts of cluster mode, with Valkey's exact words (src/cluster.c clusterRedirectClient,
src/cluster_legacy.c clusterCommandSpecial). Kept beside the cluster code because engine/errors.py
was not this slice's file; they belong in engine/errors.py when the two are merged."""

from __future__ import annotations

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
TIMEOUT_NEGATIVE = "ERR timeout is negative"
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
