"""The systemd unit and its installer: the rendered unit passes `systemd-analyze verify`,
keeps the hardening the appliance promises, and the installer is valid bash."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = ROOT / "systemd"
UNIT_TEMPLATE = SYSTEMD_DIR / "salesboost.service"
INSTALLER = SYSTEMD_DIR / "install-systemd.sh"
UNIT_NAME = "salesboost.service"


def render_unit(install_dir: Path) -> str:
    """The unit as install-systemd.sh writes it (before any /home adjustment)."""
    return UNIT_TEMPLATE.read_text(encoding="utf-8").replace("@INSTALL_DIR@", str(install_dir))


def service_directives(text: str) -> dict[str, list[str]]:
    """Key -> values of the [Service] section (comments and blank lines dropped)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section == "Service":
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def systemd_version(analyze: str) -> int:
    """The major version from `systemd-analyze --version` ("systemd 252 (252.38-1)")."""
    out = subprocess.run([analyze, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.match(r"systemd (\d+)", out)
    assert match, f"unexpected `systemd-analyze --version` output: {out!r}"
    return int(match.group(1))


def test_rendered_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip(
            "systemd-analyze not installed: `apt-get install systemd` "
            "(./install.sh --dev does) to verify the unit"
        )
    # verify checks that ExecStart=/ExecStartPre= binaries exist and are executable.
    exe = ROOT / ".venv" / "bin" / "salesboost"
    assert exe.is_file(), (
        f"{exe} missing: the unit runs INSTALL_DIR/.venv/bin/salesboost; run ./install.sh"
    )

    unit = tmp_path / UNIT_NAME
    text = render_unit(ROOT)
    assert "@INSTALL_DIR@" not in text
    unit.write_text(text, encoding="utf-8")

    cmd = [analyze, "verify", "--man=no"]
    if systemd_version(analyze) >= 250:
        # Only our unit's problems set the exit status, not those of units it pulls in
        # (multi-user.target, network.target ... as installed on this machine).
        cmd.append("--recursive-errors=no")
    proc = subprocess.run(
        [*cmd, str(unit)], capture_output=True, text=True, timeout=120, check=False
    )
    output = (proc.stdout + proc.stderr).strip()

    # `verify` exits 0 even for unknown keys, unparsable values and unknown sections: it
    # logs "<file>:<line>: Unknown key ..., ignoring" and carries on, as systemd would at
    # boot (silently losing that hardening). So the exit status alone is not enough.
    # Lines about this unit start with "<path>:<line>:" (parse problems) or with
    # "salesboost.service:" (semantic ones, e.g. "Command ... is not executable"); every
    # such line is a real error in the unit. Anything else is about the machine the test
    # runs on, not the unit (e.g. "Failed to connect to bus" with no systemd as PID 1,
    # warnings from this machine's own units), and is shown but not held against it.
    about_unit = [
        line for line in output.splitlines() if line.startswith((f"{unit}:", f"{UNIT_NAME}:"))
    ]
    assert not about_unit, "systemd-analyze verify found problems in the unit:\n" + "\n".join(
        about_unit
    )
    assert proc.returncode == 0, f"systemd-analyze verify exited {proc.returncode}:\n{output}"


def test_unit_has_required_hardening() -> None:
    d = service_directives(render_unit(Path("/opt/salesboost")))

    def one(key: str) -> str:
        assert key in d, f"{key}= missing from [Service]"
        assert len(d[key]) == 1, f"{key}= set more than once: {d[key]}"
        return d[key][0]

    assert one("User") == "salesboost"
    assert "DynamicUser" not in d, "static user: the state dir must keep its owner"
    assert one("StateDirectory") == "salesboost"
    assert one("StateDirectoryMode") == "0750"
    assert one("ProtectSystem") == "strict"
    assert one("ProtectHome") in {"yes", "read-only"}
    assert one("PrivateTmp") == "yes"
    assert one("NoNewPrivileges") == "yes"
    assert one("PrivateDevices") == "yes"
    assert set(one("RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert one("CapabilityBoundingSet") == ""
    assert one("AmbientCapabilities") == ""
    assert one("UMask") == "0077"
    for key in (
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "LockPersonality",
        "RestrictRealtime",
        "RestrictSUIDSGID",
    ):
        assert one(key) == "yes", key
    assert one("RestrictNamespaces") in {"yes", "true"}
    assert one("SystemCallArchitectures") == "native"
    # llama.cpp / onnxruntime / torch need W+X mappings.
    assert d.get("MemoryDenyWriteExecute", ["no"]) == ["no"]

    assert one("LoadCredentialEncrypted") == (
        "session_key:/etc/salesboost/credentials/session_key.cred"
    )
    assert one("Restart") == "on-failure"
    assert one("KillSignal") == "SIGTERM"
    # Longer than the server's default graceful shutdown (server.graceful_timeout_s = 20 s).
    stop = one("TimeoutStopSec")
    assert stop.isdigit() and int(stop) > 20, stop
    assert one("LimitNOFILE") == "65536"

    env = dict(v.split("=", 1) for v in d["Environment"])
    assert env["SALESBOOST__PATHS__STATE_DIR"] == "/var/lib/salesboost"
    assert env["SALESBOOST__PATHS__MODELS_DIR"] == "/opt/salesboost/models"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TRANSFORMERS_OFFLINE"] == "1"

    assert one("ExecStartPre") == "/opt/salesboost/.venv/bin/salesboost migrate"
    assert one("ExecStart") == "/opt/salesboost/.venv/bin/salesboost serve"
    assert one("WorkingDirectory") == "/opt/salesboost"


def test_unit_is_enabled_for_multi_user_target() -> None:
    text = UNIT_TEMPLATE.read_text(encoding="utf-8")
    assert re.search(r"^\[Install\]\s*\nWantedBy=multi-user\.target$", text, re.M)


def test_installer_is_valid_bash() -> None:
    proc = subprocess.run(
        ["bash", "-n", str(INSTALLER)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_installer_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed: `apt-get install shellcheck` to lint the installer")
    proc = subprocess.run([shellcheck, str(INSTALLER)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
