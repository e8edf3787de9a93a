"""sampler.py: the rescaled time grid, where guidance applies, the v1 CFG form and the
multi-image modes, observed through a recording velocity function."""

from __future__ import annotations

import itertools

import pytest
import torch

from backend.models.trellis.sampler import (
    FlowEulerGuidanceIntervalSampler,
    SamplerSettings,
    forward_count,
    time_pairs,
)


class Recorder:
    """A velocity field that logs each call: (t sent, which condition, batch of x)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float, int]] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.float32 and cond.shape[0] == 1
        self.calls.append((float(t[0]), float(cond.flatten()[0]), t.shape[0]))
        return torch.full_like(x, float(cond.flatten()[0]))


def conditions(*values: float) -> torch.Tensor:
    return torch.tensor(values).reshape(-1, 1, 1)


def test_the_time_grid_is_rescaled_from_one_to_zero() -> None:
    pairs = time_pairs(4, 3.0)
    assert pairs[0][0] == 1.0 and pairs[-1][1] == 0.0
    for (t, t_prev), (following, _) in itertools.pairwise(pairs):
        assert t_prev == following and t > t_prev
    u = 0.75  # linspace(1, 0, 5)[1]
    assert pairs[0][1] == pytest.approx(3 * u / (1 + 2 * u))
    assert [t for t, _ in time_pairs(4, 1.0)] == [1.0, 0.75, 0.5, 0.25]


# r = 3 puts t >= 0.5 where the linear u >= 0.25: steps 0..floor(0.75 n) are guided.
@pytest.mark.parametrize(("steps", "forwards"), [(25, 19 * 2 + 6), (12, 10 * 2 + 2), (50, 88)])
def test_guidance_inside_the_interval_costs_a_second_pass(steps: int, forwards: int) -> None:
    settings = SamplerSettings(steps, 5.0, (0.5, 1.0), 3.0)
    recorder = Recorder()
    noise = torch.zeros(1, 2, 4, 4, 4)
    FlowEulerGuidanceIntervalSampler().sample(recorder, noise, conditions(1.0),
                                              conditions(0.0), settings)  # fmt: skip
    assert len(recorder.calls) == forwards == forward_count(settings)
    assert all(batch == 1 for _, _, batch in recorder.calls)  # two passes, never a batch of two
    guided = [t / 1000 for t, c, _ in recorder.calls if c == 0.0]
    assert guided and all(0.5 <= t <= 1.0 for t in guided)
    sent = sorted({t for t, _, _ in recorder.calls}, reverse=True)
    expected = [1000 * t for t, _ in time_pairs(steps, 3.0)]
    assert sent == pytest.approx(expected, rel=1e-6)  # the network gets 1000 t


def test_the_update_uses_the_v1_guidance_form() -> None:
    settings = SamplerSettings(1, 5.0, (0.0, 1.0), 3.0)
    x = FlowEulerGuidanceIntervalSampler().sample(
        Recorder(), torch.zeros(1, 1, 2, 2, 2), conditions(2.0), conditions(-1.0), settings
    )
    # one step from t=1 to 0: x = 0 - 1 * ((1 + s) * 2 - s * (-1)) = -(12 + 5)
    assert torch.allclose(x, torch.full_like(x, -17.0))
    unguided = SamplerSettings(1, 5.0, (0.0, 0.5), 3.0)  # t = 1 lies outside
    x = FlowEulerGuidanceIntervalSampler().sample(
        Recorder(), torch.zeros(1, 1, 2, 2, 2), conditions(2.0), conditions(-1.0), unguided
    )
    assert torch.allclose(x, torch.full_like(x, -2.0))


def test_stochastic_mode_conditions_step_i_on_image_i_mod_n() -> None:
    settings = SamplerSettings(7, 3.0, (0.5, 1.0), 3.0)
    recorder = Recorder()
    FlowEulerGuidanceIntervalSampler().sample(
        recorder, torch.zeros(1, 1, 2, 2, 2), conditions(1.0, 2.0, 3.0), conditions(0.0),
        settings, multi_image="stochastic",
    )  # fmt: skip
    by_step = [c for _, c, _ in recorder.calls if c != 0.0]
    assert by_step == [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0]
    assert len(recorder.calls) == forward_count(settings, images=3, mode="stochastic")


def test_multidiffusion_averages_every_view_then_guides_once() -> None:
    settings = SamplerSettings(6, 2.0, (0.5, 1.0), 3.0)
    recorder = Recorder()
    x = FlowEulerGuidanceIntervalSampler().sample(
        recorder, torch.zeros(1, 1, 1, 1, 1), conditions(1.0, 2.0, 6.0), conditions(-3.0),
        settings, multi_image="multidiffusion",
    )  # fmt: skip
    assert len(recorder.calls) == forward_count(settings, images=3, mode="multidiffusion")
    guided = {t for t, c, _ in recorder.calls if c == -3.0}
    expected = 0.0
    for t, t_prev in time_pairs(6, 3.0):
        mean = 3.0  # (1 + 2 + 6) / 3
        v = (1 + 2.0) * mean - 2.0 * -3.0 if 0.5 <= t <= 1.0 else mean
        expected -= (t - t_prev) * v
    assert x.item() == pytest.approx(expected, rel=1e-5)
    assert len(guided) == 5  # 6 steps, r = 3: five inside [0.5, 1]


def test_sparse_features_are_one_sample() -> None:
    recorder = Recorder()
    FlowEulerGuidanceIntervalSampler().sample(
        recorder, torch.zeros(37, 8), conditions(1.0), conditions(0.0), SamplerSettings(2, 1.0)
    )
    assert {batch for _, _, batch in recorder.calls} == {1}
