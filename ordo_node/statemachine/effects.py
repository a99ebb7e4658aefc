"""What one applied command changed, for the actors that react to it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class Effects:
    """Filled by apply and handed to the listener after the transaction commits.

    Listeners observe; they never change the state machine. The commands of a
    batch each fill their own, merged by :meth:`add`: a list is extended, a flag
    is or-ed, a time (``earliest_due``, ``retry_at``) is the earliest.
    """

    index: int = 0
    earliest_due: int | None = None
    retry_at: int | None = None
    scheduled: list[tuple[str, int]] = field(default_factory=list)
    triggered: list[str] = field(default_factory=list)
    pending: list[tuple[str, int]] = field(default_factory=list)
    assigned: list[tuple[str, int, str]] = field(default_factory=list)
    finished: list[tuple[str, int, str, str]] = field(default_factory=list)
    # (node, microseconds from start to outcome) of the attempts that finished
    run_times: list[tuple[str, int]] = field(default_factory=list)
    cancelled_runs: list[tuple[str, int, str]] = field(default_factory=list)
    members_changed: bool = False
    workers_changed: bool = False

    def due_by(self, at: int) -> None:
        """Something falls due at ``at``: the timekeeper must wake by then."""
        if self.earliest_due is None or at < self.earliest_due:
            self.earliest_due = at

    def schedule(self, job_id: str, at: int) -> None:
        """Job ``job_id`` is (again) due at ``at``: tell the timekeeper."""
        self.scheduled.append((job_id, at))
        self.due_by(at)

    def empty(self) -> bool:
        """True when nothing an actor cares about changed."""
        return not (
            self.scheduled
            or self.triggered
            or self.pending
            or self.assigned
            or self.finished
            or self.cancelled_runs
            or self.earliest_due is not None
        )

    def add(self, other: Effects) -> None:
        """Take in what another command of the same entry changed."""
        for f in fields(self):
            if f.name == "index":
                continue
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, list):
                mine.extend(theirs)
            elif isinstance(mine, bool):
                setattr(self, f.name, mine or theirs)
            elif theirs is not None:
                setattr(self, f.name, theirs if mine is None else min(mine, theirs))
