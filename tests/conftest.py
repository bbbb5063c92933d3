"""Suite-wide guards: no test reaches the network or a user's real weight caches; ``cuda`` tests need a GPU."""
from __future__ import annotations

import ipaddress
import socket

import pytest


def _is_local(address) -> bool:
    if isinstance(address, str):  # AF_UNIX path
        return True
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    """Fail loudly if any code under test tries to download something."""
    original = socket.socket.connect

    def guarded(self, address):
        if not _is_local(address):
            raise OSError(f"network access blocked in tests: {address!r}")
        return original(self, address)

    socket.socket.connect = guarded
    yield
    socket.socket.connect = original


@pytest.fixture(autouse=True)
def _isolated_weight_caches(tmp_path_factory, monkeypatch):
    """Point every weight cache at an empty folder so tests never see real weights."""
    home = tmp_path_factory.mktemp("weights-home")
    for var in ("TORCH_HOME", "KERAS_HOME", "TFHUB_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    for var in ("AVEPIPE_VGG19_WEIGHTS", "AVEPIPE_KERAS_VGG19_WEIGHTS", "AVEPIPE_VGGISH_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
