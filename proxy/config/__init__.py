"""Configuration: the typed model and the TOML loader that builds it (see DESIGN.md, "Configuration")."""

from proxy.config.loader import (
    ENV_VAR,
    ConfigError,
    embedded_default,
    load_config,
    redacted,
    resolve_config_path,
)
from proxy.config.model import (
    AuthConfig,
    CacheConfig,
    CodeArtifactDomain,
    CodeArtifactUpstream,
    Config,
    Credentials,
    Format,
    Listen,
    PrincipalConfig,
    RegistryUpstream,
    RepositoryConfig,
    ServerConfig,
    Upstream,
)

__all__ = [
    "ENV_VAR",
    "AuthConfig",
    "CacheConfig",
    "CodeArtifactDomain",
    "CodeArtifactUpstream",
    "Config",
    "ConfigError",
    "Credentials",
    "Format",
    "Listen",
    "PrincipalConfig",
    "RegistryUpstream",
    "RepositoryConfig",
    "ServerConfig",
    "Upstream",
    "embedded_default",
    "load_config",
    "redacted",
    "resolve_config_path",
]
