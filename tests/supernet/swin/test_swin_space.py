from __future__ import annotations

import dataclasses
import itertools
import json
import random
from pathlib import Path

import pytest

from supernet import SearchSpace, SubnetConfig
from supernet.space import PRESETS_DIR, SpaceError
from supernet.swin.space import SwinSpace, SwinSubnet

SWIN_PRESETS = sorted(p.stem for p in PRESETS_DIR.glob("swin_*.yaml"))

SWIN_T = SwinSubnet(
    embed_dim=(96, 192, 384, 768),
    depth=(2, 2, 6, 2),
    num_heads=((3, 3), (6, 6), (12,) * 6, (24, 24)),
    mlp_ratio=((4.0, 4.0), (4.0, 4.0), (4.0,) * 6, (4.0, 4.0)),
    window_size=((7, 7), (7, 7), (7,) * 6, (7, 7)),
)
S3_T = dataclasses.replace(SWIN_T, window_size=((7, 7), (7, 7), (14,) * 6, (7, 7)))


def _enumerate(space: SwinSpace) -> set[SwinSubnet]:
    """Every subnet of ``space``, written out independently of ``count_subnets``/``sample``."""
    per_stage = []
    for s in range(space.num_stages):
        options = []
        for c, d in itertools.product(space.embed_dim[s], space.depth[s]):
            block = list(
                itertools.product(space.num_heads[s], space.mlp_ratio[s], space.window_size[s])
            )
            for blocks in itertools.product(block, repeat=d):
                options.append((c, d, blocks))
        per_stage.append(options)
    subnets = set()
    for stages in itertools.product(*per_stage):
        subnets.add(
            SwinSubnet(
                embed_dim=tuple(c for c, _, _ in stages),
                depth=tuple(d for _, d, _ in stages),
                num_heads=tuple(tuple(b[0] for b in bl) for _, _, bl in stages),
                mlp_ratio=tuple(tuple(b[1] for b in bl) for _, _, bl in stages),
                window_size=tuple(tuple(b[2] for b in bl) for _, _, bl in stages),
            )
        )
    return subnets


# -- presets -------------------------------------------------------------------------------------
def test_presets_exist_and_load() -> None:
    assert SWIN_PRESETS == ["swin_digits", "swin_fashion_mnist", "swin_tiny"]
    for name in SWIN_PRESETS:
        space = SwinSpace.preset(name)
        assert space.name == name and space.family == "swin"
        assert space.to_dict()["family"] == "swin"
        for subnet in (space.smallest(), space.largest(), space.middle()):
            assert space.validate(subnet) is subnet


def test_swin_tiny_holds_swin_t_and_s3_t() -> None:
    space = SwinSpace.preset("swin_tiny")
    assert space.contains(SWIN_T) and space.contains(S3_T)
    assert [space.stage_resolution(s) for s in range(4)] == [56, 28, 14, 7]
    assert (space.img_size, space.patch_size, space.head_dim) == (224, 4, 32)


def test_digits_preset_is_tiny() -> None:
    space = SwinSpace.preset("swin_digits")
    assert (space.img_size, space.in_chans, space.num_classes) == (8, 1, 10)
    assert space.count_subnets() < 10**6


def test_a_vit_preset_is_refused() -> None:
    with pytest.raises(SpaceError, match="this is a vit search space, not a swin one"):
        SwinSpace.preset("digits")
    with pytest.raises(SpaceError, match=r"no preset 'nope'; presets: .*swin_digits"):
        SwinSpace.preset("nope")


# -- validation ----------------------------------------------------------------------------------
def _kwargs(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "embed_dim": [[8, 12], [16]],
        "depth": [[1, 2], [2]],
        "num_heads": [[1, 2], [2]],
        "mlp_ratio": [2.0],
        "window_size": [[2, 4], [2]],
        "img_size": 8,
        "patch_size": 2,
        "in_chans": 1,
        "num_classes": 3,
        "head_dim": 4,
    }
    base.update(changes)
    return base


