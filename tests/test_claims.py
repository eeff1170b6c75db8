"""A claim prints one fixed line when it holds and fails loudly, with evidence, when not."""

from __future__ import annotations

import pytest

from server.course.claims import ClaimFailed, claim


def test_a_claim_that_holds_prints_the_statement(capsys: pytest.CaptureFixture[str]) -> None:
    claim("keep-alive was faster", 2.1 > 1.0, "ratio 2.1")
    assert capsys.readouterr().out == "✅ keep-alive was faster\n"


def test_a_claim_that_fails_raises_with_the_evidence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(AssertionError, match=r"❌ keep-alive was faster: ratio 0.9"):
        claim("keep-alive was faster", 0.9 > 1.0, "ratio 0.9")
    assert capsys.readouterr().out == ""


def test_a_failed_claim_is_an_assertion_error_so_nbval_and_pytest_report_it() -> None:
    assert issubclass(ClaimFailed, AssertionError)
    with pytest.raises(ClaimFailed, match=r"^❌ empty$"):
        claim("empty", [])
