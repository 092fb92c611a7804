"""INFO (src/server.c genValkeyInfoString): Valkey's sections and field names, in its order.

Values come from ``engine.stats``, the keyspace, the config and ``engine.server_info`` (which
the server fills: process_id, run_id, tcp_port, executable, config_file, used_memory,
connected_clients ...). ``engine.info_providers[section]`` callbacks (registered by the server
and the durability code) return ``(name, value)`` pairs that replace a default field of the
same name or are appended to the section, e.g. the ``aof_*`` fields of Persistence.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from engine.commands.table import command
from engine.context import Ctx
from persistence.resp.frames import Verbatim

if TYPE_CHECKING:
    from engine.engine import Engine

Fields = list[tuple[str, str]]

# (section key, title) in output order; the default set is the first column's "d" ones
_SECTIONS = (
    ("server", "Server", True), ("clients", "Clients", True), ("memory", "Memory", True),
    ("persistence", "Persistence", True), ("stats", "Stats", True),
    ("replication", "Replication", True), ("cpu", "CPU", True), ("modules", "Modules", True),
    ("commandstats", "Commandstats", False), ("errorstats", "Errorstats", True),
    ("cluster", "Cluster", True), ("keyspace", "Keyspace", True),
)  # fmt: skip


def _human(n: int) -> str:
    """bytesToHuman (src/util.c)."""
    if n < 1024:
        return f"{n}B"
    for unit, scale in (("K", 1024), ("M", 1024**2), ("G", 1024**3), ("T", 1024**4)):
        if n < scale * 1024 or unit == "T":
            return f"{n / scale:.2f}{unit}"
    return f"{n}B"  # pragma: no cover


def _server(e: Engine, now_ms: int) -> Fields:
    si = e.server_info
    port = str(si.get("tcp_port", si.get("port", e.config["port"])))
    uptime = max(0, int(now_ms / 1000 - e.start_time))
    cluster = bool(e.config["cluster-enabled"])
    return [
        ("redis_version", "7.2.4"), ("server_name", "valkey"), ("valkey_version", "9.1.2"),
        ("valkey_release_stage", "ga"), ("redis_git_sha1", "00000000"), ("redis_git_dirty", "0"),
        ("redis_build_id", "0"), ("server_mode", "cluster" if cluster else "standalone"),
        ("os", str(si.get("os", sys.platform))), ("arch_bits", "64"),
        ("monotonic_clock", "POSIX clock_gettime"), ("multiplexing_api", "asyncio"),
        ("gcc_version", "0.0.0"), ("process_id", str(si.get("process_id", si.get("pid", 0)))),
        ("process_supervised", "no"), ("run_id", str(si.get("run_id", "0" * 40))),
        ("tcp_port", port), ("server_time_usec", str(e.clock.now_us())),
        ("uptime_in_seconds", str(uptime)), ("uptime_in_days", str(uptime // 86400)),
        ("hz", str(e.config["hz"])), ("configured_hz", str(e.config["hz"])),
        ("clients_hz", str(e.config["hz"])), ("lru_clock", str((now_ms // 1000) & 0xFFFFFF)),
        ("executable", str(si.get("executable", ""))),
        ("config_file", str(si.get("config_file", ""))), ("io_threads_active", "0"),
        ("availability_zone", ""),
        ("listener0", f"name=tcp,bind={e.config['bind'].split()[0]},port={port}"),
    ]  # fmt: skip


def _clients(e: Engine) -> Fields:
    clients = e.clients.values()
    watched = sum(len(c.watched) for c in clients)
    return [
        ("connected_clients", str(e.server_info.get("connected_clients", len(e.clients)))),
        ("cluster_connections", "0"), ("maxclients", str(e.config["maxclients"])),
        ("client_recent_max_input_buffer", "0"), ("client_recent_max_output_buffer", "0"),
        ("blocked_clients", str(e.server_info.get("blocked_clients", 0))),
        ("tracking_clients", "0"),
        ("pubsub_clients", str(sum(1 for c in clients if c.subscriptions))),
        ("watching_clients", str(sum(1 for c in clients if c.watched))),
        ("clients_in_timeout_table", "0"), ("total_watched_keys", str(watched)),
        ("total_blocking_keys", "0"), ("total_blocking_keys_on_nokey", "0"),
        ("paused_reason", "none"), ("paused_actions", "none"),
        ("paused_timeout_milliseconds", "0"),
    ]  # fmt: skip


_MEMORY_ZERO = (
    "used_memory_overhead", "used_memory_startup", "used_memory_dataset", "allocator_allocated",
    "allocator_active", "allocator_resident", "allocator_muzzy", "used_memory_lua",
    "used_memory_vm_eval", "used_memory_scripts_eval", "number_of_cached_scripts",
    "number_of_functions", "number_of_libraries", "used_memory_vm_functions",
    "used_memory_vm_total", "used_memory_functions", "used_memory_scripts",
)  # fmt: skip


def _memory(e: Engine) -> Fields:
    used = int(e.server_info.get("used_memory", 0))
    rss = int(e.server_info.get("used_memory_rss", used))
    maxmem = int(e.config["maxmemory"])
    f: Fields = [
        ("used_memory", str(used)), ("used_memory_human", _human(used)),
        ("used_memory_rss", str(rss)), ("used_memory_rss_human", _human(rss)),
        ("used_memory_peak", str(used)), ("used_memory_peak_human", _human(used)),
        ("used_memory_peak_perc", "100.00%"),
    ]  # fmt: skip
    f += [(n, "0") for n in _MEMORY_ZERO[:3]] + [("used_memory_dataset_perc", "0.00%")]
    f += [(n, "0") for n in _MEMORY_ZERO[3:7]]
    f += [("total_system_memory", "0"), ("total_system_memory_human", "0B")]
    f += [(n, "0") for n in _MEMORY_ZERO[7:9]] + [("used_memory_lua_human", "0B")]
    f += [(n, "0") for n in _MEMORY_ZERO[9:15]] + [("used_memory_vm_total_human", "0B")]
    f += [(n, "0") for n in _MEMORY_ZERO[15:]] + [("used_memory_scripts_human", "0B")]
    f += [
        ("maxmemory", str(maxmem)), ("maxmemory_human", _human(maxmem)),
        ("maxmemory_policy", str(e.config["maxmemory-policy"])),
        ("allocator_frag_ratio", "1.00"), ("allocator_frag_bytes", "0"),
        ("allocator_rss_ratio", "1.00"), ("allocator_rss_bytes", "0"),
        ("rss_overhead_ratio", "1.00"), ("rss_overhead_bytes", "0"),
        ("mem_fragmentation_ratio", "1.00"), ("mem_fragmentation_bytes", "0"),
    ]  # fmt: skip
    f += [(n, "0") for n in (
        "mem_not_counted_for_evict", "mem_replication_backlog", "mem_total_replication_buffers",
        "mem_replicas_repl_buffer", "mem_clients_slaves", "mem_clients_normal",
        "mem_cluster_links", "mem_cluster_slot_import", "mem_cluster_slot_export",
        "mem_aof_buffer")]  # fmt: skip
    f += [("mem_allocator", "pymalloc"), ("mem_overhead_db_hashtable_rehashing", "0"),
          ("active_defrag_running", "0"), ("lazyfree_pending_objects", "0"),
          ("lazyfreed_objects", "0")]  # fmt: skip
    return f


def _persistence(e: Engine) -> Fields:
    si = e.server_info
    z = "0"
    return [
        ("loading", "1" if e.loading else z), ("async_loading", z), ("current_cow_peak", z),
        ("current_cow_size", z), ("current_cow_size_age", z), ("current_fork_perc", "0.00"),
        ("current_save_keys_processed", z), ("current_save_keys_total", z),
        ("rdb_changes_since_last_save", str(e.stats.dirty)), ("rdb_bgsave_in_progress", z),
        ("rdb_last_save_time", str(si.get("lastsave", 0))), ("rdb_last_bgsave_status", "ok"),
        ("rdb_last_bgsave_time_sec", "-1"), ("rdb_current_bgsave_time_sec", "-1"),
        ("rdb_saves", z), ("rdb_last_cow_size", z), ("rdb_last_load_keys_expired", z),
        ("rdb_last_load_keys_loaded", z), ("aof_enabled", "1" if e.config["appendonly"] else z),
        ("aof_rewrite_in_progress", z), ("aof_rewrite_scheduled", z),
        ("aof_last_rewrite_time_sec", "-1"), ("aof_current_rewrite_time_sec", "-1"),
        ("aof_last_bgrewrite_status", "ok"), ("aof_rewrites", z),
        ("aof_rewrites_consecutive_failures", z), ("aof_last_write_status", "ok"),
        ("aof_last_cow_size", z), ("module_fork_in_progress", z),
        ("module_fork_last_cow_size", z), ("slot_migration_fork_in_progress", z),
    ] + ([(n, z) for n in _AOF_ON] if e.config["appendonly"] else [])  # fmt: skip


# printed only while appendonly is on (values from the durability provider)
_AOF_ON = ("aof_current_size", "aof_base_size", "aof_pending_rewrite", "aof_buffer_length",
           "aof_pending_bio_fsync", "aof_delayed_fsync")  # fmt: skip


_STATS_ZERO = (
    "total_net_input_bytes", "total_net_output_bytes", "total_net_repl_input_bytes",
    "total_net_repl_output_bytes", "total_net_cluster_slot_import_bytes",
    "total_net_cluster_slot_export_bytes",
)  # fmt: skip
_STATS_TAIL = (
    "latest_fork_usec", "total_forks", "migrate_cached_sockets", "slave_expires_tracked_keys",
    "active_defrag_hits", "active_defrag_misses", "active_defrag_key_hits",
    "active_defrag_key_misses", "total_active_defrag_time", "current_active_defrag_time",
    "tracking_total_keys", "tracking_total_items", "tracking_total_prefixes",
    "unexpected_error_replies",
)  # fmt: skip
_STATS_IO = (
    "dump_payload_sanitizations", "total_reads_processed", "total_writes_processed",
    "io_threaded_reads_processed", "io_threaded_writes_processed", "io_threaded_freed_objects",
    "io_threaded_accept_processed", "io_threaded_poll_processed",
    "io_threaded_total_prefetch_batches", "io_threaded_total_prefetch_entries",
    "client_query_buffer_limit_disconnections", "client_output_buffer_limit_disconnections",
    "reply_buffer_shrinks", "reply_buffer_expands", "eventloop_cycles",
    "eventloop_duration_sum", "eventloop_duration_cmd_sum",
    "instantaneous_eventloop_cycles_per_sec", "instantaneous_eventloop_duration_usec",
    "acl_access_denied_auth", "acl_access_denied_cmd", "acl_access_denied_key",
    "acl_access_denied_channel", "acl_access_denied_tls_cert", "acl_access_denied_db",
)  # fmt: skip


_KBPS = ("instantaneous_input_kbps", "instantaneous_output_kbps",
         "instantaneous_input_repl_kbps", "instantaneous_output_repl_kbps")  # fmt: skip


def _stats(e: Engine) -> Fields:
    s = e.stats
    ks = e.keyspace
    f: Fields = [
        ("total_connections_received", str(s.total_connections_received)),
        ("total_commands_processed", str(s.total_commands_processed)),
        ("instantaneous_ops_per_sec", "0"),
    ]
    f += [(n, str(e.server_info.get(n, 0))) for n in _STATS_ZERO]
    f += [(n, "0.00") for n in _KBPS]
    f += [
        ("rejected_connections", str(s.rejected_connections)), ("sync_full", "0"),
        ("sync_partial_ok", "0"), ("sync_partial_err", "0"),
        ("expired_keys", str(ks.stats_expired_keys)),
        ("expired_fields", str(ks.stats_expired_fields)), ("expired_stale_perc", "0.00"),
        ("expired_keys_with_volatile_items_stale_perc", "0.00"),
        ("expired_time_cap_reached_count", "0"), ("expire_cycle_cpu_milliseconds", "0"),
        ("evicted_keys", "0"), ("evicted_clients", "0"), ("evicted_scripts", "0"),
        ("total_eviction_exceeded_time", "0"), ("current_eviction_exceeded_time", "0"),
        ("keyspace_hits", str(s.keyspace_hits)), ("keyspace_misses", str(s.keyspace_misses)),
        ("pubsub_channels", str(len(e.channels))), ("pubsub_patterns", str(len(e.patterns))),
        ("pubsubshard_channels", str(len(e.shard_channels))),
    ]  # fmt: skip
    f += [(n, "0") for n in _STATS_TAIL]
    f += [("total_error_replies", str(s.total_error_replies))]
    f += [(n, str(e.server_info.get(n, 0))) for n in _STATS_IO]
    return f


def _replication(e: Engine) -> Fields:
    return [
        ("role", "master"), ("connected_slaves", "0"), ("replicas_waiting_psync", "0"),
        ("master_failover_state", "no-failover"),
        ("master_replid", str(e.server_info.get("replid", "0" * 40))),
        ("master_replid2", "0" * 40), ("master_repl_offset", "0"), ("second_repl_offset", "-1"),
        ("repl_backlog_active", "0"), ("repl_backlog_size", "10485760"),
        ("repl_backlog_first_byte_offset", "0"), ("repl_backlog_histlen", "0"),
    ]  # fmt: skip


def _cpu(e: Engine) -> Fields:
    try:
        t = os.times()  # reading the process times is not I/O
        sys_s, user_s, csys, cuser = t.system, t.user, t.children_system, t.children_user
    except OSError:  # pragma: no cover
        sys_s = user_s = csys = cuser = 0.0
    return [
        ("used_cpu_sys", f"{sys_s:.6f}"), ("used_cpu_user", f"{user_s:.6f}"),
        ("used_cpu_sys_children", f"{csys:.6f}"), ("used_cpu_user_children", f"{cuser:.6f}"),
        ("used_cpu_sys_main_thread", f"{sys_s:.6f}"),
        ("used_cpu_user_main_thread", f"{user_s:.6f}"),
        ("used_active_time_main_thread", "0.000000"),
    ]  # fmt: skip


def _commandstats(e: Engine) -> Fields:
    out: Fields = []
    for name, st in e.stats.commands.items():
        if not (st.calls or st.rejected_calls or st.failed_calls):
            continue
        per = st.usec / st.calls if st.calls else 0.0
        out.append((
            f"cmdstat_{name}",
            f"calls={st.calls},usec={st.usec},usec_per_call={per:.2f},"
            f"rejected_calls={st.rejected_calls},failed_calls={st.failed_calls}",
        ))  # fmt: skip
    return out


def _errorstats(e: Engine) -> Fields:
    return [(f"errorstat_{code}", f"count={n}") for code, n in e.stats.errors.items()]


def _keyspace(e: Engine, now_ms: int) -> Fields:
    out: Fields = []
    for db in e.keyspace.dbs:
        if not len(db):
            continue
        exp = db.expires
        ttls = [ms - now_ms for ms in exp.values() if ms > now_ms]
        avg = sum(ttls) // len(ttls) if ttls else 0
        out.append((
            f"db{db.id}",
            f"keys={len(db)},expires={len(exp)},avg_ttl={avg},"
            f"keys_with_volatile_items={len(db.volatile_keys)}",
        ))  # fmt: skip
    return out


def section_fields(e: Engine, key: str, now_ms: int) -> Fields:
    if key == "server":
        f = _server(e, now_ms)
    elif key == "clients":
        f = _clients(e)
    elif key == "memory":
        f = _memory(e)
    elif key == "persistence":
        f = _persistence(e)
    elif key == "stats":
        f = _stats(e)
    elif key == "replication":
        f = _replication(e)
    elif key == "cpu":
        f = _cpu(e)
    elif key == "commandstats":
        f = _commandstats(e)
    elif key == "errorstats":
        f = _errorstats(e)
    elif key == "cluster":
        f = [("cluster_enabled", "1" if e.config["cluster-enabled"] else "0")]
    elif key == "keyspace":
        f = _keyspace(e, now_ms)
    else:
        f = []
    provider = e.info_providers.get(key)
    if provider is not None:
        extra = provider()
        index = {name: i for i, (name, _) in enumerate(f)}
        for name, value in extra:
            i = index.get(name)
            if i is None:
                index[name] = len(f)
                f.append((name, value))
            else:
                f[i] = (name, value)
    return f


def info_text(e: Engine, args: list[bytes], now_ms: int) -> str:
    """genInfoSectionDict + genValkeyInfoString (src/server.c)."""
    names = {a.lower().decode(errors="replace") for a in args}
    if not names or "default" in names:
        wanted = {k for k, _, d in _SECTIONS if d}
    else:
        wanted = set()
    if names & {"all", "everything"}:
        wanted = {k for k, _, _ in _SECTIONS}
    wanted |= names
    parts = []
    for key, title, _ in _SECTIONS:
        if key in wanted:
            body = "".join(f"{n}:{v}\r\n" for n, v in section_fields(e, key, now_ms))
            parts.append(f"# {title}\r\n{body}")
    return "\r\n".join(parts)


@command("info", -1, "loading stale", acl="@slow @dangerous")
def info(ctx: Ctx, argv: list[bytes]) -> Any:
    # addReplyVerbatim: a bulk string in RESP2, verbatim "txt" in RESP3
    return Verbatim(b"txt", info_text(ctx.engine, argv[1:], ctx.now_ms).encode())
