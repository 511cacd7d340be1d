"""HTTPS on the listener (``[server] tls_cert_file``/``tls_key_file``) with the real clients trusting a
test CA made here: npm (``cafile``), pip (``--cert``), twine (``--cert``) and mvn (a trust store made
with ``keytool``); and the warning for plain HTTP on a network address."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.fakes.daemon import free_port
from tests.fakes.maven_client import Maven, copy_project, mvn_binary, write_settings
from tests.fakes.maven_repository import FakeMavenRepository
from tests.fakes.pypi_index import make_wheel
from tests.test_auth_e2e import run_npm

VENV_BIN = Path(sys.executable).parent
M2 = Path.home() / ".m2" / "repository"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca_and_server(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA, and a certificate for 127.0.0.1 and localhost signed by it: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("codeartifact-proxy test CA"))
        .issuer_name(_name("codeartifact-proxy test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    paths[2].chmod(0o600)
    return paths


@dataclass
class Tls:
    root: Path
    url: str  # https://127.0.0.1:PORT
    ca: Path
    process: subprocess.Popen[bytes]
    log: Path


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def start(config: Path, log: Path, health_url: str, verify: ssl.SSLContext | bool) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config", str(config), "serve"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daemon exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(health_url, verify=verify, timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"daemon did not come up:\n{log.read_text()}")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    root = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_ca_and_server(root)
    m2 = FakeMavenRepository(M2).start()
    port = free_port()
    config = root / "config.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\ntls_cert_file = "{cert}"\ntls_key_file = "{key}"\n'
        f'[cache]\npath = "{root / "cache"}"\nkey_file = "{root / "keys" / "cache.key"}"\n'
        f'[upstream.m2]\nformat = "maven"\nurl = "{m2.url}"\n'
        '[repository.dev]\nupstreams = ["m2"]\npublish = true\n'
    )
    url = f"https://127.0.0.1:{port}"
    process = start(config, root / "daemon.log", f"{url}/healthz", trusting(ca))
    try:
        yield Tls(root, url, ca, process, root / "daemon.log")
    finally:
        process.terminate()
        process.wait(20)
        m2.close()


def test_plain_http_is_refused_by_the_https_listener_and_an_untrusted_client_fails(tls: Tls) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{tls.url}/healthz")  # the system's CAs do not include the test CA
    with pytest.raises(httpx.TransportError):
        httpx.get(tls.url.replace("https:", "http:") + "/healthz", timeout=5)
    assert httpx.get(f"{tls.url}/healthz", verify=trusting(tls.ca)).status_code == 200


def test_npm_publishes_and_installs_over_https_with_cafile(tls: Tls) -> None:
    registry = f"{tls.url}/npm/dev/"

    def npm(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return run_npm(tls.root, registry, "laptop", *args, cwd=cwd, rc=f"cafile={tls.ca}\n")

    lib, app = tls.root / "npm-lib", tls.root / "npm-app"
    for directory, manifest in (
        (lib, {"name": "tls-hello", "version": "1.0.0", "main": "index.js"}),
        (app, {"name": "tls-app", "version": "1.0.0", "dependencies": {"tls-hello": "1.0.0"}}),
    ):
        directory.mkdir()
        (directory / "package.json").write_text(json.dumps(manifest))
        (directory / "index.js").write_text("module.exports = 'tls';\n")
    published = npm(lib, "publish")
    assert published.returncode == 0, published.stderr
    installed = npm(app, "install")
    assert installed.returncode == 0, installed.stderr
    assert (app / "node_modules" / "tls-hello" / "index.js").read_text() == "module.exports = 'tls';\n"


def test_twine_uploads_and_pip_installs_over_https_with_cert(tls: Tls) -> None:
    filename, data = make_wheel("tls-wheel", "1.0.0")
    wheel = tls.root / filename
    wheel.write_bytes(data)
    # The machine's CA bundle variables would override --cert in requests (twine): a clean client.
    dropped = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "TWINE_")) and k not in dropped}
    env.update(HOME=str(tls.root), PIP_CONFIG_FILE=os.devnull)
    (tls.root / "pypirc").write_text("")
    upload = [str(VENV_BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    upload += ["--config-file", str(tls.root / "pypirc"), "-u", "aws", "-p", "laptop", "--cert", str(tls.ca)]
    upload += ["--repository-url", f"{tls.url}/pypi/dev/", str(wheel)]
    uploaded = subprocess.run(upload, env=env, capture_output=True, text=True, timeout=120)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    target = tls.root / "pip-target"
    install = [sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir", "--no-input"]
    install += [
        "--disable-pip-version-check",
        "--cert",
        str(tls.ca),
        "--index-url",
        f"{tls.url}/pypi/dev/simple/",
    ]
    install += ["--target", str(target), "tls-wheel==1.0.0"]
    installed = subprocess.run(install, env=env, capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (target / "tls_wheel-1.0.0.dist-info").is_dir()


def test_mvn_builds_over_https_with_a_keytool_trust_store(tls: Tls) -> None:
    binary = mvn_binary()
    keytool = shutil.which("keytool")
    if keytool is None:
        pytest.fail("keytool is not installed (it comes with the JDK mvn needs)")
    store = tls.root / "trust.jks"
    command = [keytool, "-importcert", "-noprompt", "-alias", "test-ca", "-file", str(tls.ca)]
    command += ["-keystore", str(store), "-storepass", "changeit", "-storetype", "JKS"]
    subprocess.run(command, check=True, capture_output=True)
    url = f"{tls.url}/maven/dev/"
    maven = Maven(binary, write_settings(tls.root / "settings.xml", url))
    project = copy_project("lib", tls.root / "mvn-lib", VERSION="1.0.0", DEPLOY_URL=url)
    trust = [f"-Djavax.net.ssl.trustStore={store}", "-Djavax.net.ssl.trustStorePassword=changeit"]
    maven.run(project, tls.root / "m2-local", *trust, "deploy", "-Dbuild.tag=tls")
    assert (tls.root / "m2-local" / "org" / "apache" / "maven" / "plugins" / "maven-jar-plugin").is_dir()
    pom = httpx.get(f"{url}org/example/e2e/lib/1.0.0/lib-1.0.0.pom", verify=trusting(tls.ca))
    assert pom.status_code == 200
    untrusted = Maven(binary, write_settings(tls.root / "settings-2.xml", url))
    project2 = copy_project("lib", tls.root / "mvn-lib-2", VERSION="1.0.1", DEPLOY_URL=url)
    failed = untrusted.run(project2, tls.root / "m2-local-2", "package", check=False)
    assert failed.returncode != 0 and "PKIX" in failed.stdout + failed.stderr


def test_an_asset_of_many_chunks_is_served_whole_over_https(tls: Tls) -> None:
    # A streamed asset's transport drains all of a chunk before the next (proxy.formats.common.assets):
    # a TLS transport must resume it, or the client gets a short read.
    content = os.urandom(3 * 1024 * 1024 + 17)
    url = f"{tls.url}/maven/dev/org/example/tls/big/1.0/big-1.0.jar"
    with httpx.Client(verify=trusting(tls.ca), auth=("aws", "laptop"), timeout=60) as client:
        assert client.put(url, content=content).status_code in (200, 201)
        for _ in range(2):
            response = client.get(url)
            assert response.status_code == 200
            assert response.content == content


def test_plain_http_on_a_network_address_starts_with_a_warning(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nlisten = "0.0.0.0:{port}"\n[auth]\nanonymous = "none"\n'
        f'[cache]\npath = "{tmp_path / "cache"}"\nkey_file = "{tmp_path / "keys" / "cache.key"}"\n'
        "[repository.dev]\n"
    )
    log = tmp_path / "daemon.log"
    process = start(config, log, f"http://127.0.0.1:{port}/healthz", False)
    try:
        assert "WARNING" in log.read_text() and "serving plain HTTP on 0.0.0.0" in log.read_text()
    finally:
        process.terminate()
        process.wait(20)
