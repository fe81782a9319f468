"""The neurobench package's own metric classes against our hand count of its rules, on shipped models
and real validation data (deploy/neurobench_metrics.py; scripts/neurobench_crosscheck.py prints the
whole table): where both see the same layers they must agree exactly, and what NeuroBench cannot see
(the attention's matmuls) must close the gap to torch's own count of every matmul."""

from __future__ import annotations

import pytest

from ..helpers import SHIPPED

pytest.importorskip("neurobench")
torch = pytest.importorskip("torch")


def _load(name: str, windows: int):
    from ember_neuro.models.checkpoint import load_checkpoint
    from ember_neuro.models.data import data_for

    ck = load_checkpoint(SHIPPED / f"{name}.pt")
    return ck, data_for(ck).val_batches(1, windows, ck.config.block_size, seed=0)


@pytest.fixture(scope="module")
def transformer():
    return _load("lif-learnable-strong", 2)


@pytest.fixture(scope="module")
def keyword_spotter():
    return _load("audio-cfc-lif-strong", 1)


def assert_agree(model, batches, nb: dict | None = None) -> tuple[dict, dict]:
    """NeuroBench's figures (`nb`, else measured here) against our hand count on the same inputs."""
    from ember_neuro.deploy import neurobench_metrics as nbm

    nb = nb or nbm.measure(model, batches)
    ours = nbm.hand_counts(model, batches[0][0])
    assert nb["counted_by"] == "neurobench 2.3.0" and nb["samples"] == ours["samples"] == len(batches[0][0])
    assert nb["footprint_bytes"] == ours["footprint_bytes"]
    assert nb["connection_sparsity"] == round(ours["connection_sparsity"], 4)
    assert nb["dense_macs"] == ours["dense_macs"] > 0
    assert nb["effective_macs"] == ours["effective_macs"] > 0  # no zero weights: the rules coincide
    assert nb["effective_acs"] == ours["effective_acs"] == 0  # no host layer is fed spikes
    assert nb["activation_sparsity"] == ours["activation_sparsity"]
    return nb, ours


def test_transformer_linear_counts_agree_and_attention_closes_the_gap(transformer) -> None:
    from ember_neuro.deploy import neurobench_metrics as nbm

    ck, batches = transformer
    nb, ours = assert_agree(ck.model, batches)
    seen = nbm.seen(ck.model)
    assert seen["connection_classes"] == {"Linear": 4 * ck.config.n_layer + 1}  # per layer 4, the head
    assert not seen["activation_layers"]
    assert nb["activation_sparsity"] is None  # nothing hooked (NeuroBench itself would say 0.0)
    x = batches[0][0]
    attn = nbm.attention_matmuls(ck.model, x)
    t, c = ck.config.block_size, ck.config.n_embd
    assert attn["qk_macs"] == attn["pv_dense_macs"] == ck.config.n_layer * t * t * c
    assert nb["dense_macs"] + attn["dense_macs"] == nbm.torch_matmul_macs(ck.model, x)
    assert nb["footprint_bytes"] - ours["parameter_bytes"] == ck.config.n_layer * t * t  # the causal masks


def test_keyword_spotter_counts_agree(keyword_spotter) -> None:
    from ember_neuro.deploy import neurobench_metrics as nbm
    from ember_neuro.export.inrc import host_operations

    ck, batches = keyword_spotter
    x, y = batches[0]
    published = host_operations(ck.model, x.numpy(), y.tolist())  # what export inrc publishes
    assert_agree(ck.model, batches, published)
    seen = nbm.seen(ck.model)
    assert seen["activation_classes"] == {"Sigmoid": ck.config.n_layer}  # the CfC's, never the gates'
    assert len(seen["connection_layers"]) == 2 + 6 * ck.config.n_layer  # proj, head; per CfC 6 nn.Linear
    assert not ck.model.training and not any(m._forward_hooks or m._forward_pre_hooks
                                             for m in ck.model.modules())  # hooks removed


def test_a_metric_neurobench_cannot_compute_is_refused_not_zeroed() -> None:
    from ember_neuro.deploy import neurobench_metrics as nbm

    no_weights = torch.nn.Sequential(torch.nn.Tanh())  # ConnectionSparsity divides by zero weights
    with pytest.raises(RuntimeError, match="ConnectionSparsity"):
        nbm.measure(no_weights, [(torch.ones(2, 3), torch.zeros(2))])
