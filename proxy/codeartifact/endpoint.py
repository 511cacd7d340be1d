"""Repository endpoints of a CodeArtifact domain from GetRepositoryEndpoint, cached per (repository, format).

The endpoint is always asked for, never built from a host pattern: VPC endpoints, other
partitions and test fakes all differ. An endpoint does not change while a repository exists, so
answers are kept for the life of the process (a configuration reload builds a new cache);
failures are not kept, the next request asks again.

Concurrency: one event loop; concurrent misses for one key share one call (single flight).
"""

from __future__ import annotations

import asyncio

from proxy.codeartifact.domain import DomainClient
from proxy.config.model import Format


class RepositoryEndpoints:
    def __init__(self, client: DomainClient) -> None:
        self._client = client
        self._known: dict[tuple[str, Format], str] = {}
        self._inflight: dict[tuple[str, Format], asyncio.Task[str]] = {}

    async def get(self, repository: str, format: Format) -> str:
        """The repository's endpoint for ``format``, ending with "/"; raises ``DomainError``."""
        key = (repository, format)
        known = self._known.get(key)
        if known is not None:
            return known
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._lookup(key))
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._inflight[key] = task
        return await asyncio.shield(task)

    async def _lookup(self, key: tuple[str, Format]) -> str:
        try:
            endpoint = await self._client.get_repository_endpoint(*key)
        finally:
            del self._inflight[key]
        endpoint = endpoint if endpoint.endswith("/") else endpoint + "/"
        self._known[key] = endpoint
        return endpoint
