"""Named secrets: systemd credentials first, then the OS keyring (service ``salesboost``).

A secret's value never goes to a log line, an exception message, ``config show`` or
``/metrics``: :class:`SecretValue` hides it from ``repr`` and ``str``.
"""

from __future__ import annotations

import os
import secrets as _random
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import keyring
import keyring.backend
import keyring.errors

from appliance.config import Settings

SERVICE = "salesboost"
INDEX_ENTRY = "__names__"
SESSION_KEY = "session_key"
# Secrets the appliance generates itself; `secrets rotate` replaces them with fresh random values.
GENERATED = {SESSION_KEY: 48}


class SecretError(Exception):
    """A secret is missing or its store is unusable; the message names the secret, never a value."""

    code = "secret_error"


class SecretValue:
    """A secret string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plain value; use it, do not log it."""
        return self._value

    def __repr__(self) -> str:
        return "SecretValue('********')"

    __str__ = __repr__


@dataclass(frozen=True)
class BackendInfo:
    """Which keyring backs the store, for `doctor` and `secrets list`."""

    kind: Literal["system", "file"]
    name: str
    path: Path | None


def file_keyring_path(state_dir: Path) -> Path:
    """Where the file keyring lives inside the state dir."""
    return state_dir / "secrets" / "keyring.cfg"


def _usable_system_keyring() -> keyring.backend.KeyringBackend | None:
    from keyring.backends import chainer, fail

    ring = keyring.get_keyring()
    if isinstance(ring, fail.Keyring):
        return None
    if isinstance(ring, chainer.ChainerBackend) and not ring.backends:
        return None
    module = type(ring).__module__
    if module.startswith("keyrings.alt"):  # a file keyring chosen by priority is not "the OS"
        return None
    return ring


def _file_keyring(path: Path) -> keyring.backend.KeyringBackend:
    from keyrings.alt.file import PlaintextKeyring

    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    ring: keyring.backend.KeyringBackend = PlaintextKeyring()
    ring.file_path = str(path)  # type: ignore[attr-defined]
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    return ring


class SecretStore:
    """Resolves named secrets: ``$CREDENTIALS_DIRECTORY/<name>``, then the keyring."""

    def __init__(self, settings: Settings, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        creds = env.get("CREDENTIALS_DIRECTORY")
        self.credentials_dir = Path(creds) if creds else None
        self._mode = settings.secrets.keyring
        self._file_path = file_keyring_path(settings.state_dir)
        self._ring: keyring.backend.KeyringBackend | None = None
        self._info: BackendInfo | None = None

    def _keyring(self) -> keyring.backend.KeyringBackend:
        if self._ring is not None:
            return self._ring
        ring = None if self._mode == "file" else _usable_system_keyring()
        if ring is None and self._mode == "system":
            raise SecretError(
                "secrets.keyring = 'system' but no usable OS keyring backend was found"
            )
        if ring is None:
            ring = _file_keyring(self._file_path)
            self._info = BackendInfo("file", "keyrings.alt PlaintextKeyring", self._file_path)
        else:
            self._info = BackendInfo(
                "system", f"{type(ring).__module__}.{type(ring).__name__}", None
            )
        self._ring = ring
        return ring

    @property
    def backend(self) -> BackendInfo:
        """The keyring backend in use (opening it if needed)."""
        self._keyring()
        assert self._info is not None
        return self._info

    def file_mode_ok(self) -> bool | None:
        """For the file keyring: whether the file is private (0600); None for others."""
        info = self.backend
        if info.path is None:
            return None
        mode = stat.S_IMODE(info.path.stat().st_mode)
        return mode & 0o077 == 0

    def _from_credentials(self, name: str) -> str | None:
        if self.credentials_dir is None:
            return None
        path = self.credentials_dir / name
        if not path.is_file():
            return None
        return path.read_text(encoding="utf-8").rstrip("\n")

    def source_of(self, name: str) -> Literal["credentials", "keyring"] | None:
        """Where a secret would be read from, or None if it is not set."""
        if self._from_credentials(name) is not None:
            return "credentials"
        if self._get_keyring(name) is not None:
            return "keyring"
        return None

    def _get_keyring(self, name: str) -> str | None:
        try:
            value: str | None = self._keyring().get_password(SERVICE, name)
        except keyring.errors.KeyringError as err:
            raise SecretError(
                f"keyring could not read secret {name!r}: {type(err).__name__}"
            ) from None
        return value

    def get(self, name: str) -> SecretValue | None:
        """The secret's value, or None when it is set nowhere."""
        value = self._from_credentials(name)
        if value is None:
            value = self._get_keyring(name)
        return None if value is None else SecretValue(value)

    def require(self, name: str) -> SecretValue:
        """The secret's value; SecretError naming it when missing."""
        value = self.get(name)
        if value is None:
            raise SecretError(
                f"secret {name!r} is not set: run `salesboost secrets set {name}` "
                "(or `salesboost secrets ensure` for the generated ones)"
            )
        return value

    def set(self, name: str, value: str) -> None:
        """Store a secret in the keyring and add it to the index of names."""
        if not name or name == INDEX_ENTRY or "/" in name:
            raise SecretError(f"invalid secret name {name!r}")
        ring = self._keyring()
        ring.set_password(SERVICE, name, value)
        names = set(self.names())
        if name not in names:
            names.add(name)
            ring.set_password(SERVICE, INDEX_ENTRY, "\n".join(sorted(names)))

    def names(self) -> list[str]:
        """Names of the secrets known to the keyring index and the credentials dir."""
        raw = self._get_keyring(INDEX_ENTRY) or ""
        names = {n for n in raw.splitlines() if n}
        if self.credentials_dir is not None and self.credentials_dir.is_dir():
            names.update(p.name for p in self.credentials_dir.iterdir() if p.is_file())
        return sorted(names)

    def ensure_generated(self) -> list[str]:
        """Create every generated secret that is missing; returns the names created."""
        created = []
        for name, nbytes in GENERATED.items():
            if self.get(name) is None:
                self.set(name, _random.token_urlsafe(nbytes))
                created.append(name)
        return created

    def rotate(self, name: str, value: str | None = None) -> None:
        """Replace a secret: generated ones get a fresh random value, others need `value`."""
        if value is None:
            if name not in GENERATED:
                raise SecretError(
                    f"secret {name!r} is not generated by the appliance; give a new value "
                    "on standard input (salesboost secrets rotate NAME --stdin)"
                )
            value = _random.token_urlsafe(GENERATED[name])
        if self._from_credentials(name) is not None:
            raise SecretError(
                f"secret {name!r} comes from systemd credentials; re-enrol it with systemd-creds"
            )
        self.set(name, value)

    def describe(self) -> dict[str, Any]:
        """Backend summary without values."""
        info = self.backend
        return {
            "backend": info.kind,
            "name": info.name,
            "path": str(info.path) if info.path else None,
            "credentials_dir": str(self.credentials_dir) if self.credentials_dir else None,
        }
