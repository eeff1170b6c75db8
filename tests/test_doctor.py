"""The environment check: what blocks the course now, and what only a later lesson needs."""

from __future__ import annotations

import pytest

from server.course import doctor
from server.course.browser import BrowserNotFoundError
from server.course.errors import BinaryNotFoundError


def _no_binary(name: str) -> str:
    raise BinaryNotFoundError(f"{name} was not found on PATH. Install it with: apt-get {name}.")


def _no_browser() -> str:
    raise BrowserNotFoundError("Chromium was not found. Install it (apt-get chromium).")


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without nginx, redis-server or Chromium."""
    monkeypatch.setattr(doctor, "find_binary", _no_binary)
    monkeypatch.setattr(doctor, "find_chromium", _no_browser)


@pytest.mark.usefixtures("nothing_installed")
def test_a_missing_nginx_is_a_warning_with_the_install_line_and_the_lessons() -> None:
    check = doctor.check_binary("nginx")
    assert (check.ok, check.status) == (False, "warning")
    assert str(check).startswith("⚠️ nginx: ")
    assert "Install it with: apt-get nginx." in check.detail
    assert "lesson 08" in check.detail


@pytest.mark.usefixtures("nothing_installed")
def test_redis_server_is_needed_from_lesson_09() -> None:
    check = doctor.check_binary("redis-server")
    assert check.status == "warning"
    assert "lesson 09" in check.detail


@pytest.mark.usefixtures("nothing_installed")
def test_a_missing_chromium_is_a_warning_until_lesson_05() -> None:
    check = doctor.check_chromium()
    assert check.status == "warning"
    assert "apt-get chromium" in check.detail and "lesson 05" in check.detail


def test_found_programs_say_where() -> None:
    check = doctor.check_binary("nginx")  # installed on the course's machines
    assert check.status == "ok" and str(check).startswith("✅ nginx: nginx version")


def test_a_missing_package_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "pinned_packages", lambda: {"no-such-package-xyz": "1.0"})
    (check,) = doctor.check_packages()
    assert check.status == "failed" and str(check).startswith("❌ no-such-package-xyz: ")


@pytest.mark.usefixtures("nothing_installed")
def test_warnings_alone_do_not_fail_the_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert doctor.main() == 0
    out = capsys.readouterr().out
    assert "⚠️ nginx" in out and "⚠️ redis-server" in out and "⚠️ chromium" in out
    assert "3 warnings" in out


def test_a_failure_fails_the_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(doctor, "pinned_packages", lambda: {"no-such-package-xyz": "1.0"})
    assert doctor.main() == 1
    assert "1 failed" in capsys.readouterr().out
