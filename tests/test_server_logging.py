"""The access log line and the request metrics, checked in process (no daemon): what a record holds
and what each series counts."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from proxy.logs import JsonFormatter, LoopBatchedHandler
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


class _Writes(io.StringIO):
    """A stream that remembers each write, as the system calls a real stream would make."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def _batched(name: str) -> tuple[logging.Logger, LoopBatchedHandler, _Writes]:
    stream = _Writes()
    handler = LoopBatchedHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers[:] = [handler]
    return logger, handler, stream


def test_lines_of_one_loop_turn_go_out_together_in_order_and_before_another_threads_line():
    logger, _, stream = _batched("test.batched.order")

    async def requests() -> list[str]:
        for n in range(3):
            logger.info("request %d", n)
        held = list(stream.writes)  # nothing written yet: the loop's turn is not over
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        logger.info("request 3")
        await asyncio.to_thread(logger.warning, "from a thread")
        return held

    assert asyncio.run(requests()) == []
    name = "test.batched.order"
    assert stream.writes == [
        f"{name}: request 0\n{name}: request 1\n{name}: request 2\n",
        f"{name}: request 3\n{name}: from a thread\n",
    ]


def test_flush_writes_the_pending_lines_once():
    logger, handler, stream = _batched("test.batched.flush")

    async def last_words() -> str:
        logger.info("stopping")
        before = stream.getvalue()
        handler.flush()  # as logging.shutdown does at exit, whether or not the loop turns again
        return before

    assert asyncio.run(last_words()) == ""
    assert stream.getvalue() == "test.batched.flush: stopping\n"


def test_a_batch_is_cut_at_line_ends_into_pieces_a_pipe_writes_whole():
    logger, _, stream = _batched("t")
    line = "x" * 300

    async def many() -> None:
        for _ in range(10):
            logger.info(line)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(many())
    assert stream.getvalue() == f"t: {line}\n" * 10
    assert len(stream.writes) > 1
    assert all(len(piece.encode()) <= 4096 and piece.endswith("\n") for piece in stream.writes)
