"""The pytest plugin, used from a test in a temporary project (pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "test_my_requestor.py"


def test_fixtures_are_available_to_a_fresh_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sample='''
        import pytest
        from golemsync import Golem
        from golemsync.devnet import Devnet

        def test_devnet(golemsync_devnet):
            assert isinstance(golemsync_devnet, Devnet)
            assert golemsync_devnet.url.startswith("http://127.0.0.1:")

        @pytest.mark.golemsync_devnet(providers=2, http_error_rate=0.0)
        def test_marker(golemsync_devnet):
            assert len(golemsync_devnet.config.providers) == 2

        def test_factory(golemsync_make_devnet):
            net = golemsync_make_devnet(providers=1, provider_faults={"fail_rate": 1.0})
            assert net.config.providers[0].fail_rate == 1.0

        def test_session(golemsync_devnet_session):
            assert golemsync_devnet_session.app_key

        def test_golem(golemsync_golem):
            assert isinstance(golemsync_golem, Golem) and golemsync_golem.identity
    ''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_documented_example_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_example=EXAMPLE.read_text())
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=3)
