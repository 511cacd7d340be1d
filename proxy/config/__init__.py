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
    CacheConfig,
    CodeArtifactDomain,
    CodeArtifactUpstream,
    Config,
    Credentials,
    Format,
    Listen,
    RegistryUpstream,
    RepositoryConfig,
    ServerConfig,
    Upstream,
)

__all__ = [
    "ENV_VAR",
    "CacheConfig",
    "CodeArtifactDomain",
    "CodeArtifactUpstream",
    "Config",
    "ConfigError",
    "Credentials",
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
