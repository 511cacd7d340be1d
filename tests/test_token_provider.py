"""TokenProvider and DomainClient against the fake CodeArtifact: refresh timing, single flight,
invalidation, back-off, health reasons, credentials that appear later, the ``token`` command, and
the real aws cli against the fake (to prove the fake speaks the real wire shapes)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from proxy.codeartifact.domain import DomainClient, DomainError
from proxy.codeartifact.token import NO_TOKEN_YET, TokenProvider, refresh_margin
from proxy.commands import token as token_command
from proxy.config.model import CacheConfig, CodeArtifactDomain, Config, ServerConfig
from proxy.upstream.http import backoff_delay
from tests.fakes.codeartifact import FakeCodeArtifact, aws_environment, isolate_aws

OWNER = "111122223333"
ACCESS_KEY = "AKIDTOKENPROVIDER001"
SECRET_KEY = "fake-secret-for-token-provider-tests-0001"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def eventually(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``predicate()`` holds; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_aws(monkeypatch, tmp_path, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    return tmp_path


@pytest.fixture
async def fake(aws: Path) -> AsyncIterator[FakeCodeArtifact]:
    async with FakeCodeArtifact() as fake:
        repository = fake.add_domain("dom", OWNER).add_repository("team")
        repository.add_npm_package({"name": "hello"}, {"1.0.0": b"hello tarball"})
        yield fake


def domain_config(fake: FakeCodeArtifact, **overrides: object) -> CodeArtifactDomain:
    fields: dict[str, object] = {
        "name": "corp",
        "domain": "dom",
        "domain_owner": OWNER,
        "region": "us-east-1",
        "endpoint_url": fake.url,
    }
    fields.update(overrides)
    return CodeArtifactDomain(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def make_provider(fake: FakeCodeArtifact) -> AsyncIterator[Callable[..., TokenProvider]]:
    made: list[tuple[TokenProvider, DomainClient]] = []

    def make(config: CodeArtifactDomain | None = None, **kwargs: object) -> TokenProvider:
        config = config or domain_config(fake)
        client = DomainClient(config)
        provider = TokenProvider(config, client, **kwargs)  # type: ignore[arg-type]
        made.append((provider, client))
        return provider

    yield make
    for provider, client in made:
        await provider.stop()
        client.close()


# ---- timing -----------------------------------------------------------------------------------


def test_refresh_margin_is_half_the_lifetime_capped_at_15_minutes() -> None:
    assert refresh_margin(4.0) == 2.0
    assert refresh_margin(900.0) == 450.0
    assert refresh_margin(12 * 3600.0) == 900.0


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    assert backoff_delay(1, 1.0, 60.0, rng=lambda: 0.0) == 0.5
    assert backoff_delay(1, 1.0, 60.0, rng=lambda: 1.0) == 1.0
    assert backoff_delay(4, 1.0, 60.0, rng=lambda: 1.0) == 8.0
    assert backoff_delay(50, 1.0, 60.0, rng=lambda: 0.0) == 30.0
    assert backoff_delay(50, 1.0, 60.0, rng=lambda: 1.0) == 60.0


async def test_tokens_are_replaced_before_they_expire_and_none_is_used_expired(fake, make_provider) -> None:
    fake.token_lifetime = 2.0
    provider = make_provider()
    await provider.start()
    endpoint = fake.domains[("dom", OWNER)].endpoint("team", "npm")
    async with httpx.AsyncClient() as http:
        deadline = time.monotonic() + 20
        while len(fake.tokens) < 4:
            assert time.monotonic() < deadline
            token = await provider.token()
            response = await http.get(endpoint + "hello", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200
            await asyncio.sleep(0.05)
    assert fake.expired_token_requests == 0
    for earlier, later in zip(fake.tokens, fake.tokens[1:], strict=False):
        assert later.issued_at < earlier.expires_at  # each one asked for while the previous was still valid


async def test_the_background_task_keeps_the_token_fresh_without_traffic(fake, make_provider) -> None:
    fake.token_lifetime = 2.0
    provider = make_provider()
    await provider.start()
    await eventually(lambda: len(fake.tokens) >= 3)
    assert provider.health().healthy
    await provider.stop()
    issued = len(fake.tokens)
    await asyncio.sleep(0.3)
    assert len(fake.tokens) == issued


async def test_the_expiration_the_service_gives_wins_over_the_duration_asked(fake, make_provider) -> None:
    fake.token_lifetime = 3.0
    provider = make_provider(domain_config(fake, duration=43200.0))
    await provider.token()
    (issued,) = fake.tokens
    assert fake.control_requests[0].params["duration"] == "43200"
    assert provider.health().token_expires_at == pytest.approx(issued.expires_at, abs=0.01)


async def test_concurrent_callers_share_one_get_authorization_token(fake, make_provider) -> None:
    provider = make_provider()
    tokens = await asyncio.gather(*(provider.token() for _ in range(100)))
    assert fake.operations("GetAuthorizationToken") == 1
    assert set(tokens) == {fake.tokens[0].value}


async def test_a_burst_of_invalidations_costs_one_refresh(fake, make_provider) -> None:
    provider = make_provider()
    first = await provider.token()
    await asyncio.gather(*(provider.invalidate(first) for _ in range(50)))
    second = await provider.token()
    assert second != first
    assert fake.operations("GetAuthorizationToken") == 2
    await provider.invalidate(first)  # a late rejection of a token already replaced
    assert await provider.token() == second
    assert fake.operations("GetAuthorizationToken") == 2


async def test_invalidations_are_rate_limited(fake, make_provider) -> None:
    clock = Clock()
    provider = make_provider(clock=clock, min_invalidate_interval=5.0)
    first = await provider.token()
    await provider.invalidate(first)
    second = await provider.token()
    await provider.invalidate(second)  # too soon: e.g. a repository refusing every token
    assert await provider.token() == second
    clock.now += 6
    await provider.invalidate(second)
    assert await provider.token() not in (first, second)
    assert fake.operations("GetAuthorizationToken") == 3


async def test_near_expiry(fake, make_provider) -> None:
    clock = Clock()
    fake.token_lifetime = 100.0
    provider = make_provider(clock=clock)
    token = await provider.token()
    assert not provider.near_expiry(token)
    assert provider.near_expiry("some other token")
    clock.now += 51  # past the refresh point of a 100-second token
    assert provider.near_expiry(token)


async def test_an_old_token_is_served_while_refreshes_fail_but_not_in_its_last_part(
    fake, make_provider
) -> None:
    clock = Clock()
    fake.token_lifetime = 100.0
    provider = make_provider(clock=clock, backoff_base=1.0, backoff_cap=2.0)
    token = await provider.token()
    fake.fail("^/v1/authorization-token$", "status", status=500)
    clock.now += 60  # past the refresh point (50 s), before the last quarter (75 s)
    assert await provider.token() == token
    assert provider.health().healthy
    clock.now += 20  # in the last quarter: no longer handed out
    with pytest.raises(DomainError) as raised:
        await provider.token()
    assert raised.value.reason.startswith("error: ")
    health = provider.health()
    assert (health.healthy, health.reason) == (False, raised.value.reason)


async def test_failures_back_off_and_retry_now_ends_the_back_off(fake, make_provider) -> None:
    clock = Clock()
    provider = make_provider(clock=clock, backoff_base=10.0, backoff_cap=10.0)
    fake.deny_access_key(ACCESS_KEY)
    for _ in range(3):
        with pytest.raises(DomainError):
            await provider.token()
    assert fake.operations("GetAuthorizationToken") == 1  # the others answered from the back-off
    clock.now += 10.1
    with pytest.raises(DomainError):
        await provider.token()
    assert fake.operations("GetAuthorizationToken") == 2
    fake.denied_access_keys.clear()
    provider.retry_now()
    assert await provider.token() == fake.tokens[0].value


async def test_health_before_the_first_token(make_provider) -> None:
    health = make_provider().health()
    assert (health.healthy, health.reason, health.token_expires_at) == (False, NO_TOKEN_YET, None)
    assert health.name == "corp"


# ---- failure reasons --------------------------------------------------------------------------


async def test_access_denied(fake, make_provider) -> None:
    fake.deny_access_key(ACCESS_KEY)
    provider = make_provider()
    with pytest.raises(DomainError) as raised:
        await provider.token()
    assert raised.value.reason == "access denied"
    assert "corp" in str(raised.value)
    assert provider.health().reason == "access denied"


async def test_throttled(fake, make_provider) -> None:
    fake.fail("^/v1/authorization-token$", "throttle")
    with pytest.raises(DomainError) as raised:
        await make_provider().token()
    assert raised.value.reason == "throttled"


async def test_unreachable(fake, make_provider, unused_tcp_port: int) -> None:
    provider = make_provider(domain_config(fake, endpoint_url=f"http://127.0.0.1:{unused_tcp_port}"))
    with pytest.raises(DomainError) as raised:
        await provider.token()
    assert raised.value.reason == "unreachable"


async def test_unknown_domain(fake, make_provider) -> None:
    with pytest.raises(DomainError) as raised:
        await make_provider(domain_config(fake, domain="nosuchdomain")).token()
    assert raised.value.reason == "error: ResourceNotFoundException"


async def test_no_credentials_then_a_credentials_file_appears(fake, make_provider, aws, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider = make_provider(backoff_base=0.05, backoff_cap=0.2)
    await provider.start()
    await eventually(lambda: provider.health().reason == "no credentials")
    with pytest.raises(DomainError) as raised:
        await provider.token()
    assert raised.value.reason == "no credentials"
    assert fake.tokens == []

    (aws / "aws-credentials").write_text(
        "[default]\naws_access_key_id = AKIDFROMFILELATER001\naws_secret_access_key = written-later-secret\n"
    )
    await eventually(lambda: provider.health().healthy)
    assert await provider.token() == fake.tokens[-1].value
    assert fake.tokens[-1].access_key == "AKIDFROMFILELATER001"


async def test_a_named_profile_is_used(fake, make_provider, aws) -> None:
    (aws / "aws-credentials").write_text(
        "[dev]\naws_access_key_id = AKIDDEVPROFILE000001\naws_secret_access_key = dev-profile-secret\n"
    )
    (aws / "aws-config").write_text("[profile dev]\nregion = eu-west-1\n")
    provider = make_provider(domain_config(fake, profile="dev", region="eu-central-1"))
    await provider.token()
    (call,) = fake.control_requests
    assert (call.access_key, call.region) == ("AKIDDEVPROFILE000001", "eu-central-1")


async def test_a_missing_profile_is_reported_as_no_credentials(fake, make_provider) -> None:
    with pytest.raises(DomainError) as raised:
        await make_provider(domain_config(fake, profile="nosuchprofile")).token()
    assert raised.value.reason == "no credentials"


# ---- the token command ------------------------------------------------------------------------


@pytest.fixture
def threaded_fake(aws: Path) -> Iterator[FakeCodeArtifact]:
    with FakeCodeArtifact() as fake:
        fake.add_domain("dom", OWNER).add_repository("team")
        yield fake


def command_config(fake: FakeCodeArtifact, tmp: Path) -> Config:
    return Config(
        source=str(tmp / "config.toml"),
        server=ServerConfig(),
        cache=CacheConfig(path=tmp / "cache", key_file=tmp / "cache.key"),
        codeartifact=MappingProxyType({"corp": domain_config(fake)}),
        upstreams=MappingProxyType({}),
        repositories=MappingProxyType({}),
    )


def run_token_command(argv: list[str], config: Config) -> int:
    parser = argparse.ArgumentParser()
    token_command.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.run(args, config)


def test_token_command_prints_a_token(threaded_fake, aws, capsys) -> None:
    assert run_token_command(["token", "corp"], command_config(threaded_fake, aws)) == 0
    out, err = capsys.readouterr()
    assert out == threaded_fake.tokens[-1].value + "\n"
    assert err == ""


def test_token_command_unknown_name(threaded_fake, aws, capsys) -> None:
    assert run_token_command(["token", "other"], command_config(threaded_fake, aws)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "[codeartifact.other]" in err and "corp" in err


def test_token_command_without_credentials(threaded_fake, aws, capsys, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert run_token_command(["token", "corp"], command_config(threaded_fake, aws)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    expected = "codeartifact-proxy: codeartifact domain 'corp': no credentials (Unable to locate credentials)"
    assert err == expected + "\n"


# ---- the real aws cli against the fake ----------------------------------------------------------


async def aws_cli(fake: FakeCodeArtifact, directory: Path, *args: str) -> dict[str, object]:
    environment = {**os.environ}
    for name, value in aws_environment(directory, access_key=ACCESS_KEY, secret_key=SECRET_KEY).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "aws"),
        "codeartifact",
        *args,
        "--endpoint-url",
        fake.url,
        "--region",
        "us-east-1",
        "--output",
        "json",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return json.loads(out)


async def test_the_aws_cli_talks_to_the_fake(fake, aws) -> None:
    domain = ["--domain", "dom", "--domain-owner", OWNER]
    answer = await aws_cli(fake, aws, "get-authorization-token", *domain, "--duration-seconds", "900")
    (issued,) = fake.tokens
    assert answer["authorizationToken"] == issued.value
    assert fake.control_requests[0].params["duration"] == "900"
    assert fake.control_requests[0].access_key == ACCESS_KEY
    answer = await aws_cli(
        fake, aws, "get-repository-endpoint", *domain, "--repository", "team", "--format", "pypi"
    )
    assert answer["repositoryEndpoint"] == fake.domains[("dom", OWNER)].endpoint("team", "pypi")
    answer = await aws_cli(fake, aws, "describe-repository", *domain, "--repository", "team")
    assert answer["repository"]["name"] == "team"  # type: ignore[index]
