"""One-Euro and visibility smoothing behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from services.pose.filters import (
    BODY_IMAGE_FILTER,
    LandmarkSmoother,
    LowPassFilter,
    OneEuroFilter,
    OneEuroParams,
)


def test_one_euro_returns_first_value_unchanged_with_fresh_filter() -> None:
    f = OneEuroFilter(BODY_IMAGE_FILTER)
    np.testing.assert_allclose(f(np.array([3.0, 4.0]), 0.0), [3.0, 4.0])


def test_one_euro_reduces_jitter_with_static_noisy_signal() -> None:
    rng = np.random.default_rng(1)
    f = OneEuroFilter(OneEuroParams(min_cutoff=0.05, beta=80.0))
    # Sub-pixel jitter on a 200 px person: the adaptive cutoff stays low, so the jitter is damped.
    noisy = 100.0 + rng.normal(0, 0.3, 200)
    out = np.array([f(np.array([v]), i / 30, value_scale=1 / 200)[0] for i, v in enumerate(noisy)])
    assert np.std(out[50:]) < 0.6 * np.std(noisy[50:])


def test_one_euro_follows_fast_motion_with_high_beta() -> None:
    slow = OneEuroFilter(OneEuroParams(min_cutoff=0.05, beta=0.0))
    fast = OneEuroFilter(OneEuroParams(min_cutoff=0.05, beta=80.0))
    lag_slow = lag_fast = 0.0
    for i in range(30):
        x = np.array([10.0 * i])  # 300 px/s
        lag_slow = float(x[0] - slow(x, i / 30, value_scale=1 / 200)[0])
        lag_fast = float(x[0] - fast(x, i / 30, value_scale=1 / 200)[0])
    assert lag_fast < 0.2 * lag_slow
    assert lag_fast < 15.0


def test_one_euro_keeps_value_with_repeated_timestamp() -> None:
    f = OneEuroFilter(BODY_IMAGE_FILTER)
    f(np.array([0.0]), 1.0)
    assert f(np.array([5.0]), 1.0)[0] == pytest.approx(5.0)


def test_low_pass_visibility_moves_a_tenth_with_alpha_0_1() -> None:
    lp = LowPassFilter(0.1)
    lp(np.array([1.0]))
    assert lp(np.array([0.0]))[0] == pytest.approx(0.9)


def test_landmark_smoother_restarts_after_reset_with_new_track() -> None:
    s = LandmarkSmoother(BODY_IMAGE_FILTER)
    lms = np.zeros((33, 5), np.float32)
    s(lms, 0.0, 100.0)
    s.reset()
    moved = lms + 50.0
    np.testing.assert_allclose(s(moved, 1 / 30, 100.0), moved)
