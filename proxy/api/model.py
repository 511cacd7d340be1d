"""botocore's ``codeartifact`` service model: the single source of the API's shapes.

Loaded on first use: botocore's loader and the model take about 10 MiB, which a daemon that no client
calls /v1 on, and that fronts no CodeArtifact domain, never needs. Routing needs only each operation's
HTTP binding, read at start from the model's own file (``operation_routes``).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING

import botocore

if TYPE_CHECKING:
    from botocore.model import ServiceModel

SERVICE = "codeartifact"


@functools.cache
def service_model() -> ServiceModel:
    import botocore.session  # here, not at import: see the module docstring

    return botocore.session.get_session().get_service_model(SERVICE)


async def loaded_model() -> ServiceModel:
    """``service_model()``, loaded in a worker thread the first time (botocore takes a few hundred ms to
    import and load it), not on the event loop."""
    if service_model.cache_info().currsize:
        return service_model()
    return await asyncio.to_thread(service_model)


@functools.cache
def operation_routes() -> dict[str, tuple[str, str]]:
    """(HTTP method, request URI) of every operation, from the newest API version botocore has, as its
    loader picks it."""
    versions = Path(botocore.__file__).parent / "data" / SERVICE
    newest = max(path for path in versions.iterdir() if path.is_dir())
    packed, plain = newest / "service-2.json.gz", newest / "service-2.json"
    raw = gzip.decompress(packed.read_bytes()) if packed.exists() else plain.read_bytes()
    operations = json.loads(raw)["operations"]
    return {name: (op["http"]["method"], op["http"]["requestUri"]) for name, op in operations.items()}
