from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import OmegaConf

from supernet import SearchSpace, SpaceError, SubnetConfig
from supernet.space import PRESETS_DIR


def _space(**changes: Any) -> SearchSpace:
    fields: dict[str, Any] = {
        "embed_dim": [8, 12],
        "depth": [1, 2],
        "num_heads": [1, 2],
        "mlp_ratio": [1.0, 2.0],
        "img_size": 8,
        "patch_size": 4,
        "in_chans": 1,
        "num_classes": 3,
        "head_dim": 4,
    }
    fields.update(changes)
    return SearchSpace(**fields)


# -- every validation error, by its message -------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"embed_dim": []}, "embed_dim must be a non-empty list of integers, got ()"),
        ({"depth": []}, "depth must be a non-empty list of integers, got ()"),
        ({"num_heads": []}, "num_heads must be a non-empty list of integers, got ()"),
        ({"mlp_ratio": []}, "mlp_ratio must be a non-empty list of numbers, got ()"),
        ({"embed_dim": 8}, "embed_dim must be a non-empty list of integers, got 8"),
        ({"embed_dim": [8, 12.5]}, "embed_dim must hold only integers, got 12.5"),
        ({"depth": [0, 2]}, "depth choices must be positive, got 0"),
        ({"num_heads": [-1, 2]}, "num_heads choices must be positive, got -1"),
        ({"mlp_ratio": [0.0, 2.0]}, "mlp_ratio choices must be positive, got 0.0"),
        ({"mlp_ratio": [float("nan")]}, "mlp_ratio must hold only numbers, got nan"),
        ({"embed_dim": [8, 8]}, "embed_dim lists a choice twice: 8, 8"),
        ({"patch_size": 3}, "patch_size 3 does not divide img_size 8"),
        ({"patch_size": 16}, "patch_size 16 does not divide img_size 8"),
        ({"img_size": 0}, "img_size must be a positive integer, got 0"),
        ({"head_dim": 0}, "head_dim must be a positive integer, got 0"),
        ({"in_chans": 1.5}, "in_chans must be a positive integer, got 1.5"),
        ({"num_classes": True}, "num_classes must be a positive integer, got True"),
        ({"pool": "max"}, "pool must be 'cls', 'mean' or 'cls_mean', got 'max'"),
        ({"pos_embed": "rope"}, "pos_embed must be 'learned' or 'sinusoidal', got 'rope'"),
        ({"rel_pos": "rope"}, "rel_pos must be 'none' or 'autoformer', got 'rope'"),
        (
            {"rel_pos": "autoformer", "pool": "mean"},
            "rel_pos 'autoformer' needs the CLS token (its tables' first row is for the pairs "
            "that involve it): use pool 'cls_mean' (AutoFormer's) or 'cls'",
        ),
        ({"rel_pos_max_distance": 0}, "rel_pos_max_distance must be a positive integer, got 0"),
        ({"rel_pos_max_distance": 2.5}, "rel_pos_max_distance must be a positive integer, got 2.5"),
        ({"norm_eps": 0}, "norm_eps must be a positive number, got 0.0"),
        ({"norm_eps": float("inf")}, "norm_eps must be a positive number, got inf"),
        (
            {"norm_eps": "1e-5"},
            "norm_eps must be a positive number, got '1e-5' (YAML reads 1e-5 as text: write it "
            "with a decimal point, e.g. 1.0e-5)",
        ),
        ({"norm_eps": "small"}, "norm_eps must be a positive number, got 'small'"),
        ({"mlp_ratio": [0.05]}, "mlp_ratio 0.05 gives an empty MLP at embed_dim 8"),
    ],
)
def test_space_validation_messages(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpaceError) as info:
        _space(**changes)
    assert info.value.problems == [message]
    assert str(info.value) == f"invalid search space: {message}"


def test_space_reports_every_problem_at_once() -> None:
    with pytest.raises(SpaceError) as info:
        _space(embed_dim=[], patch_size=3, pool="max")
    assert len(info.value.problems) == 3
    assert str(info.value).startswith("invalid search space:\n  - ")


