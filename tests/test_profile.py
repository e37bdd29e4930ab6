import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from effkernels.profile import profile

tv_models = pytest.importorskip("torchvision.models")


def test_hand_count_of_one_conv_and_linear():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, groups=1, bias=False), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 10))
    p = profile(model, 8, batch=2)
    conv_macs = 2 * 8 * 4 * 4 * 3 * 3 * 3       # N * C_out * H_out * W_out * C_in * k * k
    lin_macs = 2 * 10 * 128
    assert p.flops == 2 * (conv_macs + lin_macs)
    assert p.params == 8 * 3 * 9 + 128 * 10 + 10
    # outputs: conv [2,8,4,4], flatten [2,128], linear [2,10], float32
    assert p.activation_bytes == 4 * (2 * 8 * 16 + 2 * 128 + 2 * 10)
    assert p.memory_bytes == p.param_bytes + p.activation_bytes == 4 * p.params + p.activation_bytes


def test_depthwise_conv_counts_per_group():
    model = nn.Sequential(nn.Conv2d(3, 16, 1), nn.Conv2d(16, 16, 5, padding=2, groups=16))
    assert profile(model, 7).flops == 2 * (16 * 7 * 7 * 3 + 16 * 7 * 7 * 25)


def test_matches_torch_flop_counter_on_efficientnet_b0():
    model = tv_models.efficientnet_b0().eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert profile(model, 64).flops == counter.get_total_flops()


def test_efficientnet_b0_numbers():
    p = profile(tv_models.efficientnet_b0(), 224)
    assert p.params == 5_288_548
    # the paper's 0.39B "FLOPS" are multiply-adds; we count 2 x MACs
    assert 0.38e9 < p.flops / 2 < 0.41e9


def test_bad_arguments():
    with pytest.raises(ValueError, match="resolution"):
        profile(nn.Conv2d(3, 3, 1), 0)
    with pytest.raises(ValueError, match="batch"):
        profile(nn.Conv2d(3, 3, 1), 8, batch=0)


def test_batch_one_counts_half_of_batch_two_even_on_a_1x1_map():
    # train-mode BatchNorm would reject one value per channel; the count is per image anyway
    model = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 2))
    one, two = profile(model, 4, batch=1), profile(model, 4, batch=2)
    assert (2 * one.flops, 2 * one.activation_bytes, 2 * one.largest_activation_bytes) == \
        (two.flops, two.activation_bytes, two.largest_activation_bytes)
    assert one.flops == 2 * (8 * 3 * 16 + 8 * 2) and one.largest_activation_bytes == 4 * 8
