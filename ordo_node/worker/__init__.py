"""ordo-node worker: a process that runs jobs for a cluster, with no Raft and no database (see process.py)."""
