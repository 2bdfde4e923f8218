"""AutoFormer's relative positions and CLS-plus-mean pooling through the model, the latency
features, weight decay and ONNX (the conversion itself: test_autoformer.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from supernet import SearchSpace, SubnetConfig, Supernet, complexity
from supernet.saved_model import load_subnet, save_subnet
from supernet.vit.latency import FEATURES, latency_features

SPACE = SearchSpace(
    embed_dim=(8, 12),
    depth=(1, 2),
    num_heads=(1, 2),
    mlp_ratio=(1.0, 2.0),
    img_size=12,
    patch_size=4,
    in_chans=2,
    num_classes=5,
    head_dim=4,
    pool="cls_mean",
    rel_pos="autoformer",
    rel_pos_max_distance=1,
    norm_eps=1e-5,
)


def test_cls_mean_reads_the_patch_tokens_only() -> None:
    """The CLS token is in the sequence (attention sees it) but the classifier averages the
    patch tokens behind it."""
    net = Supernet(SPACE).eval()
    subnet = SPACE.largest()
    x = torch.randn(2, 2, 12, 12)
    with torch.no_grad():
        tokens = net.forward_features(x, subnet)
        assert tokens.shape[1] == SPACE.num_tokens == 10
        want = net.head(tokens[:, 1:].mean(dim=1), SPACE.num_classes)
        assert torch.equal(net(x, subnet), want)


def test_latency_features_count_the_relative_position_work() -> None:
    """The relative-position products grow like QK^T and AV and are counted with them, so the
    MAC features still add up to the cost model's MACs."""
    subnet = SubnetConfig(12, 2, (1, 2), (2.0, 1.0))
    cost = complexity.breakdown(SPACE, subnet)
    n = SPACE.num_tokens
    assert cost.rel_pos_macs == cost.attn_matmul_macs == 2 * n * n * (1 + 2) * 4
    f = latency_features(SPACE, subnet, batch_size=3)
    assert list(f) == list(FEATURES)
    assert f["attn_matmul_macs"] == 3 * 4 * n * n * (1 + 2) * 4
    mac_terms = ("embed_macs", "attn_proj_macs", "attn_matmul_macs", "mlp_macs")
    assert sum(f[k] for k in mac_terms) == 3 * cost.macs
    plain = SearchSpace.from_dict(SPACE.to_dict() | {"rel_pos": "none"})
    assert latency_features(plain, subnet, 3)["attn_matmul_macs"] == f["attn_matmul_macs"] / 2


def test_tables_are_exempt_from_weight_decay() -> None:
    net = Supernet(SPACE)
    names = net.no_weight_decay()
    assert names == {
        f"blocks.{i}.rel_pos_{part}.{axis}_table"
        for i in range(2)
        for part in "kv"
        for axis in ("row", "col")
    }
    model = net.extract(SPACE.largest())
    assert "blocks.1.attn.rel_pos_v.col_table" in model.no_weight_decay()
    assert (
        Supernet(SearchSpace.from_dict(SPACE.to_dict() | {"rel_pos": "none"})).no_weight_decay()
        == set()
    )


def test_export_round_trip_keeps_the_options(tmp_path: Path) -> None:
    net = Supernet(SPACE).eval()
    subnet = SubnetConfig(12, 2, (2, 1), (1.0, 2.0))
    save_subnet(net.extract(subnet), SPACE, tmp_path / "export")
    model = load_subnet(tmp_path / "export")
    assert model.config()["rel_pos"] == "autoformer" and model.config()["norm_eps"] == 1e-5
    x = torch.randn(3, 2, 12, 12)
    with torch.no_grad():
        assert (model(x) - net(x, subnet)).abs().max().item() <= 1e-5


@pytest.mark.slow
def test_onnx_parity_with_relative_positions(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from supernet.onnx_export import export_onnx

    model = Supernet(SPACE).extract(SPACE.largest())
    assert export_onnx(model, SPACE, tmp_path / "model.onnx") <= 1e-4
