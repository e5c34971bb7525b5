"""eco_rails.atomic: readers see the old complete file or folder or the new one, never a half-written one,
and what is written is readable by other users (0644 / 0755 under the usual umask)."""

from __future__ import annotations

import os
import stat

import pytest

from eco_rails.atomic import atomic_directory, write_bytes_atomic, write_text_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_text_is_written_and_replaces_the_old_file(tmp_path):
    path = tmp_path / "sub" / "report.json"
    write_text_atomic(path, "first")
    write_text_atomic(path, "zweite – ünïcode")
    assert path.read_text(encoding="utf-8") == "zweite – ünïcode"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"], "no temp file left next to it"


def test_files_are_0644_under_umask_022(tmp_path, umask_022):
    write_text_atomic(tmp_path / "a.txt", "x")
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert mode(tmp_path / "a.txt") == 0o644 and mode(tmp_path / "b.bin") == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "manifest.json"
    write_text_atomic(path, "old")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(path, "bad \ud800 surrogate")
    # the final rename fails: the target is a folder (the temporary file was already written)
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        write_text_atomic(tmp_path / "taken", "new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "taken"], "no temp file left behind"
    assert list((tmp_path / "taken").iterdir()) == []


def test_atomic_directory_replaces_a_folder_in_one_step(tmp_path, umask_022):
    target = tmp_path / "onnx" / "policy"
    with atomic_directory(target) as tmp:
        (tmp / "model.onnx").write_text("v1")
        assert not target.exists(), "nothing is visible until the block ends"
    with atomic_directory(target) as tmp:
        (tmp / "model.onnx").write_text("v2")
        (tmp / "manifest.json").write_text("{}")
        assert (target / "model.onnx").read_text() == "v1", "readers see the old folder meanwhile"
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "model.onnx"]
    assert (target / "model.onnx").read_text() == "v2"
    assert mode(target) == 0o755
    assert [p.name for p in target.parent.iterdir()] == ["policy"], "no temp or old folder left behind"


def test_atomic_directory_cleans_up_and_keeps_the_old_folder_on_an_exception(tmp_path):
    target = tmp_path / "policy"
    with atomic_directory(target) as tmp:
        (tmp / "model.onnx").write_text("good")
    with pytest.raises(RuntimeError, match="export failed"):
        with atomic_directory(target) as tmp:
            (tmp / "model.onnx").write_text("half")
            raise RuntimeError("export failed")
    assert (target / "model.onnx").read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["policy"], "the temporary folder is removed"
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(tmp_path / "fresh") as tmp:
            (tmp / "x").write_text("x")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["policy"], "an interrupted first write leaves nothing"
