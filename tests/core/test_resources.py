"""Memory limits for methods with n x n matrices: the arithmetic and the device check."""

import pytest

from core.resources import (
    MemoryBudgetError,
    ensure_fits,
    free_memory_bytes,
    largest_n,
    size_problem,
)


def four_n_squared_floats(shape):
    return 16 * shape[0] ** 2


def test_largest_n_is_the_exact_boundary():
    budget = 16 * 1000**2
    assert largest_n(lambda n: four_n_squared_floats((n,)), budget) == 1000
    assert largest_n(lambda n: four_n_squared_floats((n,)), budget - 1) == 999
    assert largest_n(lambda n: four_n_squared_floats((n,)), 0) == 0


def test_size_problem_names_the_limit_and_passes_what_fits():
    assert size_problem(four_n_squared_floats, (1000, 8, 8), 16 * 1000**2, "the budget") is None
    problem = size_problem(four_n_squared_floats, (2000, 8, 8), 16 * 1000**2, "the budget")
    assert (
        "2000 samples" in problem
        and "at most 1000 samples" in problem
        and "the budget has 0.01 GiB" in problem
    )


def test_ensure_fits_refuses_more_than_the_free_memory():
    free = free_memory_bytes("cpu")
    assert free > 2**20  # /proc/meminfo was read
    ensure_fits(None, "cpu")
    ensure_fits(2**20, "cpu")
    with pytest.raises(MemoryBudgetError, match="only .* GiB is free"):
        ensure_fits(free * 1000, "cpu")
