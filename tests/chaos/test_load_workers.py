"""The chaos load gives each worker one kind of request, so an increment
waiting out a failover never holds back a read."""

from counterops.chaos.load import worker_roles


def test_each_kind_has_its_own_workers():
    assert worker_roles(8, 0.4) == [True] * 3 + [False] * 5
    assert worker_roles(8, 0.0).count(True) == 1, "at least one increment worker"
    assert worker_roles(8, 1.0).count(False) == 1, "at least one reader"
    assert worker_roles(1, 0.5) == [False]