def test_unknown_field_is_named() -> None:
    data = _space().to_dict() | {"embed_dims": [8]}
    with pytest.raises(
        SpaceError, match=r"unknown field\(s\) embed_dims; the fields are embed_dim"
    ):
        SearchSpace.from_dict(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"embed_dim": 8, "depth": 2, "num_heads": [1], "mlp_ratio": [1.0, 1.0]},
            "num_heads has 1 entries but depth is 2: give one entry per active layer",
        ),
        (
            {"embed_dim": 8, "depth": 2, "num_heads": [1, 1], "mlp_ratio": [1.0]},
            "mlp_ratio has 1 entries but depth is 2: give one entry per active layer",
        ),
        (
            {"embed_dim": 0, "depth": 1, "num_heads": [1], "mlp_ratio": [1.0]},
            "embed_dim must be a positive integer, got 0",
        ),
        (
            {"embed_dim": 8, "depth": 1, "num_heads": [0], "mlp_ratio": [1.0]},
            "num_heads must hold positive integers, got [0]",
        ),
        (
            {"embed_dim": 8, "depth": 1, "num_heads": 2, "mlp_ratio": [1.0]},
            "num_heads must be a list with one entry per layer, got 2",
        ),
        (
            {"embed_dim": 8, "depth": 1, "num_heads": [1], "mlp_ratio": [-1.0]},
            "mlp_ratio must hold positive numbers, got [-1.0]",
        ),
    ],
)
def test_subnet_validation_messages(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SpaceError) as info:
        SubnetConfig(**kwargs)
    assert info.value.problems == [message]


@pytest.mark.parametrize(
    ("subnet", "message"),
    [
        (SubnetConfig(16, 1, (1,), (1.0,)), "embed_dim 16 is not a choice of this space (8, 12)"),
        (SubnetConfig(8, 3, (1,) * 3, (1.0,) * 3), "depth 3 is not a choice of this space (1, 2)"),
        (
            SubnetConfig(8, 2, (1, 3), (1.0, 1.0)),
            "num_heads[1] = 3 is not a choice of this space (1, 2)",
        ),
        (
            SubnetConfig(8, 1, (1,), (1.5,)),
            "mlp_ratio[0] = 1.5 is not a choice of this space (1, 2)",
        ),
    ],
)
def test_subnet_outside_space(subnet: SubnetConfig, message: str) -> None:
    space = _space()
    assert not space.contains(subnet)
    with pytest.raises(SpaceError) as info:
        space.validate(subnet)
    assert info.value.problems == [message]


def test_missing_field_is_named() -> None:
    data = _space().to_dict()
    del data["depth"], data["mlp_ratio"]
    message = r"invalid search space: missing field\(s\) depth, mlp_ratio"
    with pytest.raises(SpaceError, match=message):
        SearchSpace.from_dict(data)
    with pytest.raises(SpaceError, match=r"invalid subnet: missing field\(s\) depth"):
        SubnetConfig.from_dict({"embed_dim": 8, "num_heads": [1], "mlp_ratio": [1.0]})


def test_smallest_largest_sample() -> None:
    space = _space()
    assert space.smallest() == SubnetConfig(8, 1, (1,), (1.0,))
    assert space.largest() == SubnetConfig(12, 2, (2, 2), (2.0, 2.0))
    rng = random.Random(0)
    samples = {space.sample(rng) for _ in range(300)}
    assert all(space.contains(s) for s in samples)
    # 2 widths x (2x2 + 4x4) per-layer combos = 40 subnets; 300 draws should see nearly all.
    assert len(samples) >= 35


def test_choices_are_sorted_and_typed() -> None:
    space = _space(embed_dim=[12, 8], mlp_ratio=[2, 1])
    assert space.embed_dim == (8, 12)
    assert space.mlp_ratio == (1.0, 2.0)
    assert all(isinstance(r, float) for r in space.mlp_ratio)
    # Integers and floats name the same ratio, so a YAML "4" matches a choice of 4.0.
    assert space.contains(SubnetConfig(8, 1, [1], [2]))


def test_geometry() -> None:
    space = _space()
    assert space.num_patches == 4
    assert space.num_tokens == 5
    assert _space(pool="mean").num_tokens == 4
    assert space.max_qkv_dim == 8
    assert space.max_mlp_hidden_dim == 24


def test_yaml_round_trip(tmp_path: Path) -> None:
    space = _space(pool="mean", pos_embed="sinusoidal", name="demo")
    space.to_yaml(tmp_path / "space.yaml")
    again = SearchSpace.from_yaml(tmp_path / "space.yaml")
    assert again == space and again.name == "demo"
    subnet = SubnetConfig(12, 2, (1, 2), (2.0, 1.0))
    subnet.to_yaml(tmp_path / "subnet.yaml")
    assert SubnetConfig.from_yaml(tmp_path / "subnet.yaml") == subnet
    assert not list(tmp_path.glob(".*.tmp"))


def test_table_row_round_trip(tmp_path: Path) -> None:
    """A subnet as results-table columns: the lists are JSON text, and a row read back from a
    CSV (numbers parsed by pandas, other columns beside) gives the same subnet."""
    subnet = SubnetConfig(12, 2, (1, 2), (2.0, 1.5))
    row = subnet.to_row()
    assert row == {"embed_dim": 12, "depth": 2, "num_heads": "[1, 2]", "mlp_ratio": "[2.0, 1.5]"}
    pd.DataFrame([{"number": 3, **row, "val_acc": 0.5}]).to_csv(tmp_path / "t.csv", index=False)
    again = pd.read_csv(tmp_path / "t.csv").iloc[0]
    assert SubnetConfig.from_row(again) == subnet


