"""The /v1 request-rate limit (``[api] requests_per_second`` and ``burst``): 429 ThrottlingException with
Retry-After, as the real aws CLI reads it, and retried by the CLI itself; the data plane is never
throttled."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from proxy.api.throttle import Throttle
from proxy.config import ConfigError, load_config
from proxy.config.model import ApiConfig
from proxy.formats.registry import format_names
from tests.api_cli import Aws

REPOSITORIES = ("r1", "r2", "r3", "r4", "r5", "r6")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate_per_caller() -> None:
    clock = Clock()
    throttle = Throttle(ApiConfig(requests_per_second=2.0, burst=3), clock)
    assert [throttle.admit("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.admit("a") == pytest.approx(0.5)  # the next token in half a second
    assert throttle.admit("b") == 0.0  # another caller has its own bucket
    clock.now += 0.5
    assert throttle.admit("a") == 0.0
    assert throttle.admit("a") > 0
    clock.now += 10  # idle long enough to be full again: the bucket is gone and starts full
    assert len(throttle._buckets) == 0
    assert [throttle.admit("a") for _ in range(3)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ("requests_per_second = 0", "api.requests_per_second", "more than 0"),
        ('requests_per_second = "fast"', "api.requests_per_second", "expected a number"),
        ("burst = 0.5", "api.burst", "whole number"),
        ("burst = 0", "api.burst", "at least 1"),
        ("bursts = 10", "api.bursts", "did you mean 'burst'?"),
    ],
)
def test_bad_limits_name_the_file_key_and_reason(tmp_path: Path, body: str, key: str, reason: str) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(f"[api]\n{body}\n\n[repository.dev]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"HOME": str(tmp_path)}, formats=format_names())
    assert (caught.value.file, caught.value.key) == (str(path), key)
    assert reason in caught.value.reason


def test_limits_load_with_generous_defaults(tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text("[repository.dev]\n")
    assert load_config(path, {"HOME": str(tmp_path)}, formats=format_names()).api == ApiConfig()
    path.write_text("[api]\nrequests_per_second = 0.5\nburst = 4\n[repository.dev]\n")
    loaded = load_config(path, {"HOME": str(tmp_path)}, formats=format_names()).api
    assert loaded == ApiConfig(requests_per_second=0.5, burst=4)


def test_over_the_limit_is_a_throttling_exception_the_cli_reads_and_retries(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    repositories = "".join(f"[repository.{name}]\n" for name in REPOSITORIES)
    proxy = daemon_factory(f"[api]\nrequests_per_second = 2\nburst = 2\n\n{repositories}")
    url = f"{proxy.url}/v1/domain/repositories?domain=local"

    # Raw: the third request at once is refused with the model's error shape.
    answers = [httpx.post(url, json={}, timeout=10) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    refused = answers[2]
    assert refused.status_code == 429
    assert refused.headers["x-amzn-ErrorType"] == "ThrottlingException"
    assert refused.headers["Retry-After"] == "1"
    assert "requests_per_second" in refused.json()["message"]
    assert "retryAfterSeconds" not in refused.json()  # a header member, not a body one

    # The data plane is never throttled.
    assert {httpx.get(f"{proxy.url}/npm/r1/nothing-here", timeout=10).status_code for _ in range(8)} == {404}

    # The CLI pages one repository a request: with no retries, a page past the burst fails.
    aws = Aws(proxy.url)
    result = aws.run("list-repositories-in-domain", "--page-size", "1")
    assert result.returncode != 0
    assert "An error occurred (ThrottlingException)" in result.stderr, result.stderr

    # With the CLI's own retries (standard mode), every page gets through, some after a 429.
    refusals = proxy.log_text().count('"POST /v1/domain/repositories" 429')
    listed = Aws(proxy.url, retries=8)("list-repositories-in-domain", "--page-size", "1")
    assert [r["name"] for r in listed["repositories"]] == list(REPOSITORIES)
    assert proxy.log_text().count('"POST /v1/domain/repositories" 429') > refusals
