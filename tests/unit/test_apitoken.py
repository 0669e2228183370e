from __future__ import annotations

from pathlib import Path

import pytest

from streams.apitoken import TokenError, bearer_matches, is_loopback, read_api_token


def test_token_from_variable_or_first_line_of_file(tmp_path: Path) -> None:
    assert read_api_token(" s3cret ", "") == "s3cret"
    f = tmp_path / "token"
    f.write_text("from-file\nignored\n")
    assert read_api_token("", str(f)) == "from-file"
    assert read_api_token("", "") == ""


def test_bad_token_settings_are_errors(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match="not both"):
        read_api_token("a", "b")
    with pytest.raises(TokenError, match="cannot read"):
        read_api_token("", str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(TokenError, match="empty"):
        read_api_token("", str(tmp_path / "empty"))


def test_bearer_header_must_carry_the_token() -> None:
    assert bearer_matches("Bearer abc", "abc")
    assert bearer_matches("bearer abc", "abc")
    assert not bearer_matches("Bearer abd", "abc")
    assert not bearer_matches("Basic abc", "abc")
    assert not bearer_matches(None, "abc")
    assert not bearer_matches("", "abc")
    assert bearer_matches(None, "")  # no token configured: nothing to check


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("example.org", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