def test_space_lists_every_problem() -> None:
    with pytest.raises(SpaceError) as info:
        SwinSpace(
            **_kwargs(
                embed_dim=[[8, 8], [0]],
                num_heads=[2, 4],
                shift="sometimes",
                head_dim=0,
            )
        )
    message = str(info.value)
    assert "embed_dim[0] lists a choice twice: 8, 8" in message
    assert "embed_dim[1] choices must be positive, got 0" in message
    assert "num_heads must be one list of choices per stage" in message
    assert "shift must be 'alternate' or 'none', got 'sometimes'" in message
    assert "head_dim must be a positive integer, got 0" in message
    assert len(info.value.problems) == 5


def test_space_geometry_problems() -> None:
    with pytest.raises(SpaceError, match="depth has 3 stages but embed_dim has 2"):
        SwinSpace(**_kwargs(depth=[[1], [1], [1]]))
    with pytest.raises(SpaceError, match="patch_size 3 does not divide img_size 8"):
        SwinSpace(**_kwargs(patch_size=3))
    with pytest.raises(SpaceError, match=r"the 6x6 patch grid cannot be halved .* multiple of 4"):
        SwinSpace(
            **_kwargs(
                embed_dim=[[8], [8], [8]],
                depth=[[1], [1], [1]],
                num_heads=[[1], [1], [1]],
                window_size=[[2], [2], [2]],
                img_size=12,
            )
        )
    with pytest.raises(
        SpaceError, match=r"mlp_ratio 0\.1 gives an empty MLP at stage 0's embed_dim 8"
    ):
        SwinSpace(**_kwargs(mlp_ratio=[0.1, 2.0]))


def test_flat_mlp_ratio_is_shared_and_choices_sorted() -> None:
    space = SwinSpace(**_kwargs(mlp_ratio=[4, 2], embed_dim=[[12, 8], [16]]))
    assert space.mlp_ratio == ((2.0, 4.0), (2.0, 4.0))
    assert space.embed_dim == ((8, 12), (16,))
    per_stage = SwinSpace(**_kwargs(mlp_ratio=[[2.0], [3.0, 4.0]]))
    assert per_stage.mlp_ratio == ((2.0,), (3.0, 4.0))


def test_windows_collapse_to_the_map() -> None:
    """Choices >= a stage's map become the map side (timm's clamp), so no duplicates remain."""
    space = SwinSpace(**_kwargs(window_size=[[2, 4, 8, 16], [1, 2, 3]]))
    assert space.window_size == ((2, 4), (1, 2))
    assert space.max_window(0) == 4 and space.max_window(1) == 2
    assert SwinSpace.from_dict(space.to_dict()) == space


def test_sample_never_yields_a_non_canonical_window(tiny_swin: SwinSpace) -> None:
    assert tiny_swin.window_size == ((2, 4), (2,))
    rng = random.Random(0)
    seen = {tiny_swin.sample(rng) for _ in range(3000)}
    everything = _enumerate(tiny_swin)
    assert seen == everything  # every subnet drawn, and nothing else
    assert tiny_swin.count_subnets() == len(everything) == 24


@pytest.mark.parametrize("seed", range(3))
def test_count_subnets_matches_enumeration(seed: int) -> None:
    rng = random.Random(seed)
    space = SwinSpace(
        embed_dim=[rng.sample([4, 8, 12], rng.randint(1, 2)), [8, 16]],
        depth=[rng.sample([1, 2, 3], rng.randint(1, 2)), [1]],
        num_heads=[[1], rng.sample([1, 2], rng.randint(1, 2))],
        mlp_ratio=rng.sample([1.0, 2.0], rng.randint(1, 2)),
        window_size=[[2, 4, 8], [1, 2, 5]],
        img_size=8,
        patch_size=2,
        head_dim=2,
    )
    assert space.count_subnets() == len(_enumerate(space))


