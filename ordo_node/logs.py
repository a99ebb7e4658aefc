"""Logging: readable lines by default, or one JSON object a line (``log_format = "json"``)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

# Fields a log call may pass with ``extra=``; the JSON format lifts them to the top level.
FIELDS = ("job", "run", "attempt", "term")


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


def setup_logging(level: str, node_id: str, fmt: str = "text") -> None:
    """Configure the root logger on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(node_id))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)-5s [{node_id}] %(name)s: %(message)s")
        )
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
