"""The gate formula against hand-computed values, and the identity-like init."""

import math

import pytest
import torch

from ember_neuro import gates
from ember_neuro.models.build import build_model
from ember_neuro.models.config import config_for


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_raw_transforms_and_inits():
    assert gates.THETA_INIT == 0.0
    assert float(gates.leak_of(gates.LEAK_RAW_INIT)) == pytest.approx(0.7310585786)  # sigmoid(1)
    assert float(gates.steepness_of(gates.STEEPNESS_RAW_INIT)) == pytest.approx(math.log(2.0))  # softplus(0)
    assert gates.REF_STRENGTH_INIT == -2.0 and gates.CROSS_LAYER_WEIGHT_INIT == -2.0
    assert (gates.TEMPORAL_DECAY_INIT, gates.TEMPORAL_THRESHOLD_INIT,
            gates.TEMPORAL_STEEPNESS_INIT) == (1.0, 0.0, 1.5)


def test_fire_curve_hand_values():
    # sigmoid(2 * (0.5 - 0.2)) = sigmoid(0.6)
    f = gates.fire_curve(torch.tensor(0.5), torch.tensor(0.2), torch.tensor(2.0))
    assert float(f) == pytest.approx(0.6456563062, abs=1e-7)
    # |p| is used
    f_neg = gates.fire_curve(torch.tensor(-0.5), torch.tensor(0.2), torch.tensor(2.0))
    assert float(f_neg) == pytest.approx(float(f))
    assert gates.fire_curve_np(0.5, 0.2, 2.0) == pytest.approx(0.6456563062, abs=1e-10)


def test_lif_gate_row_hand_values():
    p = torch.tensor([[[[0.9, 0.1]]]], dtype=torch.float64)
    theta, leak, k = (torch.tensor(v, dtype=torch.float64) for v in (0.2, 0.7, 2.0))
    out = gates.lif_gate(p, theta, leak, k)[0, 0, 0]
    g9 = 0.9 * (0.7 + 0.3 * sig(2 * 0.7))
    g1 = 0.1 * (0.7 + 0.3 * sig(2 * -0.1))
    assert g9 == pytest.approx(0.846590, abs=1e-6)
    assert float(out[0]) == pytest.approx(g9 / (g9 + g1), abs=1e-12)
    assert float(out[1]) == pytest.approx(g1 / (g9 + g1), abs=1e-12)
    assert float(out.sum()) == pytest.approx(1.0)


def test_lif_gate_takes_external_fire():
    p = torch.tensor([[[[0.6, 0.4]]]])
    fire = torch.tensor([[[[1.0, 0.0]]]])
    out = gates.lif_gate(p, torch.tensor(0.5), torch.tensor(0.5), torch.tensor(3.0), fire=fire)
    # gated = [0.6, 0.2] -> renormalised to mass 1
    assert torch.allclose(out, torch.tensor([[[[0.75, 0.25]]]]))


def test_identity_like_init_barely_changes_attention():
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(2, 3, 8, 8) * 3, dim=-1)
    h = 3
    theta = torch.full((h,), gates.THETA_INIT).view(1, h, 1, 1)
    leak = torch.sigmoid(torch.full((h,), gates.LEAK_RAW_INIT)).view(1, h, 1, 1)
    k = torch.nn.functional.softplus(torch.full((h,), gates.STEEPNESS_RAW_INIT)).view(1, h, 1, 1)
    out = gates.lif_gate(p, theta, leak, k)
    ratio = out / p
    # fire in [0.5, 0.667] -> gate factor in [0.866, 0.910]: ratio within 5.2 %
    assert ratio.min() > 0.94 and ratio.max() < 1.06
    assert torch.allclose(out.sum(-1), p.sum(-1))


def test_untrained_lif_model_close_to_standard():
    torch.manual_seed(1)
    std = build_model(config_for("standard", "tiny"))
    lif = build_model(config_for("lif-learnable", "tiny"))
    lif.load_state_dict(std.state_dict(), strict=False)
    x = torch.randint(0, 65, (2, 16))
    with torch.no_grad():
        a, _ = std(x)
        b, _ = lif(x)
    assert (torch.softmax(a, -1) - torch.softmax(b, -1)).abs().max() < 0.02


def test_refractory_theta_small_tensor():
    p = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])  # B=1,H=1,T=2
    theta = torch.tensor([0.1])
    ref = torch.tensor([0.0])  # softplus(0) = ln 2
    cross = torch.tensor([0.0])  # sigmoid(0) = 0.5
    prev = torch.tensor([[0.2, 0.8]])
    per_head = (theta.view(1, 1, 1, 1), ref.view(1, 1, 1, 1), cross.view(1, 1, 1, 1))
    th = gates.refractory_theta(*per_head, gates.column_load(p), prev[:, None, None, :])
    col = [0.75, 0.25]
    exp = [0.1 + math.log(2) * col[j] + 0.5 * prev[0, j].item() for j in range(2)]
    assert th.shape == (1, 1, 1, 2)
    assert th[0, 0, 0].tolist() == pytest.approx(exp)
    assert gates.refractory_theta(*per_head, gates.column_load(p), None)[0, 0, 0].tolist() == pytest.approx(
        [0.1 + math.log(2) * c for c in col])
    assert gates.layer_load(p).tolist() == [[0.75, 0.25]]


def test_membrane_step_small_tensor():
    """One layer of the temporal-LIF membrane: V = V sigmoid(decay) + importance, the fire on V, and
    the module's soft reset V (1 - fire) and fire-scaled MLP update."""
    from ember_neuro.kinds.membrane.module import MembraneGate
    from ember_neuro.models.hooks import trained

    v = torch.tensor([[0.5, 0.0]])
    imp = torch.tensor([[1.0, 0.2]])
    sp = math.log1p(math.exp(1.5))
    want_v = [v[0, i].item() * sig(1.0) + imp[0, i].item() for i in range(2)]
    want_fire = [sig(sp * (vv - math.log(2))) for vv in want_v]
    got_v = gates.membrane_integrate(v, imp, torch.sigmoid(torch.tensor(1.0)))
    fire = gates.membrane_fire(got_v, torch.tensor(0.0), torch.tensor(1.5))
    assert got_v[0].tolist() == pytest.approx(want_v)
    assert fire[0].tolist() == pytest.approx(want_fire, abs=1e-6)
    gate = MembraneGate(config_for("temporal-lif", "tiny"), 0)
    attn_out = torch.zeros(1, 2, 3)
    attn_out[0, :, 0] = imp[0]  # ||attn_out|| = importance
    with torch.no_grad():
        update, v_after = gate(torch.ones(1, 2, 3), attn_out, lambda x: 2 * x, trained, v)
    reset = [vv * (1 - f) for vv, f in zip(want_v, want_fire, strict=True)]
    assert v_after[0].tolist() == pytest.approx(reset, abs=1e-6)
    assert update[0, :, 0].tolist() == pytest.approx([2 * f for f in want_fire], abs=1e-6)


def test_hidden_gate_keeps_norm():
    h = torch.randn(3, 5, 16)
    out = gates.hidden_gate(h, torch.full((16,), 0.3), torch.full((16,), 0.6), torch.full((16,), 4.0))
    assert torch.allclose(out.norm(dim=-1), h.norm(dim=-1), rtol=1e-5)
