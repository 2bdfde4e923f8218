from __future__ import annotations

import dataclasses
import os
import pickle
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from supernet import CheckpointError, SearchSpace, Supernet, UserError, load_subnet, save_subnet
from supernet.checkpoint import load_checkpoint, load_supernet, save_checkpoint
from supernet.common.atomic import atomic_write, remove_stale_staging, staging_dir
from supernet.common.errors import OutputError, first_sentence
from supernet.common.torchfile import damaged_torch_file


def test_round_trip(tiny_space: SearchSpace, tmp_path: Path) -> None:
    net = Supernet(tiny_space)
    path = tmp_path / "run" / "supernet.pt"
    save_checkpoint(path, net, epoch=3)
    again, payload = load_supernet(path, space=tiny_space)
    assert payload["epoch"] == 3 and again.space == tiny_space
    for (k, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert [p.name for p in path.parent.iterdir()] == ["supernet.pt"]  # no temp files left
    assert load_supernet(path.parent)[1]["epoch"] == 3  # a run directory works too


def test_missing(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nope.pt \(train one with"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match=r"is a directory without a supernet\.pt"):
        load_checkpoint(tmp_path)


def test_truncated(tiny_space: SearchSpace, tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    save_checkpoint(path, Supernet(tiny_space))
    assert not damaged_torch_file(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="the file is truncated or corrupt"):
        load_supernet(path)
    assert damaged_torch_file(path)
    path.write_bytes(data[:100])  # torch's text goes on with advice; the message keeps its start
    with pytest.raises(CheckpointError) as info:
        load_supernet(path)
    assert (
        "the file is truncated or corrupt (the end of the archive, its directory, is missing); "
        "use a checkpoint"
    ) in str(info.value)
    assert damaged_torch_file(path)
    path.write_bytes(data[:1])  # the first byte of the zip signature: not 'a text file'
    with pytest.raises(CheckpointError, match=r"truncated or corrupt \(only 1 byte\(s\)\)"):
        load_supernet(path)
    path.write_bytes(b"")  # what a full disk can leave
    with pytest.raises(CheckpointError, match=r"the file is empty \(a write that failed"):
        load_supernet(path)
    assert damaged_torch_file(path)
    for where in (100, len(data) // 2):  # a flipped byte in the pickle, in a tensor
        corrupt = bytearray(data)
        corrupt[where] ^= 0xFF
        path.write_bytes(bytes(corrupt))
        assert damaged_torch_file(path)
        # torch itself would read the tensor's silently, and the pickle's as an 'unsupported
        # operand' (which is not an attempt to run code)
        with pytest.raises(CheckpointError, match=r"truncated or corrupt \(the CRC check of its "):
            load_supernet(path)
    path.write_text("epoch,loss\n")  # another kind of file is not a damaged checkpoint
    assert not damaged_torch_file(path)


def test_files_of_other_kinds(tiny_space: SearchSpace, tmp_path: Path) -> None:
    net = Supernet(tiny_space)
    weights = tmp_path / "weights.pt"  # an export's model.safetensors, renamed
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, weights)
    with pytest.raises(CheckpointError, match=r"weights\.pt is a safetensors file"):
        load_supernet(weights)
    archive = tmp_path / "plain.pt"  # a whole zip that torch did not write
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(CheckpointError) as info:
        load_supernet(archive)
    assert "(file in archive is not in a subdirectory: hello.txt)" in str(info.value)
    garbage = tmp_path / "garbage.pt"  # a pickle's start, then garbage: corrupt, not 'could run'
    garbage.write_bytes(b"\x80\x02" + bytes(range(40, 140)))
    with pytest.raises(
        CheckpointError, match=r"corrupt or not written by torch\.save \(Unsupported operand 42\)"
    ):
        load_supernet(garbage)
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    for special in (fifo, Path("/dev/null")):  # the FIFO blocked the read for ever
        with pytest.raises(CheckpointError, match=r"is not a regular file \(a pipe, a device"):
            load_supernet(special)


def test_altered_weights_name_the_first_mismatch(tiny_space: SearchSpace, tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    save_checkpoint(path, Supernet(tiny_space))
    payload = torch.load(path, weights_only=True)
    payload["model"]["cls_token"] = torch.zeros(1, 1, 3)
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        load_supernet(path)
    assert f"{path}: weights do not match its search space (size mismatch for cls_token: " in str(
        info.value
    )
    assert "Error(s) in loading state_dict" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "PytorchStreamReader failed reading zip archive: failed finding central directory. "
            "This is an internal miniz error. If you are seeing this error",
            "PytorchStreamReader failed reading zip archive: failed finding central directory",
        ),
        ("\n  Error(s) in loading state_dict:\n\tmore", "Error(s) in loading state_dict:"),
        ("version 1.2.3 is too old", "version 1.2.3 is too old"),
        ("x" * 300, "x" * 199 + "…"),
        (
            "[enforce fail at inline_container.cc:180] . file in archive is not in a subdirectory",
            "file in archive is not in a subdirectory",
        ),
        ("", ""),
    ],
)
def test_first_sentence(text: str, expected: str) -> None:
    assert first_sentence(text) == expected


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_crafted_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        torch.save({"format": "vitnas-supernet", "model": Evil()}, f)
    with pytest.raises(CheckpointError, match=r"refusing to load .*could run code"):
        load_checkpoint(path)
    assert not marker.exists()

    # torch words a blocked module's function otherwise ('unsupported GLOBAL posix.system
    # whose module posix is blocked'): still code, not a corrupt file
    class System:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    with path.open("wb") as f:
        torch.save({"format": "vitnas-supernet", "model": System()}, f)
    with pytest.raises(CheckpointError, match=r"refusing to load .*could run code"):
        load_checkpoint(path)
    assert not marker.exists()
    # A raw pickle (not a torch zip) is refused as well, with one line (torch's warning about
    # its protocol is not printed).
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Evil()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError, match=r"corrupt or not written by torch\.save"):
            load_checkpoint(raw)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="is not a supernet checkpoint of this tool"):
        load_checkpoint(path)


