import math

import pytest

from effkernels import scaling

tv = pytest.importorskip("torchvision")
from torchvision.models import efficientnet as tv_eff  # noqa: E402
from torchvision.models._utils import _make_divisible  # noqa: E402


def test_compound_rule_at_phi_1_and_2():
    v = scaling.compound(1)
    assert (v.depth, v.width) == pytest.approx((1.2, 1.1))
    assert v.resolution == round(224 * 1.15 / 8) * 8 == 256
    v2 = scaling.compound(2)
    assert (v2.depth, v2.width) == pytest.approx((1.44, 1.21))
    assert v2.resolution == round(224 * 1.15 ** 2 / 8) * 8


def test_flops_factor_is_alpha_beta2_gamma2():
    assert scaling.flops_factor() == pytest.approx(1.2 * 1.1 ** 2 * 1.15 ** 2)
    assert scaling.flops_factor(1.0, 1.0, math.sqrt(2)) == pytest.approx(2.0)


@pytest.mark.parametrize("phi", [0.5, 1.5, 8, 10.25])
def test_fractional_and_large_phi(phi):
    v = scaling.variant(phi)
    assert v.depth == pytest.approx(1.2 ** phi) and v.width == pytest.approx(1.1 ** phi)
    assert v.resolution % 8 == 0 and abs(v.resolution - 224 * 1.15 ** phi) <= 4
    assert 0.2 <= v.dropout <= 0.5
    assert len(scaling.block_shapes(phi)) >= 16


def test_official_table_matches_torchvision():
    # torchvision's builders: width, depth, dropout, BN eps (B5..B7 use 1e-3)
    expected = {"b0": (1.0, 1.0, 0.2), "b1": (1.0, 1.1, 0.2), "b2": (1.1, 1.2, 0.3), "b3": (1.2, 1.4, 0.3),
                "b4": (1.4, 1.8, 0.4), "b5": (1.6, 2.2, 0.4), "b6": (1.8, 2.6, 0.5), "b7": (2.0, 3.1, 0.5)}
    for name, (w, d, p) in expected.items():
        v = scaling.variant(name)
        assert (v.width, v.depth, v.dropout) == (w, d, p)
        assert v.bn_eps == (1e-3 if name in ("b5", "b6", "b7") else 1e-5)
        assert scaling.variant(int(name[1])) == v  # integer phi -> the table by default
    assert [scaling.variant(f"b{i}").resolution for i in range(8)] == [224, 240, 260, 300, 380, 456, 528, 600]
    assert scaling.variant(3, rule="compound").depth == pytest.approx(1.2 ** 3)


def test_make_divisible_is_torchvisions():
    for v in [1, 3.5, 7.9, 8, 12, 16 * 1.1, 24 * 1.8, 40 * 2.2, 100, 1152 * 1.6, 320 * 3.1]:
        assert scaling.make_divisible(v, 8) == _make_divisible(v, 8), v


@pytest.mark.parametrize("name", [f"b{i}" for i in range(8)])
def test_stage_configs_match_torchvision(name):
    v = scaling.variant(name)
    tv_conf, _ = tv_eff._efficientnet_conf(f"efficientnet_{name}", width_mult=v.width, depth_mult=v.depth)
    ours = scaling.stage_configs(v)
    assert [(c.expand_ratio, c.kernel, c.stride, c.in_channels, c.out_channels, c.layers) for c in ours] == \
           [(c.expand_ratio, c.kernel, c.stride, c.input_channels, c.out_channels, c.num_layers) for c in tv_conf]


def test_block_shapes_follow_the_network():
    shapes = scaling.block_shapes("b0")
    assert len(shapes) == 16
    first = shapes[0]
    assert (first.in_channels, first.expanded_channels, first.out_channels, first.in_hw) == (32, 32, 16, 112)
    assert shapes[1].stride == 2 and shapes[1].out_hw == 56 and shapes[1].expanded_channels == 96
    assert shapes[-1].out_hw == 7 and shapes[-1].out_channels == 320
    assert [s.residual for s in shapes[:3]] == [False, False, True]
    assert scaling.block_shapes("b0", resolution=33)[-1].out_hw == 2  # odd sizes: floor like conv


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="phi"):
        scaling.variant(-1)
    with pytest.raises(ValueError, match="phi"):
        scaling.variant(float("nan"))
    with pytest.raises(ValueError, match="name"):
        scaling.variant("b9")
    with pytest.raises(ValueError, match="rule"):
        scaling.variant(1, rule="tf")
    with pytest.raises(ValueError, match="alpha"):
        scaling.compound(1, alpha=0.9)
    with pytest.raises(ValueError, match="resolution"):
        scaling.block_shapes("b0", resolution=0)
    with pytest.warns(UserWarning, match="far from 2"):
        scaling.compound(1, alpha=2.0, beta=1.5, gamma=1.5)
