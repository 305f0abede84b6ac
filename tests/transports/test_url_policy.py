"""Outbound URLs: only public http(s) targets unless private ones are allowed."""

from __future__ import annotations

import pytest

from penguiflow.transports import UnsafeURLError, URLPolicy, same_origin


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8000/", "non-public address 127.0.0.1"),
        ("http://localhost/", "non-public address"),
        ("http://10.1.2.3/", "non-public address 10.1.2.3"),
        ("http://192.168.0.10/", "non-public address"),
        ("http://169.254.169.254/latest/meta-data", "non-public address 169.254.169.254"),
        ("http://[::1]/", "non-public address ::1"),
        ("http://[::ffff:127.0.0.1]/", "non-public address"),
        ("http://0.0.0.0/", "non-public address"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("ftp://example.com/", "scheme 'ftp' is not allowed"),
        ("http:///path", "no host"),
        ("http://user:pw@93.184.216.34/", "credentials in the URL"),
    ],
)
async def test_unsafe_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError, match=reason.replace(".", r"\.").replace("[", r"\[")):
        await URLPolicy.build().check(url)


async def test_public_addresses_pass() -> None:
    await URLPolicy.build().check("https://93.184.216.34/a2a")
    await URLPolicy.build().check("http://[2606:4700:4700::1111]/")


async def test_private_targets_can_be_allowed_explicitly() -> None:
    await URLPolicy.build(allow_private=True).check("http://127.0.0.1:9/")
    await URLPolicy.build(allowed_hosts=["LocalHost"]).check("http://localhost:9/")
    with pytest.raises(UnsafeURLError):
        await URLPolicy.build(allowed_hosts=["localhost"]).check("http://127.0.0.1/")


async def test_an_unresolvable_host_is_refused() -> None:
    with pytest.raises(UnsafeURLError, match="cannot resolve"):
        await URLPolicy.build().check("http://no-such-host.invalid/")


def test_same_origin_compares_scheme_host_and_port() -> None:
    assert same_origin("http://a.example/x", "http://A.example:80/y")
    assert not same_origin("http://a.example/", "https://a.example/")
    assert not same_origin("http://a.example:8080/", "http://a.example/")
    assert not same_origin("http://a.example/", "http://b.example/")
