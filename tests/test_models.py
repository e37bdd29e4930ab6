import pytest
import torch

from effkernels.models import efficientnet
from effkernels.profile import largest_phi, profile

tv_models = pytest.importorskip("torchvision.models")

PARAMS = {"b0": 5_288_548, "b3": 12_233_232, "b7": 66_347_960}


def _randomize_bn_stats(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("name", [f"b{i}" for i in range(8)])
def test_state_dict_and_output_equal_torchvision(name):
    ref = getattr(tv_models, f"efficientnet_{name}")().eval()
    with torch.no_grad():
        _randomize_bn_stats(ref)
    ours = efficientnet(name).eval()
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(our_sd) == list(ref_sd)
    assert all(our_sd[k].shape == ref_sd[k].shape for k in ref_sd)
    ours.load_state_dict(ref_sd, strict=True)
    n_params = sum(p.numel() for p in ours.parameters())
    assert n_params == sum(p.numel() for p in ref.parameters())
    if name in PARAMS:
        assert n_params == PARAMS[name]
    bn = [m for m in ours.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {m.eps for m in bn} == {1e-3 if name in ("b5", "b6", "b7") else 1e-5}
    x = torch.randn(2, 3, 35, 33)  # odd sizes: every stride-2 stage sees odd and even inputs
    with torch.no_grad():
        want, got = ref(x), ours(x)
    err = (got - want).norm() / want.norm()
    assert err < 1e-5, f"relative error {err:.2e}"


@pytest.mark.parametrize("phi", [0.5, 1.5, 8])
def test_any_phi_builds_and_runs(phi):
    with torch.device("meta"):
        model = efficientnet(phi=phi)
    v = model.variant
    assert v.depth == pytest.approx(1.2 ** phi)
    p = profile(model, v.resolution)
    base = profile(efficientnet("b0").to("meta"), 224)
    assert p.flops > base.flops  # bigger phi, more work
    if phi == 0.5:  # small enough to run for real
        out = efficientnet(phi=phi, num_classes=10).eval()(torch.randn(1, 3, 40, 40))
        assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_flops_roughly_double_per_phi_under_the_compound_rule():
    flops = []
    for phi in range(4):
        with torch.device("meta"):
            m = efficientnet(phi=phi, rule="compound")
        flops.append(profile(m, m.variant.resolution).flops)
    ratios = [b / a for a, b in zip(flops, flops[1:])]
    assert all(1.6 < r < 2.4 for r in ratios), ratios


def test_largest_phi_meets_the_targets():
    with torch.device("meta"):
        m1 = efficientnet(phi=1, rule="compound")
    p1 = profile(m1, m1.variant.resolution)
    best = largest_phi(p1.flops, p1.memory_bytes, step=0.5)
    assert best is not None and best.phi == 1.0 and best.profile == p1
    assert largest_phi(1e3, 1e3) is None  # nothing fits
    with pytest.raises(ValueError, match="target_flops"):
        largest_phi(-1, 1e9)


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="name"):
        efficientnet("b8")
    with pytest.raises(ValueError, match="phi"):
        efficientnet(phi=-0.5)
    with pytest.raises(ValueError, match="name/phi"):
        efficientnet("b0", phi=1)
    with pytest.raises(ValueError, match="num_classes"):
        efficientnet("b0", num_classes=0)


def test_scaling_cli_prints_both_rules(capsys):
    from effkernels.__main__ import main

    assert main(["scaling", "--max-phi", "2"]) == 0
    out = capsys.readouterr().out
    assert "rule = compound" in out and "rule = official" in out
    assert "| 0 | 1.000 | 1.000 | 224 | 5.29 |" in out  # B0: 5,288,548 params
    assert "geometric mean" in out
