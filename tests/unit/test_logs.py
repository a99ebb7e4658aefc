"""Log formats: readable text by default, one JSON object a line on request."""

from __future__ import annotations

import json
import logging

import pytest

from ordo_node.logs import JsonFormatter, setup_logging


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
