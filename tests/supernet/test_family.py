"""The family seam: the registry, dispatch on ``family:``, and what every family must supply."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from supernet import (
    Family,
    SearchSpace,
    Space,
    SpaceError,
    Subnet,
    SubnetConfig,
    Supernet,
    complexity,
    family_names,
    family_of,
    get_family,
    load_subnet,
    register_family,
    save_subnet,
)
from supernet.checkpoint import load_supernet, save_checkpoint
from supernet.swin import SwinSpace, SwinSubnet
from supernet.vit.supernet import VitSupernet

PRESETS = {"vit": "digits", "swin": "swin_digits"}


def test_builtin_families_are_registered() -> None:
    assert {"vit", "swin"} <= set(family_names())
    assert get_family("vit").space_cls is SearchSpace
    assert get_family("swin").subnet_cls is SwinSubnet
    with pytest.raises(KeyError, match="unknown model family 'cnn'; the families are"):
        get_family("cnn")


def test_a_family_registers_once() -> None:
    vit = get_family("vit")
    assert register_family(vit) is vit  # the same registration again is harmless
    other = dataclasses.replace(vit, model="somewhere:Else")
    with pytest.raises(ValueError, match="a different model family named 'vit'"):
        register_family(other)


def test_spaces_dispatch_on_family(tmp_path: Path) -> None:
    swin = SearchSpace.preset("swin_digits")
    assert isinstance(swin, SwinSpace) and swin.family == "swin"
    assert isinstance(Space.from_dict(swin.to_dict()), SwinSpace)
    vit = SearchSpace.preset("digits")
    data = vit.to_dict()
    assert data["family"] == "vit"
    del data["family"]  # a file written before families: read as a ViT space
    assert Space.from_dict(data) == vit and SearchSpace.from_dict(data) == vit
    path = tmp_path / "space.yaml"
    swin.to_yaml(path)
    assert SearchSpace.from_yaml(path) == swin
    with pytest.raises(SpaceError, match="unknown model family 'cnn'"):
        Space.from_dict({**data, "family": "cnn"})
    assert vit.differences(swin) == ["family"]


def test_subnets_dispatch_and_refuse_another_family() -> None:
    vit, swin = SearchSpace.preset("digits"), SearchSpace.preset("swin_digits")
    v, s = vit.largest(), swin.largest()
    assert Subnet.from_dict(s.to_dict()) == s and Subnet.from_dict(v.to_dict()) == v
    assert SubnetConfig.from_dict({k: x for k, x in v.to_dict().items() if k != "family"}) == v
    assert swin.subnet_from_dict({k: x for k, x in s.to_dict().items() if k != "family"}) == s
    with pytest.raises(SpaceError, match="a vit subnet was given to a swin search space"):
        swin.subnet_from_dict(v.to_dict())
    with pytest.raises(SpaceError, match="a swin subnet was given to a vit search space"):
        vit.validate(s)
    assert not vit.contains(s) and not swin.contains(v)


@pytest.mark.parametrize("family", sorted(PRESETS))
def test_every_family_supplies_every_part(family: str, tmp_path: Path) -> None:
    """The contract of a family, checked the same way for each: round trips, the supernet and
    its extraction, the cost model, the Optuna codec, evolution and latency features."""
    space = SearchSpace.preset(PRESETS[family])
    fam = family_of(space)
    assert isinstance(fam, Family) and fam.name == family == space.family
    rng = random.Random(0)
    subnets = [space.smallest(), space.middle(), space.largest()]
    subnets += [space.sample(rng) for _ in range(5)]
    net = Supernet(space).eval()
    assert isinstance(net, Supernet) and isinstance(net, fam.supernet_cls)
    x = torch.randn(2, space.in_chans, space.img_size, space.img_size)
    for subnet in subnets:
        assert space.validate(subnet) is subnet
        assert Subnet.from_dict(subnet.to_dict()) == subnet
        row = subnet.to_row()
        assert tuple(row) == type(subnet).row_columns
        lists = {k for k, v in row.items() if isinstance(v, str)}
        assert lists == set(type(subnet).row_json_columns)
        assert all(isinstance(row[k], int) for k in row.keys() - lists)
        assert space.subnet_from_row(row) == subnet
        assert fam.from_params(fam.to_params(subnet)) == subnet
        assert fam.suggest(optuna.trial.FixedTrial(fam.to_params(subnet)), space) == subnet
        model = net.extract(subnet)
        with torch.inference_mode():
            assert torch.allclose(model(x), net(x, subnet), atol=1e-5)
        assert complexity.params(space, subnet) == sum(p.numel() for p in model.parameters())
        assert complexity.flops(space, subnet) == complexity.count_flops(model, space)
        features = fam.latency_features(space, subnet, 2)
        assert list(features) == list(fam.latency_feature_names)
        child = fam.mutate(space, subnet, rng, mutation_prob=0.5, resample_prob=0.5)
        assert space.contains(child)
        if fam.compatible(subnet, subnets[-1]):
            assert space.contains(fam.crossover(space, subnet, subnets[-1], rng))
    assert fam.from_params({}) is None
    sample = fam.designed_sample(space, 6, rng)
    assert len(set(sample)) == 6 and all(space.contains(s) for s in sample)

    # Checkpoints and exports record the family and load as it.
    save_checkpoint(tmp_path / "supernet.pt", net, data={"name": "digits"})
    again, payload = load_supernet(tmp_path / "supernet.pt")
    assert payload["space"]["family"] == family and type(again) is type(net)
    model = net.extract(space.largest())
    save_subnet(model, space, tmp_path / "export")
    loaded = load_subnet(tmp_path / "export")
    assert type(loaded) is type(model)
    saved = yaml.safe_load((tmp_path / "export" / "subnet.yaml").read_text())
    assert saved["space"]["family"] == saved["subnet"]["family"] == family


def test_files_without_family_load_as_vit(tmp_path: Path) -> None:
    """Checkpoints and exports written before families existed (no ``family`` keys)."""
    space = SearchSpace.preset("digits")
    net = Supernet(space)
    save_checkpoint(tmp_path / "supernet.pt", net, data={"name": "digits"})
    payload = torch.load(tmp_path / "supernet.pt", weights_only=True)
    del payload["space"]["family"]
    torch.save(payload, tmp_path / "old.pt")
    again, _ = load_supernet(tmp_path / "old.pt")
    assert isinstance(again, VitSupernet) and again.space == space

    save_subnet(net.extract(space.smallest()), space, tmp_path / "export")
    config = tmp_path / "export" / "subnet.yaml"
    data = yaml.safe_load(config.read_text())
    del data["space"]["family"], data["subnet"]["family"]
    config.write_text(yaml.safe_dump(data))
    assert type(load_subnet(tmp_path / "export")).__name__ == "VisionTransformer"


def test_supernet_needs_a_space() -> None:
    with pytest.raises(TypeError, match="expected a SearchSpace"):
        Supernet({"family": "vit"})  # type: ignore[arg-type]
