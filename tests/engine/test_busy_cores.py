"""A CPU run warns when other work already holds the cores its threads will use."""

from __future__ import annotations

import logging

import pytest
import torch

from detect_tricks.engine import setup
from detect_tricks.engine.setup import busy_cores_warning, configure_device


def test_a_load_of_half_the_cores_or_more_warns_and_says_what_to_set():
    message = busy_cores_warning(2.1, cores=2, threads=2, omp_num_threads=None)
    assert message is not None
    for part in ("2 usable cores", "load average 2.1", "starts 2 threads", "OMP_NUM_THREADS"):
        assert part in message
    assert busy_cores_warning(1.0, cores=2, threads=2, omp_num_threads=None) is not None
    assert busy_cores_warning(8.0, cores=16, threads=16, omp_num_threads=None) is not None


def test_an_idle_machine_or_a_chosen_thread_count_stays_quiet():
    assert busy_cores_warning(0.9, cores=2, threads=2, omp_num_threads=None) is None
    assert busy_cores_warning(7.9, cores=16, threads=16, omp_num_threads=None) is None
    assert busy_cores_warning(8.0, cores=2, threads=1, omp_num_threads="1") is None


@pytest.mark.parametrize(
    ("load", "omp", "warned"), [(3.0, None, True), (3.0, "1", False), (0.2, None, False)]
)
def test_configure_device_logs_it_for_a_cpu_run(monkeypatch, caplog, load, omp, warned):
    monkeypatch.setattr(setup.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(setup, "usable_cores", lambda: 2)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    with caplog.at_level(logging.WARNING, logger=setup.__name__):
        configure_device(torch.device("cpu"))
    assert ("usable cores are already busy" in caplog.text) is warned
