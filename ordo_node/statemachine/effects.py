"""What one applied command changed, for the actors that react to it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Effects:
    """Filled by apply and handed to the listener after the transaction commits.

    Listeners observe; they never change the state machine.
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
