"""nodes.conf (``cluster-config-file``) on disk: load at start-up, lock, save when changed.

How this works (src/cluster_legacy.c clusterInit / clusterLoadConfig / clusterSaveConfig /
clusterLockConfig): at start-up, before the data is loaded, a cluster-enabled server locks its
nodes.conf (flock, so two nodes cannot share one file) and reads it; when there is none it
starts as a fresh node and writes one at once. Every change that must survive a restart sets
``ClusterState.todo_save`` (CLUSTER_TODO_SAVE_CONFIG); the server calls :meth:`save_if_needed`
before it sleeps (clusterBeforeSleep), which writes the file atomically (temp file, fsync,
rename, fsync the directory). ``CLUSTER SAVECONFIG`` saves at once through ``save_now``.
"""

from __future__ import annotations

import fcntl
import logging
import os

from engine.cluster import nodes_conf
from engine.engine import Engine
from persistence.atomic import atomic_file, fsync_dir

log = logging.getLogger("valkey-engine")


class ClusterConfigError(Exception):
    """nodes.conf cannot be used; the server must not start."""


class ClusterConfig:
    def __init__(self, engine: Engine, path: str) -> None:
        self.engine = engine
        self.path = os.path.abspath(path)
        self.lock_fd: int | None = None

    # -- start-up -------------------------------------------------------------------------
    def load(self) -> None:
        """Lock and read nodes.conf into ``engine.cluster`` (or write a fresh one)."""
        engine = self.engine
        assert engine.cluster is not None
        self._lock()
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        port = int(engine.config["port"])
        if not data.strip():
            # clusterInit: no config (or an empty file) -> a new node, saved at once
            state = engine.cluster
            log.info("No cluster configuration found, I'm %s", state.myself.name)
        else:
            try:
                state = nodes_conf.parse(data)
            except nodes_conf.NodesConfError as e:  # its text is clusterLoadConfig's
                raise ClusterConfigError(str(e)) from None
            # clusterLoadConfig / clusterUpdateMyselfAnnouncedPorts: myself's ports are the
            # ones this server listens on now, whatever the file says
            me = state.myself
            me.port = port
            me.cport = int(engine.config["cluster-port"]) or port + 10000
            log.info("Node configuration loaded, I'm %.40s", me.name)
            state.todo_save = True
        engine.cluster = state
        state.save_now = self.save
        state.update_state(engine.clock.now_ms())
        error = self.save()
        if error is not None:
            raise ClusterConfigError(f"Fatal: can't update cluster config file: {error}")

    def _lock(self) -> None:
        """clusterLockConfig: an exclusive flock held for the life of the process."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ClusterConfigError(
                f"Sorry, the cluster configuration file {os.path.basename(self.path)} is already "
                "used by a different Cluster node. Please make sure that different nodes use "
                "different cluster configuration files."
            ) from None
        self.lock_fd = fd

    # -- saving ---------------------------------------------------------------------------
    def save(self) -> str | None:
        """Write nodes.conf now; an error text (strerror) or None. Clears ``todo_save``."""
        state = self.engine.cluster
        if state is None:
            return None
        data = nodes_conf.render(state)
        name = os.path.basename(self.path)
        try:
            # the lock is on the old inode; the renamed file keeps the name (Valkey 8+ also
            # writes a temp file and renames it, src/cluster_legacy.c clusterSaveConfig)
            with atomic_file(self.path, temp_name=f"{name}.tmp-{os.getpid()}") as f:
                f.write(data)
            fsync_dir(os.path.dirname(self.path))
        except OSError as e:
            log.warning("Could not save the cluster configuration file: %s", e.strerror or e)
            return str(e.strerror or e)
        state.todo_save = False
        self._relock()
        return None

    def _relock(self) -> None:
        """After a rename the lock must follow the new file (clusterSaveConfig re-locks)."""
        old = self.lock_fd
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return
        self.lock_fd = fd
        if old is not None:
            os.close(old)

    def save_if_needed(self) -> None:
        state = self.engine.cluster
        if state is not None and state.todo_save:
            self.save()

    def close(self) -> None:
        self.save_if_needed()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def open_cluster_config(engine: Engine) -> ClusterConfig | None:
    """The loaded nodes.conf of a cluster-enabled server (cwd is ``dir``), else None."""
    if engine.cluster is None:
        return None
    cc = ClusterConfig(engine, str(engine.config["cluster-config-file"]))
    cc.load()
    return cc
