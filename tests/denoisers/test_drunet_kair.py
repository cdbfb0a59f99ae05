"""DRUNet.load_weights in KAIR's layout (UNetRes, the DPIR DRUNet files): key names written
out from KAIR's module structure, a functional KAIR forward as reference, strict errors."""

import re

import pytest
import torch
import torch.nn.functional as F

from pnpfast.denoisers.drunet import DRUNet


def kair_names(levels: int, blocks: int, bias: bool = False) -> list[str]:
    """KAIR UNetRes state-dict keys: m_head; m_down{d}.{i}.res.{0,2} and m_down{d}.{blocks}
    (strided conv); m_body.{i}.res.{0,2}; m_up{d}.0 (transposed conv) and
    m_up{d}.{1..blocks}.res.{0,2}; m_tail."""
    convs = ["m_head"]
    for d in range(1, levels):
        convs += [f"m_down{d}.{i}.res.{j}" for i in range(blocks) for j in (0, 2)]
        convs.append(f"m_down{d}.{blocks}")
    convs += [f"m_body.{i}.res.{j}" for i in range(blocks) for j in (0, 2)]
    for d in range(levels - 1, 0, -1):
        convs.append(f"m_up{d}.0")
        convs += [f"m_up{d}.{i}.res.{j}" for i in range(1, blocks + 1) for j in (0, 2)]
    convs.append("m_tail")
    params = ("weight", "bias") if bias else ("weight",)
    return [f"{c}.{p}" for c in convs for p in params]


def to_kair(key: str) -> str:
    """Our module key -> KAIR's: head/tail/body get ``m_``, downs.k / ups.k become
    m_down{k+1} / m_up{k+1}."""
    key = re.sub(r"^downs\.(\d+)\.", lambda m: f"m_down{int(m.group(1)) + 1}.", key)
    key = re.sub(r"^ups\.(\d+)\.", lambda m: f"m_up{int(m.group(1)) + 1}.", key)
    return re.sub(r"^(head|body|tail)\.", r"m_\1.", key)


def kair_state(net: DRUNet) -> dict[str, torch.Tensor]:
    return {to_kair(k): v.clone() for k, v in net.state_dict().items()}


def kair_forward(
    state: dict[str, torch.Tensor], x: torch.Tensor, sigma: float, levels: int, blocks: int
) -> torch.Tensor:
    """KAIR's UNetRes.forward (bias-free, ReLU) on x [B, C, H, W], H and W multiples of
    2**(levels-1), from the KAIR-named state dict alone."""

    def conv(h, name):
        return F.conv2d(h, state[f"{name}.weight"], padding=1)

    def res(h, prefix, i):
        return h + conv(F.relu(conv(h, f"{prefix}.{i}.res.0")), f"{prefix}.{i}.res.2")

    h = conv(torch.cat([x, torch.full_like(x[:, :1], sigma)], dim=1), "m_head")
    skips = [h]
    for d in range(1, levels):
        for i in range(blocks):
            h = res(h, f"m_down{d}", i)
        h = F.conv2d(h, state[f"m_down{d}.{blocks}.weight"], stride=2)
        skips.append(h)
    for i in range(blocks):
        h = res(h, "m_body", i)
    for d in range(levels - 1, 0, -1):
        h = F.conv_transpose2d(h + skips[d], state[f"m_up{d}.0.weight"], stride=2)
        for i in range(1, blocks + 1):
            h = res(h, f"m_up{d}", i)
    return conv(h + skips[0], "m_tail")


def small(channels: int = 1, bias: bool = False, seed: int = 0) -> DRUNet:
    torch.manual_seed(seed)
    return DRUNet(channels, widths=(8, 16, 32), blocks=2, bias=bias).eval()


@pytest.mark.parametrize(("channels", "bias"), [(1, False), (3, False), (1, True)])
def test_kair_state_loads_and_gives_the_same_output(channels, bias):
    source = small(channels, bias, seed=0)
    state = kair_state(source)
    assert sorted(state) == sorted(kair_names(3, 2, bias))
    assert list(source.file_keys("kair")) == kair_names(3, 2, bias)  # layer order
    target = small(channels, bias, seed=1)
    assert target.load_weights(state, "kair") is target
    x = torch.rand(2, channels, 12, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(target(x, 0.1), source(x, 0.1))
        odd = x[..., :11, :7]  # padded inside the module
        assert torch.equal(target(odd, 0.1), source(odd, 0.1))
        if not bias:
            ref = kair_forward(state, x, 0.1, levels=3, blocks=2)
            torch.testing.assert_close(target(x, 0.1), ref, rtol=1e-5, atol=1e-5)


def test_missing_unexpected_and_wrong_shape():
    net = small()
    state = kair_state(net)
    missing = dict(state)
    del missing["m_up1.0.weight"]
    with pytest.raises(ValueError, match=r"missing keys \[m_up1\.0\.weight\]"):
        small().load_weights(missing)
    extra = {**state, "m_up1.0.bias": torch.zeros(8)}
    with pytest.raises(ValueError, match=r"unexpected keys \[m_up1\.0\.bias\]"):
        small().load_weights(extra)
    wrong = {**state, "m_tail.weight": torch.zeros(3, 8, 3, 3)}
    with pytest.raises(ValueError, match=r"wrong shapes \[m_tail\.weight: \(3, 8, 3, 3\)"):
        small().load_weights(wrong)
    ours = net.state_dict()  # our own names are not the KAIR layout
    with pytest.raises(ValueError, match=r"missing keys.*unexpected keys"):
        small().load_weights(ours)
    with pytest.raises(ValueError, match="layout"):
        small().load_weights(state, "mohan")
    with pytest.raises(ValueError, match="layout"):
        net.file_keys("saoyan")


def test_a_color_file_does_not_load_into_a_gray_network():
    state = kair_state(small(3))
    with pytest.raises(ValueError, match=r"wrong shapes \[m_head\.weight: \(8, 4, 3, 3\)"):
        small(1).load_weights(state)


def test_default_drunet_is_dpir_size_and_mapping_is_complete():
    net = DRUNet()
    assert sum(p.numel() for p in net.parameters()) == 32_638_656
    mapping = net.file_keys("kair")
    assert list(mapping) == kair_names(4, 4)
    assert sorted(mapping.values()) == sorted(net.state_dict())
    assert all(to_kair(module_key) == key for key, module_key in mapping.items())
