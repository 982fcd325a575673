"""Batch samplers: deterministic keys, resumable, the same global batches for any world size."""

from __future__ import annotations

import pytest

from detect_tricks.data.sampling import EvalBatchSampler, TrainBatchSampler


def _epoch(sampler: TrainBatchSampler, epoch: int, start: int = 0):
    sampler.set_epoch(epoch, start)
    return list(sampler)


def test_each_epoch_is_a_permutation_and_epochs_differ():
    sampler = TrainBatchSampler(20, 5, seed=3)
    first, second = _epoch(sampler, 0), _epoch(sampler, 1)
    assert len(first) == 4 and all(len(b) == 5 for b in first)
    assert sorted(k.index for b in first for k in b) == list(range(20))
    assert [k.index for b in first for k in b] != [k.index for b in second for k in b]
    assert _epoch(sampler, 0) == first  # a function of (seed, epoch) only


def test_resume_from_a_batch_yields_the_rest_of_the_same_epoch():
    sampler = TrainBatchSampler(20, 4, seed=0)
    full = _epoch(sampler, 2)
    assert _epoch(sampler, 2, start=3) == full[3:]
    assert len(sampler) == 2


def test_two_processes_see_the_global_batches_of_one():
    single = _epoch(TrainBatchSampler(23, 8, seed=5), 1)
    ranks = [_epoch(TrainBatchSampler(23, 8, rank=r, world_size=2, seed=5), 1) for r in (0, 1)]
    assert len(single) == 2  # 23 // 8, the remainder is dropped
    for batch, part0, part1 in zip(single, *ranks, strict=True):
        assert len(part0) == len(part1) == 4
        assert part0 + part1 == batch  # same indices and the same per-sample seeds


def test_size_schedule_sets_the_size_of_each_batch():
    sampler = TrainBatchSampler(40, 4, seed=0, size_schedule=lambda it: 320 + 32 * (it // 10 % 2))
    sizes = [b[0].size for b in _epoch(sampler, 1)]  # iterations 10..19
    assert sizes == [352] * 10
    assert all(k.size == b[0].size for b in _epoch(sampler, 0) for k in b)


def test_batch_must_split_evenly_and_fit_the_dataset():
    with pytest.raises(ValueError, match="train.batch_size=9 is the global batch"):
        TrainBatchSampler(100, 9, world_size=2)
    with pytest.raises(ValueError, match="3 samples, fewer than one batch of train.batch_size=4"):
        TrainBatchSampler(3, 4)


def test_eval_sampler_covers_every_sample_once_over_processes():
    seen = [k.index for r in range(3) for b in EvalBatchSampler(10, 2, r, 3) for k in b]
    assert sorted(seen) == list(range(10))
    assert len(EvalBatchSampler(10, 4)) == 3


def test_a_fixed_subset_depends_on_its_seed_alone_and_nests_nothing_by_accident():
    from detect_tricks.data.sampling import fixed_subset

    subset = fixed_subset(1868, 240, seed=0)
    assert len(subset) == 240 == len(set(subset)) and subset == sorted(subset)
    assert subset == fixed_subset(1868, 240, seed=0)
    assert subset != fixed_subset(1868, 240, seed=1)
    assert len(fixed_subset(1868, 0.25, seed=0)) == 467  # round(0.25 * 1868)
    assert fixed_subset(10, 0, seed=0) == list(range(10))  # 0: every image
    assert fixed_subset(10, 50, seed=0) == list(range(10))  # more than there are: all
