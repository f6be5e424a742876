"""Which dev stack the CLI picks when no broker is set: only one that answers, only from
this user's private state, never a guess among several."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path

import pytest

from portal_mfa.cli.dev_stack import (
    BOOTSTRAP_VAR,
    DEFAULT_BOOTSTRAP,
    use_running_dev_stack,
    what_to_set,
)
from portal_mfa.dev_process import free_port
from shared.settings import Settings


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    state = tmp_path / f"portal-mfa-{os.getuid()}"
    state.mkdir(mode=0o700)
    return state


def listener() -> tuple[socket.socket, str]:
    server = socket.socket()
    server.bind(("127.0.0.1", free_port()))
    server.listen()
    host, port = server.getsockname()
    return server, f"{host}:{port}"


def leave_state(folder: Path, bootstrap: str, ports: dict[str, int], mode: int = 0o600) -> Path:
    path = folder / f"dev-{bootstrap.replace(':', '_')}.json"
    path.write_text(json.dumps({"kafka_bootstrap": bootstrap, "ports": ports}))
    path.chmod(mode)
    return path


def test_the_one_running_stack_is_used_with_its_ports(private_tmp: Path) -> None:
    server, address = listener()
    with server:
        leave_state(private_tmp, address, {"preferences": 21001, "audit": 21003})
        env: dict[str, str] = {"PORTAL_MFA_AUDIT_URL": "http://audit.internal:8003"}
        found = use_running_dev_stack(env)
    assert found is not None
    assert env[BOOTSTRAP_VAR] == address
    assert env["PORTAL_MFA_PREFERENCES_PORT"] == "21001"
    # A URL set by hand wins over the stack's port.
    assert "PORTAL_MFA_AUDIT_PORT" not in env


def test_a_broker_set_by_hand_is_never_overridden(private_tmp: Path) -> None:
    server, address = listener()
    with server:
        leave_state(private_tmp, address, {})
        env = {BOOTSTRAP_VAR: "kafka.internal:9093"}
        assert use_running_dev_stack(env) is None
    assert env == {BOOTSTRAP_VAR: "kafka.internal:9093"}


def test_a_stale_state_of_a_killed_stack_is_ignored(private_tmp: Path) -> None:
    leave_state(private_tmp, f"127.0.0.1:{free_port()}", {})
    env: dict[str, str] = {}
    assert use_running_dev_stack(env) is None
    assert env == {}
    assert BOOTSTRAP_VAR in what_to_set("127.0.0.1:9092", env)


def test_of_several_running_stacks_none_is_guessed(private_tmp: Path) -> None:
    first, a = listener()
    second, b = listener()
    with first, second:
        leave_state(private_tmp, a, {})
        leave_state(private_tmp, b, {})
        env: dict[str, str] = {}
        assert use_running_dev_stack(env) is None
        hint = what_to_set("127.0.0.1:9092", env)
    assert env == {}
    assert a in hint and b in hint and BOOTSTRAP_VAR in hint


def test_a_state_file_others_could_write_is_not_trusted(private_tmp: Path) -> None:
    # Planted or loosened: it could point the admin's commands at someone else's broker.
    server, address = listener()
    with server:
        leave_state(private_tmp, address, {}, mode=0o666)
        env: dict[str, str] = {}
        assert use_running_dev_stack(env) is None
    assert env == {}


def test_the_default_broker_written_out_is_the_settings_default() -> None:
    # dev_stack spells it out so `--help` need not import the settings; they must agree.
    assert Settings.model_fields["kafka_bootstrap"].default == DEFAULT_BOOTSTRAP
