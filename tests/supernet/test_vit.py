from __future__ import annotations

import pytest
import torch

from supernet import SearchSpace, Supernet, VisionTransformer
from supernet.vit import sinusoidal_position_embedding


def test_sinusoidal_formula() -> None:
    pe = sinusoidal_position_embedding(5, 6)[0]
    for pos in range(5):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert pe[pos, 2 * i].item() == pytest.approx(torch.sin(torch.tensor(angle)).item())
            assert pe[pos, 2 * i + 1].item() == pytest.approx(torch.cos(torch.tensor(angle)).item())
    assert sinusoidal_position_embedding(3, 5).shape == (1, 3, 5)  # odd widths work too


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_extracted_model_loads_into_timm(pool: str) -> None:
    """Users can take an extracted uniform subnet straight into timm: same keys, same logits."""
    timm_vit = pytest.importorskip("timm.models.vision_transformer")
    space = SearchSpace(
        embed_dim=(32, 48),
        depth=(2,),
        num_heads=(2, 3),
        mlp_ratio=(2.0, 4.0),
        img_size=16,
        patch_size=4,
        in_chans=3,
        num_classes=7,
        head_dim=16,
        pool=pool,  # type: ignore[arg-type]
    )
    subnet = space.uniform(48, 2, 3, 4.0)
    model: VisionTransformer = Supernet(space).extract(subnet)
    twin = timm_vit.VisionTransformer(
        img_size=16,
        patch_size=4,
        in_chans=3,
        num_classes=7,
        embed_dim=48,
        depth=2,
        num_heads=3,
        mlp_ratio=4.0,
        qkv_bias=True,
        class_token=pool == "cls",
        global_pool="token" if pool == "cls" else "avg",
        fc_norm=False,
    ).eval()
    twin.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert (twin(x) - model(x)).abs().max().item() < 1e-5
