"""Registry credentials (flags > env > docker config > cluster > anonymous) and TLS trust."""

from idpbuilder.credentials.keychain import (
    AnonymousKeychain,
    ChainKeychain,
    Credential,
    Keychain,
    StaticKeychain,
    default_keychain,
    explicit_credential,
)
from idpbuilder.credentials.tls import TrustConfig, is_loopback

__all__ = [
    "AnonymousKeychain",
    "ChainKeychain",
    "Credential",
    "Keychain",
    "StaticKeychain",
    "TrustConfig",
    "default_keychain",
    "explicit_credential",
    "is_loopback",
]
