"""Log formats: readable text by default, one JSON object a line on request."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ordo_node.logs import (
    BURST_LINES,
    BufferedHandler,
    JobLines,
    JsonFormatter,
    TextFormatter,
    log_jobs,
    setup_logging,
)


def test_json_lines_carry_the_node_and_the_job_fields() -> None:
    formatter = JsonFormatter("node2")
    record = logging.LogRecord(
        "ordo_node.jobs", logging.INFO, __file__, 1, "Processing job %s", ("j1",), None
    )
    record.job, record.run, record.attempt = "j1", "j1:1", 2

    line = json.loads(formatter.format(record))

    assert line["message"] == "Processing job j1"
    assert (line["node"], line["level"], line["logger"]) == ("node2", "INFO", "ordo_node.jobs")
    assert (line["job"], line["run"], line["attempt"]) == ("j1", "j1:1", 2)
    assert "term" not in line and line["time"].endswith("+00:00")


def test_setup_logging_writes_json_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        setup_logging("INFO", "node7", "json")
        logging.getLogger("ordo_node.test").info("became leader term=%d", 3, extra={"term": 3})
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert (line["node"], line["term"], line["message"]) == ("node7", 3, "became leader term=3")
    finally:
        logging.getLogger().handlers.clear()


def _poll(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def test_buffered_lines_reach_the_file_soon_and_a_warning_at_once(tmp_path: Path) -> None:
    path = tmp_path / "node.log"
    with open(path, "w", buffering=1 << 16) as stream:
        handler = BufferedHandler(stream)
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(message)s"))
        logger = logging.getLogger("ordo_node.test.buffered")
        logger.propagate = False
        logger.addHandler(handler)
        try:
            # An INFO line waits in the buffer at most FLUSH_INTERVAL (polled, generously)
            logger.info("Processing job %s", "j1")
            assert _poll(lambda: "Processing job j1" in path.read_text())

            # A warning is written before the call returns, with what was buffered before it
            logger.info("Processing job %s", "j2")
            logger.warning("Failed to execute job %s", "j2")
            text = path.read_text()
            assert text.index("Processing job j2") < text.index("WARNING Failed to execute job j2")
        finally:
            logger.removeHandler(handler)


def test_the_text_time_is_the_standard_one() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    fmt = "%(asctime)s %(message)s"
    assert TextFormatter(fmt).format(record) == logging.Formatter(fmt).format(record)


def test_seed_lines_are_per_job_and_a_burst_is_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("ordo_node.test_seed_lines")
    few = [(f"j{i}", f"t{i}") for i in range(BURST_LINES)]
    burst = [(f"j{i}", f"t{i}") for i in range(BURST_LINES + 1)]

    with caplog.at_level(logging.INFO, logger=logger.name):
        log_jobs(logger, "Scheduling new job %s for %s", "Scheduling %d: %s %s .. %s %s", few, term=3)
        log_jobs(logger, "Scheduling new job %s for %s", "Scheduling %d: %s %s .. %s %s", burst, term=3)
    info = [(r.levelno, r.getMessage()) for r in caplog.records]

    # a few jobs: the seed's line for each; a burst: one summary line, no line a job at INFO
    assert info[:BURST_LINES] == [
        (logging.INFO, f"Scheduling new job j{i} for t{i}") for i in range(BURST_LINES)
    ]
    assert info[BURST_LINES:] == [(logging.INFO, f"Scheduling {BURST_LINES + 1}: j0 t0 .. j10 t10")]
    assert [(r.job, r.term) for r in caplog.records[:2]] == [("j0", 3), ("j1", 3)]

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        log_jobs(logger, "Scheduling new job %s for %s", "Scheduling %d: %s %s .. %s %s", burst)
    # at DEBUG, a burst's jobs have their own lines too
    assert [r.levelno for r in caplog.records] == [logging.INFO] + [logging.DEBUG] * (BURST_LINES + 1)


def test_job_lines_past_the_budget_of_a_second_go_to_debug_and_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("ordo_node.test_job_lines")

    with caplog.at_level(logging.INFO, logger=logger.name):
        # Within one second (should the calls straddle a second's end, they are made again)
        while True:
            caplog.clear()
            lines = JobLines(logger, per_second=3)
            start = int(time.monotonic())
            held = [lines.info("Processing job %s", f"j{i}", run=f"j{i}:1") for i in range(5)]
            if int(time.monotonic()) == start:
                break
        lines.flush()
    messages = [r.getMessage() for r in caplog.records]

    # the first three at INFO, the two others held (the first held one asks for a flush), then one summary
    assert held == [False, False, False, True, False]
    assert messages[:3] == ["Processing job j0", "Processing job j1", "Processing job j2"]
    assert messages[3:] == ["2 more job lines in the last second at DEBUG (Processing job 2)"]
    assert caplog.records[0].run == "j0:1"
