"""Commands on the cluster: membership changes and retention (Prune)."""

from __future__ import annotations

from typing import Any

from .. import commands as c
from .base import ENDED, OPEN, Base, Refused
from .effects import Effects

# How long a debounce or singleton key outlives its last submission once its job ended: the longest
# debounce window (api/validate.py: MAX_DEBOUNCE_US).
KEY_KEPT_US = 7 * 86_400_000_000


class ClusterCommands(Base):
    """ChangeMember and Prune (Barrier needs no method: it answers its index)."""

    def prune(self, cmd: c.Prune) -> Any:
        """Drop old history, oldest first, at most ``cmd.limit`` rows of each kind."""
        occurrences = runs = 0
        for job_id, count in self.db.execute(
            "SELECT id, occurrences FROM jobs WHERE occurrences > ? AND occurrences > 1 LIMIT 1000",
            (cmd.keep_runs,),
        ).fetchall():
            if occurrences >= cmd.limit:
                break
            cut = count - cmd.keep_runs  # ordinals up to this one go
            old = self.db.execute(
                "SELECT nominal, run_id FROM occurrences WHERE job_id = ? AND ordinal <= ? LIMIT ?",
                (job_id, cut, cmd.limit - occurrences),
            ).fetchall()
            for nominal, run_id in old:
                if run_id is not None:
                    open_ = self.db.execute(
                        "SELECT 1 FROM runs WHERE run_id = ? AND state IN (?, ?, ?)", (run_id, *OPEN)
                    ).fetchone()
                    if open_:
                        continue
                    runs += self.db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount
                self.db.execute("DELETE FROM occurrences WHERE job_id = ? AND nominal = ?", (job_id, nominal))
                occurrences += 1
        events = self.db.execute(
            # The oldest ``limit`` entries by seq, those of them older than
            # events_before: a bounded read with no index on ``at`` (which every
            # new entry would pay for). Entries are written in log order, so
            # seq order is time order but for clock steps between leaders.
            "DELETE FROM events WHERE seq IN"
            " (SELECT seq FROM (SELECT seq, at FROM events ORDER BY seq LIMIT ?) WHERE at < ?)",
            (cmd.limit, cmd.events_before),
        ).rowcount
        newest = self.db.execute("SELECT COALESCE(MAX(applied_index), 0) FROM requests").fetchone()[0]
        requests = self.db.execute(
            "DELETE FROM requests WHERE rowid IN (SELECT rowid FROM requests WHERE applied_index < ?"
            " ORDER BY applied_index LIMIT ?)",
            (newest - cmd.keep_requests, cmd.limit),
        ).rowcount
        # Debounce and singleton keys (joining.py) that can decide nothing more: their job ended and
        # their last submission is older than the longest debounce window (7 days).
        marks = ",".join("?" * len(ENDED))
        keys = self.db.execute(
            "DELETE FROM join_keys WHERE rowid IN (SELECT k.rowid FROM join_keys k LEFT JOIN jobs j"
            f" ON j.id = k.job_id WHERE k.last_at < ? AND (j.state IS NULL OR j.state IN ({marks})) LIMIT ?)",
            (cmd.at - KEY_KEPT_US, *ENDED, cmd.limit),
        ).rowcount
        return {
            "occurrences": occurrences,
            "runs": runs,
            "events": events,
            "requests": requests,
            "keys": keys,
        }

    def change_member(self, cmd: c.ChangeMember, fx: Effects) -> Any:
        """Record a membership change; the API checked it against the view it had."""
        if cmd.add:
            clash = self.db.execute(
                "SELECT id FROM members WHERE state = 'ACTIVE' AND id != ?"
                " AND (grpc_address = ? OR raft_address = ?)",
                (cmd.member_id, cmd.grpc_address, cmd.raft_address),
            ).fetchone()
            if clash:
                raise Refused("ALREADY_EXISTS", f"member {clash[0]} already uses one of these addresses")
        row = self.db.execute(
            "SELECT grpc_address, raft_address FROM members WHERE id = ?", (cmd.member_id,)
        ).fetchone()
        grpc_address = cmd.grpc_address or (row[0] if row else "")
        raft_address = cmd.raft_address or (row[1] if row else "")
        self.db.execute(
            "INSERT OR REPLACE INTO members (id, grpc_address, raft_address, state, changed_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (cmd.member_id, grpc_address, raft_address, "ACTIVE" if cmd.add else "REMOVED", cmd.at),
        )
        fx.members_changed = True
        return {"member": cmd.member_id, "state": "ACTIVE" if cmd.add else "REMOVED"}
