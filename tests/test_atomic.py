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
