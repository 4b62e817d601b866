"""The text of INFO: sections server, clients, memory, persistence, stats,
replication, cpu, keyspace, with the field names Redis clients read."""
import os
import platform
import resource
import sys
import time

from kvdb.version import VERSION as KVDB_VERSION

from .compat import REDIS_VERSION

DEFAULT_SECTIONS = ["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "cluster",
                    "keyspace"]


def _human(n):
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.2f}{unit}" if unit != "B" else f"{n}B"
        n /= 1024


def _rss():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def section_server(s):
    up = int(time.time() - s.started)
    return [("redis_version", REDIS_VERSION), ("kvdb_version", KVDB_VERSION), ("redis_mode", "standalone"),
            ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
            ("arch_bits", 64 if sys.maxsize > 2 ** 32 else 32), ("multiplexing_api", "asyncio"),
            ("process_id", os.getpid()), ("run_id", s.replication.node_id), ("tcp_port", s.port or 0), ("server_time_usec", int(time.time() * 1e6)),
            ("uptime_in_seconds", up), ("uptime_in_days", up // 86400), ("hz", s.config["hz"]),
            ("executable", sys.argv[0]), ("config_file", s.config.file or ""),
            ("storage_engine", s.config["engine"]), ("sync", s.config["sync"])]


def section_clients(s):
    clients = list(s.clients.values())
    blocking = s.blocking
    # Clients waiting on keys, WAIT or CLIENT-level waits (blocking.by_client), and those in
    # DEBUG SLEEP (blocked, but not through blocking.py).
    waiting = blocking.by_client
    sleeping = sum(1 for c in clients if c.blocked and c not in waiting)
    keys_waited = len(blocking.waiters)
    return [("connected_clients", len(clients)), ("cluster_connections", 0), ("maxclients", s.config["maxclients"]),
            ("blocked_clients", blocking.blocked_clients + sleeping), ("tracking_clients", 0),
            ("clients_in_timeout_table", sum(1 for w in waiting.values() if w.timer is not None)),
            ("total_blocking_keys", keys_waited), ("total_blocking_keys_on_nokey", 0),
            ("pubsub_clients", sum(1 for c in clients if c.subscriptions)),
            ("watching_clients", sum(1 for c in clients if c.watched)),
            ("total_watched_keys", len(s.watchers))]


def section_memory(s):
    rss = _rss()
    return [("used_memory", rss), ("used_memory_human", _human(rss)), ("used_memory_rss", rss),
            ("used_memory_rss_human", _human(rss)), ("maxmemory", s.config["maxmemory"]),
            ("maxmemory_human", _human(s.config["maxmemory"])), ("maxmemory_policy", s.config["maxmemory-policy"]),
            ("engine_cache_size", s.config["cache-size"])]


def section_persistence(s):
    st = s.db.stats() if s.db is not None else {}
    out = [("loading", 0), ("async_loading", 0), ("rdb_changes_since_last_save", s.changes_since_save),
           ("rdb_bgsave_in_progress", 0), ("rdb_last_save_time", s.last_save), ("rdb_last_bgsave_status", "ok"),
           ("aof_enabled", 1), ("aof_rewrite_in_progress", 0), ("aof_last_write_status", "ok"),
           ("kvdb_sync", s.config["sync"])]
    for k, v in sorted(st.items()):
        if isinstance(v, (int, float, str)):
            out.append((f"kvdb_{k}", v))
    return out


def section_stats(s):
    st = s.stats
    return [("total_connections_received", st.connections_received), ("total_commands_processed", st.commands_processed),
            ("instantaneous_ops_per_sec", st.ops_per_sec()), ("total_net_input_bytes", st.net_input_bytes),
            ("total_net_output_bytes", st.net_output_bytes), ("rejected_connections", st.rejected_connections),
            ("expired_keys", s.ks.expired_total), ("evicted_keys", 0), ("keyspace_hits", st.keyspace_hits),
            ("keyspace_misses", st.keyspace_misses), ("pubsub_channels", len(s.pubsub.channels)),
            ("pubsub_patterns", len(s.pubsub.patterns)), ("total_error_replies", 0)] + s.extra_stats()


def section_replication(s):
    return s.replication.info()


def section_cpu(s):
    r = resource.getrusage(resource.RUSAGE_SELF)
    return [("used_cpu_sys", f"{r.ru_stime:.6f}"), ("used_cpu_user", f"{r.ru_utime:.6f}")]


def section_cluster(s):
    return [("cluster_enabled", 0)]


def section_keyspace(s):
    return [(f"db{d}", f"keys={n},expires={s.ks.expires[d]},avg_ttl=0")
            for d, n in enumerate(s.ks.keys) if n]


def section_commandstats(s):
    return [(f"cmdstat_{name}", f"calls={cs.calls},usec={cs.usec},usec_per_call={cs.usec / cs.calls:.2f},"
                                f"rejected_calls=0,failed_calls={cs.failed}")
            for name, cs in sorted(s.stats.per_command.items())]


SECTIONS = {name: globals()[f"section_{name}"] for name in DEFAULT_SECTIONS + ["commandstats"]}


def render_info(server, requested):
    if not requested or "default" in requested:
        names = list(DEFAULT_SECTIONS)
    elif "all" in requested or "everything" in requested:
        names = list(SECTIONS)
    else:
        names = [n for n in SECTIONS if n in requested]
    parts = []
    for name in names:
        lines = [f"# {name.capitalize() if name != 'cpu' else 'CPU'}"]
        lines += [f"{k}:{v}" for k, v in SECTIONS[name](server)]
        parts.append("\r\n".join(lines))
    return "\r\n\r\n".join(parts) + "\r\n"
