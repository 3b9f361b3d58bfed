"""Fixtures of the fault suite (tests/fault).

PIER_SERVER   the node binary (default build/asan/pier-server)
PIER_SOAK=1   also run the long `soak` tests (minutes, repeated faults)
PIER_FAULT_NET=loopback   do not use network namespaces (partitions by SIGSTOP)
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import PIER_BIN, Cluster, netns_available  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "soak: long fault runs, skipped unless PIER_SOAK=1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PIER_SOAK") == "1":
        return
    skip = pytest.mark.skip(reason="soak test: set PIER_SOAK=1 (make soak)")
    for it in items:
        if "soak" in it.keywords:
            it.add_marker(skip)


def pytest_report_header(config):
    return (f"pier fault suite: server={PIER_BIN}, partitions by "
            f"{'netns (bus links cut)' if netns_available() else 'SIGSTOP (no netns)'}")


@pytest.fixture
def make_cluster(tmp_path, request):
    """make_cluster(n, **kw) -> started Cluster; stopped at teardown, where a
    node's non-zero exit after SIGTERM, a crash or a sanitizer report fails the test."""
    started = []

    def _make(n, **kw):
        c = Cluster(n, tmp_path / f"cluster{len(started)}", **kw)
        started.append(c)
        c.start()
        return c

    yield _make
    problems = []
    for c in started:
        problems += c.stop()
    if problems:
        logs = "\n".join(c.all_logs() for c in started)
        pytest.fail("cluster teardown: " + "; ".join(problems) + "\n" + logs, pytrace=False)
