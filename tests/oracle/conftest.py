"""Fixtures for tests that run the real oomd 0.5.0 (``pytest -m oracle``).

A test that needs oomd's observations of a scenario says so with
``@pytest.mark.oracle_scenario(scenario)`` and takes the ``oracle_run`` fixture. All such
scenarios of the selected tests run once, concurrently, the first time one is needed: the
session then costs about as long as the longest scenario instead of the sum of them.
Tests marked ``oracle`` are skipped, with the reason, when the binary or the kernel features it
needs are missing (``.ci/obtain-oomd`` fetches the binary).
"""

from __future__ import annotations

import pytest

from oomd.testing.oracle import OracleError, run_many, unavailable_reason


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "oracle: runs the real oomd 0.5.0 binary (skipped, with the reason, without it)"
    )
    config.addinivalue_line(
        "markers", "oracle_scenario(scenario): the Scenario whose oomd run `oracle_run` returns"
    )


_reason: list = []


def _unavailable() -> str | None:
    if not _reason:
        _reason.append(unavailable_reason())
    return _reason[0]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("oracle") or item.get_closest_marker("oracle_scenario"):
            reason = _unavailable()
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def _oracle_batch(request) -> dict:
    scenarios = {}
    for item in request.session.items:
        marker = item.get_closest_marker("oracle_scenario")
        if marker is None:
            continue
        sc = marker.args[0]
        if sc.name in scenarios and scenarios[sc.name] is not sc:
            raise pytest.UsageError(f"two different oracle scenarios are named {sc.name!r}")
        scenarios[sc.name] = sc
    runs = run_many(scenarios.values(), return_exceptions=True)
    return dict(zip(scenarios, runs))


@pytest.fixture
def oracle_run(request, _oracle_batch):
    """The OomdRun of the test's ``oracle_scenario`` marker (run in the shared batch)."""
    marker = request.node.get_closest_marker("oracle_scenario")
    if marker is None:
        raise pytest.UsageError("oracle_run needs @pytest.mark.oracle_scenario(scenario)")
    run = _oracle_batch[marker.args[0].name]
    if isinstance(run, OracleError):
        raise run
    return run
