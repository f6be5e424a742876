"""Which address a login is counted against: X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import pytest

from shared.http.client_address import client_address, parse_proxies
from shared.settings import Settings

PROXIES = parse_proxies("10.0.0.0/8, 127.0.0.1")


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("127.0.0.1", "203.0.113.9", ()) == "127.0.0.1"


def test_a_peer_that_is_not_a_trusted_proxy_is_the_client() -> None:
    assert client_address("198.51.100.7", "203.0.113.9", PROXIES) == "198.51.100.7"


def test_the_right_most_untrusted_address_is_the_client() -> None:
    # The client wrote "1.2.3.4" itself; the proxies appended what they saw.
    header = "1.2.3.4, 203.0.113.9, 10.1.2.3"
    assert client_address("127.0.0.1", header, PROXIES) == "203.0.113.9"


def test_addresses_are_normalised_and_garbage_counts_on_the_proxy() -> None:
    assert client_address("127.0.0.1", "2001:DB8::0001", PROXIES) == "2001:db8::1"
    assert client_address("127.0.0.1", "1.2.3.4, not-an-address", PROXIES) == "127.0.0.1"


def test_only_trusted_hops_or_none_at_all() -> None:
    assert client_address("127.0.0.1", "10.0.0.1, 10.0.0.2", PROXIES) == "10.0.0.1"
    assert client_address("127.0.0.1", None, PROXIES) == "127.0.0.1"


def test_the_setting_is_empty_by_default_and_checked() -> None:
    assert Settings().trusted_proxies == ""
    assert Settings(trusted_proxies="10.0.0.0/8,::1").trusted_proxies
    with pytest.raises(ValueError, match=r"PORTAL_MFA_TRUSTED_PROXIES|not an IP network"):
        Settings(trusted_proxies="10.0.0.0/8,example.com")
