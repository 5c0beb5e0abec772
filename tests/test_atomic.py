"""Atomic writes (rlgen.atomic)."""


def test_atomic_writes_leave_the_modes_a_plain_write_would(tmp_path):
    import os
    import stat

    from rlgen.atomic import atomic_dir, atomic_write_text

    before = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644  # not mkstemp's private 0600
        (tmp_path / "a.txt").chmod(0o640)
        atomic_write_text(tmp_path / "a.txt", "y")  # a replaced file keeps its mode
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
        atomic_dir(tmp_path / "d", lambda folder: (folder / "f").write_text("z"))
        assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755  # not mkdtemp's 0700
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600  # the user's umask decides
    finally:
        os.umask(before)


def test_atomic_writes_name_the_path_in_the_way(tmp_path):
    import errno

    import pytest

    from rlgen.atomic import atomic_write_text

    (tmp_path / "file").write_text("keep")
    with pytest.raises(NotADirectoryError) as info:  # mkdir's FileExistsError named the folder, not the file
        atomic_write_text(tmp_path / "file" / "sub" / "a.txt", "x")
    assert info.value.errno == errno.ENOTDIR and info.value.filename == str(tmp_path / "file")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "inside").write_text("keep")
    with pytest.raises(IsADirectoryError) as info:  # os.replace's error named the temporary file
        atomic_write_text(tmp_path / "folder", "x")
    assert info.value.filename == str(tmp_path / "folder")
    assert (tmp_path / "file").read_text() == "keep" and (tmp_path / "folder" / "inside").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]  # no temporary file left
