"""The service model behind /v1: loaded on first use, while the routes come from its file at start."""

from __future__ import annotations

import subprocess
import sys

from proxy.api import binding, routes  # noqa: F401  (importing routes registers every operation)
from proxy.api.model import operation_routes, service_model


def test_every_operation_served_is_routed_as_the_model_binds_it():
    model = service_model()
    assert binding._HANDLERS  # the API modules registered their operations
    for name in binding._HANDLERS:
        op = model.operation_model(name)  # a name the model lacks raises here
        assert operation_routes()[name] == (op.http["method"], op.http["requestUri"])
    assert set(operation_routes()) == set(model.operation_names)


def test_starting_the_daemon_loads_neither_botocore_nor_the_model():
    probe = (
        "import sys, proxy.commands.serve, proxy.server.app;"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in"
        " (['botocore', 'session'], ['botocore', 'model'], ['botocore', 'auth'], ['botocore', 'client'])))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
