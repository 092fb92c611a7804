"""Cluster mode, the pure part (no sockets, no files: the cluster bus links and writing nodes.conf
belong to ``engine/server/``).

- :mod:`engine.cluster.slots`: the node table and slot map (owner per slot, migrating/importing
  slots, epochs, cluster state ok/fail).
- :mod:`engine.cluster.routing`: the check run before every command in cluster mode
  (src/cluster.c getNodeByQuery): MOVED, ASK, CROSSSLOT, TRYAGAIN, CLUSTERDOWN.
- :mod:`engine.cluster.nodes_conf`: nodes.conf / CLUSTER NODES lines, rendered and parsed.
- error texts live in the one catalogue, :mod:`engine.errors`.
- :mod:`engine.cluster.syncslots`, :mod:`engine.cluster.migration_job`: atomic slot migration
  messages and sans-IO state machines.
"""
