"""σ grids: the official timestep lists (wan22.md §5.2), diffusers' own grid, the paper's expert split."""

import numpy as np
import pytest

from cos_jax.sampling.schedules import SAMPLING_PRESETS, make_schedule, sampling_preset

# The official Wan2.2 timesteps (wan22.md §5.2, computed there with the official scheduler code).
OFFICIAL_T2V = (
    "999 997 995 993 990 988 985 982 979 976 972 969 965 961 956 952 947 941 936 929 922 915 907 898 888 877 "
    "865 852 837 819 799 776 749 717 678 631 571 492 386 235"
)
OFFICIAL_I2V = (
    "999 994 989 983 978 972 965 959 952 944 937 929 920 911 902 892 882 870 859 846 833 818 803 786 768 749 "
    "728 706 681 654 624 591 555 514 468 416 356 288 208 113"
)


def test_official_timesteps_and_switch():
    t2v = sampling_preset("official-t2v-a14b")
    np.testing.assert_array_equal(t2v.schedule().timesteps, np.array(OFFICIAL_T2V.split(), np.float32))
    assert t2v.switch_step() == 26
    assert t2v.schedule().sigmas[0] == np.float32(0.9999166) and t2v.schedule().sigmas[39] == np.float32(0.23510954)
    i2v = sampling_preset("official-i2v-a14b")
    np.testing.assert_array_equal(i2v.schedule().timesteps, np.array(OFFICIAL_I2V.split(), np.float32))
    assert i2v.switch_step() == 15
    ti2v = sampling_preset("official-ti2v-5b").schedule()
    assert ti2v.num_steps == 50 and ti2v.timesteps[:5].tolist() == [999, 995, 991, 987, 982]
    assert ti2v.timesteps[-5:].tolist() == [356, 302, 241, 172, 92]


@pytest.mark.parametrize("name", sorted(SAMPLING_PRESETS))
def test_schedules_follow_their_formula(name):
    cfg = SAMPLING_PRESETS[name]
    s = cfg.schedule()
    start = {"official": 0.999, "diffsynth": 1.0}[cfg.grid]
    base = np.linspace(start, 0, cfg.steps + 1)[:-1]
    shifted = cfg.shift * base / (1 + (cfg.shift - 1) * base)
    np.testing.assert_array_equal(s.sigmas, np.append(shifted, 0).astype(np.float32))
    expected_t = np.floor(shifted * 1000) if cfg.grid == "official" else shifted * 1000
    np.testing.assert_array_equal(s.timesteps, expected_t.astype(np.float32))


def test_paper_preset_expert_split():
    paper = sampling_preset("paper")
    s = paper.schedule()
    assert paper.switch_step() == 21  # steps 0-20 high-noise, 21-49 low-noise
    assert s.timesteps[20] >= 875 > s.timesteps[21]
    np.testing.assert_allclose(s.sigmas[[10, 18, 20, 21, 49]], [0.9524, 0.8989, 0.8824, 0.8735, 0.0926], atol=1e-4)


def test_diffusers_grid_equals_diffusers_scheduler():
    from diffusers import UniPCMultistepScheduler

    ref = UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0)
    ref.set_timesteps(40)
    ours = make_schedule("diffusers", 40, 3.0)
    np.testing.assert_array_equal(ours.sigmas, ref.sigmas.numpy())
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy().astype(np.float32))


def test_bad_inputs():
    with pytest.raises(KeyError, match="choose one of"):
        sampling_preset("official")
    with pytest.raises(ValueError, match="unknown grid"):
        make_schedule("karras", 10, 1.0)
