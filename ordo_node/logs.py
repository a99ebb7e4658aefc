"""Logging: readable lines by default, or one JSON object a line (``log_format = "json"``)."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import TextIO

# Fields a log call may pass with ``extra=``; the JSON format lifts them to the top level.
FIELDS = ("job", "run", "attempt", "term")
# One command for more jobs than this is a burst: its seed lines are one summary at INFO, and the
# line of each job at DEBUG (a line a job was about a fifth of the leader's CPU in batch submit).
BURST_LINES = 10


def log_jobs(
    logger: logging.Logger, line: str, summary: str, jobs: list[tuple[str, ...]], **extra: object
) -> None:
    """The seed's line ``line % job`` for each job (a tuple: its id, then the line's other values), at INFO.

    For a burst (more than BURST_LINES jobs), one line ``summary % (count, *first job, *last job)``
    at INFO instead, and each job's line at DEBUG.
    """
    if len(jobs) <= BURST_LINES:
        for job in jobs:
            logger.info(line, *job, extra={"job": job[0], **extra})
        return
    logger.info(summary, len(jobs), *jobs[0], *jobs[-1], extra=extra)
    if logger.isEnabledFor(logging.DEBUG):
        for job in jobs:
            logger.debug(line, *job, extra={"job": job[0], **extra})


class JobLines:
    """The executor's per-job seed lines, at INFO up to ``per_second`` a second; past that, at DEBUG.

    What a second held back is said in one INFO line when the next second's first
    line comes, or a second later (``flush``, called from the event loop), e.g.
    ``412 more job lines in the last second at DEBUG (Processing job 206, Successfully
    executed job 206)``. Errors and warnings never go through here.
    """

    def __init__(self, logger: logging.Logger, per_second: int = 20) -> None:
        self.logger = logger
        self.per_second = per_second
        self._second = -1
        self._count = 0
        self._held: dict[str, int] = {}

    def info(self, line: str, job_id: str, **extra: object) -> bool:
        """Log ``line % job_id``; return True if it was held back (the caller may then ask for a flush)."""
        second = int(time.monotonic())
        if second != self._second:
            self.flush()
            self._second, self._count = second, 0
        self._count += 1
        if self._count <= self.per_second:
            self.logger.info(line, job_id, extra={"job": job_id, **extra})
            return False
        first = not self._held
        self._held[line] = self._held.get(line, 0) + 1
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug(line, job_id, extra={"job": job_id, **extra})
        return first

    def flush(self) -> None:
        """Say what was held back, if anything."""
        if not self._held:
            return
        held, self._held = self._held, {}
        kinds = ", ".join(f"{line.replace(' %s', '')} {n}" for line, n in held.items())
        self.logger.info("%d more job lines in the last second at DEBUG (%s)", sum(held.values()), kinds)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, node, message, and job/run/attempt/term when known."""

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "node": self.node_id,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The standard format, with the date and time of each second formatted once."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
        return f"{self._stamp},{int(record.msecs):03d}"


# How long an INFO line may wait in the buffer before it is written.
FLUSH_INTERVAL = 0.2


class BufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines into a buffer written at least every FLUSH_INTERVAL, and at once from WARNING up.

    stderr writes each line with its own system call; a job logs four lines
    (submitted, triggered, processing, succeeded), and under load those calls
    were 5-6% of every node's time. A warning or error, and everything before
    it, is written immediately; so is everything at exit (logging.shutdown).
    A node killed with SIGKILL loses at most the last FLUSH_INTERVAL of INFO lines.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._dirty = False
        threading.Thread(target=self._flush_often, name="log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            with self.lock:  # type: ignore[union-attr]
                self.stream.write(line)
                self._dirty = True
            if record.levelno >= logging.WARNING:
                self.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._dirty:
                self._dirty = False
                self.stream.flush()

    def _flush_often(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            try:
                self.flush()
            except (OSError, ValueError):  # stderr closed at exit
                return


def _stderr_buffered() -> TextIO:
    """stderr with a 64 KiB buffer of its own (the standard one writes every line at once)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return sys.stderr  # replaced (by a test's capture, say): write to it as it is
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    return open(fd, "w", buffering=1 << 16, encoding=encoding, errors="backslashreplace", closefd=False)


def setup_logging(level: str, node_id: str, fmt: str = "text") -> None:
    """Configure the root logger on stderr (buffered: see BufferedHandler)."""
    handler = BufferedHandler(_stderr_buffered())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(node_id))
    else:
        handler.setFormatter(TextFormatter(f"%(asctime)s %(levelname)-5s [{node_id}] %(name)s: %(message)s"))
    # Neither format shows where a call was made, nor its thread or process: skip
    # collecting them (the logging HOWTO's "Optimization"). A job logs three lines
    # as it runs; this was a third of an executor's cost per no-op job.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pysyncobj").setLevel(logging.WARNING)