def test_space_mismatch_names_the_fields(tiny_space: SearchSpace, tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    save_checkpoint(path, Supernet(tiny_space))
    other = dataclasses.replace(tiny_space, embed_dim=(8, 16), num_classes=7)
    with pytest.raises(CheckpointError) as info:
        load_supernet(path, space=other)
    message = str(info.value)
    assert "was trained for another search space" in message
    assert "embed_dim: checkpoint (8, 12), requested (8, 16)" in message
    assert "num_classes: checkpoint 5, requested 7" in message


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def fail(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_saved_subnet_errors(tiny_space: SearchSpace, tmp_path: Path) -> None:
    net = Supernet(tiny_space)
    model = net.extract(tiny_space.largest())
    out = save_subnet(model, tiny_space, tmp_path / "export")
    with pytest.raises(UserError, match="is not empty; choose another or pass overwrite=True"):
        save_subnet(model, tiny_space, out)
    small = net.extract(tiny_space.smallest())
    save_subnet(small, tiny_space, out, overwrite=True)
    assert load_subnet(out).subnet == tiny_space.smallest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_subnet(out)
    with pytest.raises(CheckpointError, match="not an exported subnet"):
        load_subnet(tmp_path / "missing")


def test_atomic_write_gives_a_normal_file_mode(tiny_space: SearchSpace, tmp_path: Path) -> None:
    import os

    path = tmp_path / "supernet.pt"
    save_checkpoint(path, Supernet(tiny_space))
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_expected_format(tiny_space: SearchSpace, tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    save_checkpoint(path, Supernet(tiny_space))
    with pytest.raises(CheckpointError, match="is not a 'other-format' checkpoint of this tool"):
        load_checkpoint(path, expected_format="other-format")


def test_a_full_disk_is_one_output_error_naming_the_file(
    tiny_space: SearchSpace, small_disk: Callable[[str], Path]
) -> None:
    """On a real full disk torch.save raises RuntimeError ("unexpected pos …") and safetensors
    SafetensorError, not OSError: each must still be one OutputError naming the file, with no
    temporary file left and the previous file whole."""
    disk = small_disk("400k")
    path = disk / "supernet.pt"
    small = Supernet(tiny_space)
    save_checkpoint(path, small)
    before = path.read_bytes()
    big = Supernet(SearchSpace.preset("digits"))  # ~0.8 MB of weights: does not fit
    with pytest.raises(OutputError, match=r"cannot write .*supernet\.pt: no space left"):
        save_checkpoint(path, big)
    assert path.read_bytes() == before and load_checkpoint(path)["space"]
    assert [p.name for p in disk.iterdir()] == ["supernet.pt"]

    model = big.extract(big.space.largest())
    with pytest.raises(OutputError, match=r"cannot write .*export/model\.safetensors: no space"):
        save_subnet(model, big.space, disk / "export")
    assert sorted(p.name for p in disk.iterdir()) == ["supernet.pt"]  # no staging directory


def test_a_failing_write_that_is_a_bug_stays_a_bug(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"old")

    def bug(tmp: str) -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        atomic_write(path, bug)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_stale_staging_is_tidied(tiny_space: SearchSpace, tmp_path: Path) -> None:
    """A directory write killed half-way leaves a hidden staging directory, or (between the two
    renames) only the previous version's .old copy: the next write of that target tidies both."""
    net = Supernet(tiny_space).eval()
    model = net.extract(tiny_space.largest())
    target = tmp_path / "export"
    save_subnet(model, tiny_space, target)
    staged = staging_dir(target)  # as if a second save were killed while writing
    (staged / "partial").write_text("x")
    other = tmp_path / ".export-other.abcdefgh"  # not this target's: kept
    other.mkdir()
    for name in (".export.backup01", ".export.old"):  # a user's own, named like the target: kept
        (tmp_path / name).mkdir()
        (tmp_path / name / "mine.txt").write_text("mine")
    save_subnet(model, tiny_space, target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".export-other.abcdefgh",
        ".export.backup01",
        ".export.old",
        "export",
    ]

    target.rename(tmp_path / ".export.vitnas-old")  # killed between move_into_place's renames
    assert remove_stale_staging(target) == []
    assert not (tmp_path / ".export.vitnas-old").exists()
    torch.testing.assert_close(load_subnet(target).state_dict(), model.state_dict())


@pytest.mark.parametrize(
    "text",
    [
        "hello world\n",
        "epoch,train_loss\n1,0.5\n",
        "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n",
        "<html><body>404</body></html>",
        "e",
        "test",
        "bad gateway",
    ],
)
def test_a_text_file_given_as_checkpoint_is_named_a_text_file(tmp_path: Path, text: str) -> None:
    """torch's weights-only unpickler raises IndexError or KeyError on some texts; the loader
    says what the file is instead, in one line."""
    path = tmp_path / "supernet.pt"
    path.write_text(text)
    with pytest.raises(CheckpointError, match=r"is a text file \(it starts .*use a checkpoint"):
        load_checkpoint(path)


def test_garbage_after_a_pickle_protocol_byte_is_one_checkpoint_error(tmp_path: Path) -> None:
    import random

    rng = random.Random(0)
    path = tmp_path / "supernet.pt"
    for _ in range(200):
        path.write_bytes(b"\x80" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))))
        with pytest.raises(CheckpointError, match=r"cannot read checkpoint|refusing to load"):
            load_checkpoint(path)