def test_from_omegaconf() -> None:
    cfg = OmegaConf.create(_space().to_dict())
    assert SearchSpace.from_dict(OmegaConf.to_container(cfg)) == _space()  # type: ignore[arg-type]


def test_missing_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="search space file not found"):
        SearchSpace.from_yaml(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("embed_dim: [8\n")
    with pytest.raises(SpaceError, match="is not valid YAML"):
        SearchSpace.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(SpaceError, match="expected a mapping of fields, got list"):
        SearchSpace.from_yaml(tmp_path / "list.yaml")


def test_unknown_preset() -> None:
    with pytest.raises(SpaceError, match="no preset 'huge'; presets: autoformer_base"):
        SearchSpace.preset("huge")


def test_differences() -> None:
    assert _space().differences(_space(embed_dim=[8, 16], pool="mean")) == ["embed_dim", "pool"]
    assert _space(name="a").differences(_space(name="b")) == []


# -- presets ---------------------------------------------------------------------------------------
AUTOFORMER = {
    "autoformer_tiny": ((192, 216, 240), (3.5, 4.0), (3, 4), (12, 13, 14)),
    "autoformer_small": ((320, 384, 448), (3.0, 3.5, 4.0), (5, 6, 7), (12, 13, 14)),
    "autoformer_base": ((528, 576, 624), (3.0, 3.5, 4.0), (8, 9, 10), (14, 15, 16)),
}


@pytest.mark.parametrize("name", sorted(AUTOFORMER))
def test_autoformer_presets_match_paper(name: str) -> None:
    space = SearchSpace.preset(name)
    embed, mlp, heads, depth = AUTOFORMER[name]
    assert (space.embed_dim, space.mlp_ratio, space.num_heads, space.depth) == (
        embed,
        mlp,
        heads,
        depth,
    )
    assert (space.img_size, space.patch_size, space.head_dim, space.in_chans) == (224, 16, 64, 3)
    assert space.num_classes == 1000 and space.name == name


RELEASED = {"autoformer_tiny_rpe": "t", "autoformer_small_rpe": "s", "autoformer_base_rpe": "b"}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_configuration_presets(name: str) -> None:
    """The *_rpe presets are their AutoFormer preset with AutoFormer's released options (MLP ratio
    3.0 added to tiny) and hold the released subnet; the plain presets are unchanged."""
    space = SearchSpace.preset(name)
    plain = SearchSpace.preset(name.removesuffix("_rpe"))
    assert (space.pool, space.rel_pos, space.rel_pos_max_distance) == ("cls_mean", "autoformer", 14)
    assert space.norm_eps == 1e-5 and space.num_tokens == 197 and space.rel_pos_table_rows == 30
    expected = ["mlp_ratio"] if name == "autoformer_tiny_rpe" else []
    assert plain.differences(space) == [*expected, "pool", "rel_pos", "norm_eps"]
    assert (plain.pool, plain.rel_pos, plain.norm_eps) == ("cls", "none", 1e-6)
    released = SubnetConfig.from_yaml(
        PRESETS_DIR.parent / "subnets" / f"autoformer_{RELEASED[name]}.yaml"
    )
    assert space.contains(released)
    assert plain.contains(released) == (name != "autoformer_tiny_rpe")  # T uses MLP ratio 3.0


def test_new_options_default_to_what_files_meant_before() -> None:
    """A space written before the AutoFormer options existed reads as it did: CLS pooling kept,
    no relative positions, LayerNorm eps 1e-6; the options round-trip."""
    old = _space().to_dict()
    for key in ("rel_pos", "rel_pos_max_distance", "norm_eps"):
        del old[key]
    space = SearchSpace.from_dict(old)
    assert (space.rel_pos, space.norm_eps, space.num_tokens) == ("none", 1e-6, 5)
    assert space.rel_pos_table_rows == 0
    new = _space(pool="cls_mean", rel_pos="autoformer", rel_pos_max_distance=3, norm_eps=1e-5)
    assert SearchSpace.from_dict(new.to_dict()) == new
    assert new.num_tokens == 5 and new.rel_pos_table_rows == 8 and new.has_cls_token
    assert _space(pool="mean").num_tokens == 4 and not _space(pool="mean").has_cls_token


def test_every_preset_loads() -> None:
    names = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
    assert {"digits", "fashion_mnist", *AUTOFORMER} <= set(names)
    for name in names:
        assert SearchSpace.preset(name).name == name
    digits = SearchSpace.preset("digits")
    assert (digits.img_size, digits.in_chans, digits.num_classes) == (8, 1, 10)
    fashion = SearchSpace.preset("fashion_mnist")
    assert (fashion.img_size, fashion.in_chans, fashion.num_classes) == (28, 1, 10)
