"""Configuration: the typed model and the TOML loader that builds it (`config.example.toml` has every key)."""

from proxy.config.loader import (
    ENV_VAR,
    ConfigError,
    embedded_default,
    load_config,
    redacted,
    resolve_config_path,
)
from proxy.config.model import (
    EXTERNAL_CONNECTIONS,
    CacheConfig,
    CodeArtifactDomain,
    CodeArtifactUpstream,
    Config,
    Credentials,
    DomainConfig,
    Format,
    Listen,
    RegistryUpstream,
    RepositoryConfig,
    ServerConfig,
    Upstream,
)

__all__ = [
    "ENV_VAR",
    "EXTERNAL_CONNECTIONS",
    "CacheConfig",
    "CodeArtifactDomain",
    "CodeArtifactUpstream",
    "Config",
    "ConfigError",
    "Credentials",
    "DomainConfig",
    "Format",
    "Listen",
    "RegistryUpstream",
    "RepositoryConfig",
    "ServerConfig",
    "Upstream",
    "embedded_default",
    "load_config",
    "redacted",
    "resolve_config_path",
]
