"""The rules of webhook delivery as data: which URLs may be called, how long to wait, how a body is signed."""

from __future__ import annotations

import re

import pytest

from gateway.config import default_settings
from gateway.partners.signing import verify_signature
from gateway.webhooks.urls import URL_PATTERN, UrlRefused, check_url, is_public
from gateway.webhooks.worker import backoff, signature_header

#: (url, refused outside a development setting, refused in one too)
URLS = [
    ("https://hooks.example.com/gateway", False, False),
    ("http://hooks.example.com:8443/a?b=c", False, False),
    ("https://8.8.8.8/h", False, False),
    ("http://127.0.0.1:8000/h", True, False),
    ("http://127.1.2.3/h", True, False),
    ("http://localhost:8000/h", True, False),
    ("http://LOCALHOST./h", True, False),
    ("http://x.localhost/h", True, False),
    ("http://10.0.0.1/h", True, False),
    ("http://172.16.5.4/h", True, False),
    ("http://192.168.1.1/h", True, False),
    ("http://169.254.169.254/latest/meta-data", True, False),
    ("http://100.64.0.1/h", True, False),
    ("http://0.0.0.0/h", True, False),
    ("http://224.0.0.1/h", True, False),
    ("http://255.255.255.255/h", True, False),
    ("ftp://hooks.example.com/h", True, True),
    ("file:///etc/passwd", True, True),
    ("gopher://hooks.example.com/", True, True),
    ("https://user:pass@hooks.example.com/", True, True),
    ("https://hooks.example.com/#frag", True, True),
    ("http://[::1]/h", True, True),
    ("http:///h", True, True),
    ("http://a..b/h", True, True),
    ("https://hooks.example.com:0/h", True, True),
    ("https://hooks.example.com:65536/h", True, True),
    ("https://hooks.example.com/" + "a" * 2100, True, True),
]


@pytest.mark.parametrize(("url", "strict", "dev"), URLS)
def test_endpoint_urls_are_refused_by_the_rule(url: str, strict: bool, dev: bool) -> None:
    for allow_private, refused in ((False, strict), (True, dev)):
        if refused:
            with pytest.raises(UrlRefused) as caught:
                check_url(url, allow_private=allow_private)
            assert caught.value.status == 422 and caught.value.errors[0].pointer == "/url"
        else:
            assert check_url(url, allow_private=allow_private) == url
            # what the API's schema pattern accepts, the rule accepts (and the other way round)
            assert re.search(URL_PATTERN, url)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("ff02::1", False),
    ],
)
def test_only_global_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


def test_backoff_doubles_with_equal_jitter_up_to_the_ceiling() -> None:
    low, high = (lambda: 0.0), (lambda: 1.0)
    assert [backoff(n, 30, 3600, high) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert [backoff(n, 30, 3600, low) for n in (1, 2, 3, 4)] == [15, 30, 60, 120]
    assert backoff(20, 30, 3600, high) == 3600 and backoff(20, 30, 3600, low) == 1800


def test_the_defaults_retry_for_three_days_and_refuse_private_addresses() -> None:
    hooks = default_settings().webhooks
    assert hooks.retry_for_seconds == 3 * 24 * 3600
    assert hooks.allow_private_addresses is False
    assert hooks.disable_after_failures >= 1 and hooks.backoff_base_seconds > 0


def test_a_signature_header_carries_one_v1_per_secret_and_each_verifies() -> None:
    body = b'{"instruction_id":"ins_1"}'
    header = signature_header((b"new-secret", b"old-secret"), body, 1_800_000_000)
    assert header.startswith("t=1800000000,v1=") and header.count(",v1=") == 2
    for secret in (b"new-secret", b"old-secret"):
        assert verify_signature(secret, body, header, now=1_800_000_100) == 1_800_000_000
