"""botocore's ``codeartifact`` service model, loaded once: the single source of the API's shapes."""

from __future__ import annotations

import functools

import botocore.session
from botocore.model import ServiceModel


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("codeartifact")
