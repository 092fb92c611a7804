"""``valkey-engine [valkey.conf] [--name value ...]``: start the server.

Same config names and file syntax as valkey-server for what we support. Our embedded default
differs in two places: ``appendonly yes`` and ``dir ./data`` (created if missing); loopback only
(``bind 127.0.0.1 -::1``, protected mode on), port 6379.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import ClassVar

from engine.engine import Engine
from engine.server import config_file
from engine.server.cluster_bus import ClusterBus
from engine.server.cluster_config import ClusterConfigError, open_cluster_config
from engine.server.durability import AofWriter, LoadError, load_data
from engine.server.migration_io import MigrationIO
from engine.server.server import Server, rss_bytes

VERSION = "9.1.2"
log = logging.getLogger("valkey-engine")


class ValkeyFormatter(logging.Formatter):
    """``pid:M 26 Nov 2026 12:01:18.460 * message`` like valkey-server's log lines."""

    LEVEL: ClassVar[dict[int, str]] = {
        logging.DEBUG: ".",
        logging.INFO: "*",
        logging.WARNING: "#",
        logging.ERROR: "#",
    }

    def __init__(self) -> None:
        super().__init__()
        self.main_pid = os.getpid()  # a forked child's lines are marked C (src/server.c)

    def format(self, record: logging.LogRecord) -> str:
        t = time.localtime(record.created)
        stamp = time.strftime("%d %b %Y %H:%M:%S", t) + f".{int(record.msecs):03d}"
        pid = os.getpid()
        role = "M" if pid == self.main_pid else "C"
        return f"{pid}:{role} {stamp} {self.LEVEL.get(record.levelno, '*')} {record.getMessage()}"


def setup_logging(logfile: str, level: str) -> None:
    handler: logging.Handler = (
        logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stdout)
    )
    handler.setFormatter(ValkeyFormatter())
    log.addHandler(handler)
    log.setLevel(
        {
            "debug": logging.DEBUG,
            "verbose": logging.DEBUG,
            "notice": logging.INFO,
            "warning": logging.WARNING,
            "nothing": logging.CRITICAL,
        }[level]
    )
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-v", "--version"):
        print(f"valkey-engine v={VERSION} (valkey-aof, Python {sys.version.split()[0]})")
        return 0
    try:
        config, conf_path = config_file.load(args)
    except (config_file.ConfigFileError, OSError) as e:
        print(str(e), file=sys.stderr)
        return 1
    data_dir = Path(config["dir"])
    data_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(config["logfile"], config["loglevel"])
    log.info("oO0OoO0OoO0Oo valkey-engine is starting oO0OoO0OoO0Oo")
    log.info("Valkey-compatible engine version=%s, pid=%d, just started", VERSION, os.getpid())
    if conf_path is None:
        log.warning("Warning: no config file specified, using the default config.")
    engine = Engine(config)
    engine.server_info.update(
        {
            "tcp_port": config["port"],
            "process_id": os.getpid(),
            "config_file": conf_path or "",
            "executable": os.path.abspath(sys.argv[0]),
            "rss": rss_bytes,
        }
    )
    try:
        try:
            import uvloop

            uvloop.install()
        except ImportError:  # pragma: no cover - uvloop is a dependency; Windows lacks it
            pass
        return asyncio.run(_run(engine))
    except LoadError as e:
        log.error("%s", e)
        print(str(e), file=sys.stderr)
        return 1


async def _run(engine: Engine) -> int:
    cfg = engine.config
    os.chdir(cfg["dir"])
    engine.config.values["dir"] = os.getcwd()  # CONFIG GET dir answers the absolute path
    try:
        cluster_config = open_cluster_config(engine)  # before the data, as clusterInit
    except ClusterConfigError as e:
        raise LoadError(str(e)) from None
    t0 = time.perf_counter()
    what = load_data(engine)
    log.info("%s in %.3f seconds", what, time.perf_counter() - t0)
    aof: AofWriter | None = None
    if cfg["appendonly"]:
        aof = AofWriter(engine)
        aof.open()
    server = Server(engine, aof)
    server.durability.server = server  # CONFIG SET appendonly swaps server.aof
    server.cluster_config = cluster_config
    if engine.cluster is not None:
        MigrationIO(server)  # atomic slot migration: server.migration
    await server.start()
    if engine.cluster is not None:
        ClusterBus(server).start()  # the links to the other nodes (cluster mode)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_shutdown)
    log.info("Ready to accept connections tcp (port %d)", cfg["port"])
    await server.serve_until_shutdown()
    log.info("valkey-engine is now ready to exit, bye bye...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