def test_validate_names_the_stage_block_and_choices() -> None:
    space = SwinSpace.preset("swin_tiny")
    bad = dataclasses.replace(
        SWIN_T,
        embed_dim=(96, 200, 384, 768),
        window_size=((7, 7), (7, 7), (7,) * 6, (7, 14)),
        num_heads=((3, 3), (6, 5), (12,) * 6, (24, 24)),
    )
    with pytest.raises(SpaceError) as info:
        space.validate(bad)
    assert info.value.problems == [
        "embed_dim[1] = 200 is not a choice of stage 1 (128, 192)",
        "num_heads[1][1] = 5 is not a choice of stage 1 block 1 (4, 6)",
        "window_size[3][1] = 14 is not a choice of stage 3 block 1 (7); stage 3's map is 7x7, "
        "so a window that covers it is written 7",
    ]
    with pytest.raises(SpaceError, match=r"mlp_ratio\[0\]\[0\] = 2 is not a choice of stage 0"):
        space.validate(
            dataclasses.replace(SWIN_T, mlp_ratio=((2.0, 4.0), (4.0, 4.0), (4.0,) * 6, (4.0,) * 2))
        )


def test_validate_refuses_other_families_and_stage_counts() -> None:
    space = SwinSpace.preset("swin_digits")
    with pytest.raises(SpaceError, match="a vit subnet was given to a swin search space"):
        space.validate(SubnetConfig(32, 2, (1, 2), (2.0, 2.0)))
    with pytest.raises(TypeError, match="expected a SwinSubnet, got dict"):
        space.validate({"embed_dim": [16, 32]})  # type: ignore[arg-type]
    with pytest.raises(SpaceError, match=r"the subnet has 1 stage\(s\) but this space has 2"):
        space.validate(SwinSubnet((16,), (1,), ((1,),), ((2.0,),), ((2,),)))
    assert not space.contains(SubnetConfig(32, 2, (1, 2), (2.0, 2.0)))


def test_subnet_lists_every_problem() -> None:
    with pytest.raises(SpaceError) as info:
        SwinSubnet(
            embed_dim=(16, 32),
            depth=(1, 2),
            num_heads=((1,), (2,)),
            mlp_ratio=((2.0,), (-1.0, 2.0)),
            window_size=[2, 2],  # type: ignore[arg-type]
        )
    assert info.value.problems == [
        "num_heads[1] has 1 entries but depth[1] is 2: give one entry per active block",
        "mlp_ratio must hold positive numbers, got -1.0",
        "window_size must be a list with one list per stage (one entry per active block), "
        "got (2, 2)",
    ]
    with pytest.raises(SpaceError, match="depth has 1 stages but embed_dim has 2"):
        SwinSubnet((16, 32), (1,), ((1,),), ((2.0,),), ((2,),))


# -- encodings -----------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", SWIN_PRESETS)
def test_subnet_round_trips(preset: str, tmp_path: Path) -> None:
    space = SwinSpace.preset(preset)
    rng = random.Random(preset)
    for subnet in [space.smallest(), space.largest(), *(space.sample(rng) for _ in range(50))]:
        data = subnet.to_dict()
        assert data["family"] == "swin" and isinstance(data["num_heads"][0], list)
        assert SwinSubnet.from_dict(data) == subnet
        data.pop("family")
        assert SwinSubnet.from_dict(data) == subnet
        row = subnet.to_row()
        assert set(row) == {"embed_dim", "depth", "num_heads", "mlp_ratio", "window_size"}
        assert all(isinstance(v, str) for v in row.values())
        assert json.loads(row["depth"]) == list(subnet.depth)
        assert SwinSubnet.from_row({**row, "number": 3, "macs": 1}) == subnet
        assert SwinSubnet.from_row({k: json.loads(v) for k, v in row.items()}) == subnet
        assert hash(subnet) == hash(SwinSubnet.from_dict(subnet.to_dict()))
    subnet.to_yaml(tmp_path / "subnet.yaml")
    assert SwinSubnet.from_yaml(tmp_path / "subnet.yaml") == subnet


