"""The access log line and the request metrics, checked in process (no daemon): what a record holds
and what each series counts."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from proxy.logs import JsonFormatter
from proxy.server.access_log import AccessLogger
from proxy.server.metrics import Metrics


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Usage:
    blob_count = 0
    cached_size = 0


def _logger(name: str) -> tuple[logging.Logger, _Records]:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    records = _Records()
    logger.handlers[:] = [records]
    return logger, records


def test_access_line_holds_the_message_and_every_field_but_no_query_or_credentials():
    logger, records = _logger("test.access.fields")
    request = make_mocked_request(
        "GET",
        "/npm/dev/left-pad/-/left-pad-1.3.0.tgz?token=shh",
        headers={"User-Agent": "npm/10.8.2", "Authorization": "Bearer tok-xyz"},
    )
    response = web.Response(body=b"x" * 1234, status=200)  # not sent: 0 bytes went out
    AccessLogger(logger, "").log(request, response, 0.01234)

    (record,) = records.records
    assert record.levelno == logging.INFO and record.name == "test.access.fields"
    message = '- "GET /npm/dev/left-pad/-/left-pad-1.3.0.tgz" 200 0 12.3ms "npm/10.8.2"'
    assert record.getMessage() == message
    line = json.loads(JsonFormatter().format(record))
    fields = ("remote", "method", "path", "status", "bytes", "duration_ms", "user_agent")
    assert {k: line[k] for k in fields} == {
        "remote": "-",
        "method": "GET",
        "path": "/npm/dev/left-pad/-/left-pad-1.3.0.tgz",
        "status": 200,
        "bytes": 0,
        "duration_ms": 12.3,
        "user_agent": "npm/10.8.2",
    }
    assert line["logger"] == "test.access.fields" and line["level"] == "info"
    assert "shh" not in json.dumps(line) and "tok-xyz" not in json.dumps(line)


def test_access_log_follows_the_level_and_filters_of_its_logger():
    logger, records = _logger("test.access.level")
    access = AccessLogger(logger, "")
    request = make_mocked_request("GET", "/healthz")
    logger.setLevel(logging.WARNING)
    assert not access.enabled
    access.log(request, web.Response(), 0.001)
    logger.setLevel(logging.INFO)
    logger.addFilter(lambda record: record.path != "/healthz")
    access.log(request, web.Response(), 0.001)
    assert access.enabled and records.records == []


def test_metrics_count_each_format_and_status_class_apart():
    metrics = Metrics(_Usage(), ["npm", "pypi"])
    for path, status in [
        ("/npm/dev/a", 200),
        ("/npm/dev/b", 200),
        ("/npm/dev/c", 404),
        ("/pypi/dev/simple/", 200),
        ("/v1/domains", 403),
        ("/elsewhere", 200),
        ("/", 500),
    ]:
        metrics.observe(path, status, 0.002)
    value = metrics.registry.get_sample_value
    assert value("codeartifact_proxy_requests_total", {"format": "npm", "status": "2xx"}) == 2
    assert value("codeartifact_proxy_requests_total", {"format": "npm", "status": "4xx"}) == 1
    assert value("codeartifact_proxy_requests_total", {"format": "pypi", "status": "2xx"}) == 1
    assert value("codeartifact_proxy_requests_total", {"format": "v1", "status": "4xx"}) == 1
    assert value("codeartifact_proxy_requests_total", {"format": "other", "status": "2xx"}) == 1
    assert value("codeartifact_proxy_requests_total", {"format": "other", "status": "5xx"}) == 1
    assert value("codeartifact_proxy_request_duration_seconds_count", {"format": "npm"}) == 3
    assert value("codeartifact_proxy_request_duration_seconds_count", {"format": "other"}) == 2