def test_subnet_from_dict_refuses_another_family() -> None:
    data = SWIN_T.to_dict()
    with pytest.raises(SpaceError, match="this is a vit subnet, not a swin one"):
        SwinSubnet.from_dict({**data, "family": "vit"})
    with pytest.raises(SpaceError, match="the row has no column"):
        SwinSubnet.from_row({"embed_dim": "[1]", "family": "swin"})


def test_subnet_name_is_short_and_unambiguous() -> None:
    assert str(SWIN_T) == (
        "C96-192-384-768_D2-2-6-2_H[3*2|6*2|12*6|24*2]_M[4*2|4*2|4*6|4*2]_W[7*2|7*2|7*6|7*2]"
    )
    mixed = SwinSubnet(
        (48, 96), (1, 3), ((1,), (2, 4, 4)), ((2.0,), (3.5, 4.0, 4.0)), ((7,), (7,) * 3)
    )
    assert str(mixed) == "C48-96_D1-3_H[1|2/4*2]_M[2|3.5/4*2]_W[7|7*3]"
    space = SwinSpace.preset("swin_fashion_mnist")
    rng = random.Random(1)
    subnets = {space.sample(rng) for _ in range(300)}
    assert len({str(s) for s in subnets}) == len(subnets)


@pytest.mark.parametrize("preset", SWIN_PRESETS)
def test_space_round_trips(preset: str, tmp_path: Path) -> None:
    space = SwinSpace.preset(preset)
    data = space.to_dict()
    assert data["family"] == "swin" and data["name"] == preset
    assert SwinSpace.from_dict(data) == space
    space.to_yaml(tmp_path / "space.yaml")
    assert SwinSpace.from_yaml(tmp_path / "space.yaml") == space
    (tmp_path / "export.yaml").write_text(
        json.dumps({"space": data, "subnet": space.smallest().to_dict()})
    )
    assert SwinSpace.from_yaml(tmp_path / "export.yaml") == space
    assert SwinSubnet.from_yaml(tmp_path / "export.yaml") == space.smallest()


def test_space_from_dict_refuses_another_family() -> None:
    data = SearchSpace.preset("digits").to_dict()
    with pytest.raises(SpaceError, match="this is a vit search space, not a swin one"):
        SwinSpace.from_dict({**data, "family": "vit"})


def test_differences() -> None:
    space = SwinSpace.preset("swin_digits")
    other = dataclasses.replace(space, shift="none", head_dim=16, name="other")
    assert space.differences(other) == ["head_dim", "shift"]
    assert space.differences(dataclasses.replace(space, name="x")) == []
    assert space.differences(SearchSpace.preset("digits")) == ["family"]


def test_smallest_middle_largest() -> None:
    space = SwinSpace.preset("swin_fashion_mnist")
    small, middle, large = space.smallest(), space.middle(), space.largest()
    assert small.embed_dim == (32, 64) and small.depth == (1, 2)
    assert small.window_size == ((7,), (7, 7))
    assert middle.depth == (1, 3) and middle.num_heads == ((2,), (4, 4, 4))
    assert middle.mlp_ratio == ((3.0,), (3.0,) * 3) and middle.embed_dim == (32, 64)
    assert large.embed_dim == (48, 96) and large.depth == (2, 4)
    assert large.window_size == ((14, 14), (7,) * 4)
    assert space.max_mlp_hidden_dim(1) == 384 and space.max_qkv_dim(1) == 96


def test_sample_draws_each_block_independently() -> None:
    space = SwinSpace.preset("swin_fashion_mnist")
    rng = random.Random(0)
    mixed = 0
    for _ in range(200):
        subnet = space.validate(space.sample(rng))
        mixed += any(len(set(h)) > 1 for h in subnet.num_heads)
    assert mixed > 50
