"""One filesystem probe: the watcher's backend choice and ``doctor``'s advice read the same mount table the
same way, so they never disagree about a folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaalwatch import doctor, fsprobe
from kaalwatch.settings import Settings
from kaalwatch.watch.service import choose_backend

TYPES = ["ext4", "btrfs", "zfs", "tmpfs", "overlay", "fuse.mergerfs", "fuseblk", "nfs", "nfs4", "cifs", "smb3",
         "9p", "virtiofs", "ceph", "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.davfs2", "fuse.gvfsd-fuse",
         "webdav", "afpfs"]
MOUNTINFO = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n" + "".join(
    f"{40 + n} 22 0:{50 + n} / /mnt/m{n}\\040x rw,relatime - {kind} src{n} rw\n" for n, kind in enumerate(TYPES))


def test_the_probe_picks_the_longest_mount_point_and_reads_escaped_spaces() -> None:
    assert fsprobe.filesystem_type(Path("/home/kaal/orders"), MOUNTINFO) == "ext4"
    assert fsprobe.filesystem_type(Path("/mnt/m8 x/orders"), MOUNTINFO) == "nfs4"
    assert fsprobe.filesystem_type(Path("/mnt/m7 xy"), MOUNTINFO) == "ext4"  # a prefix is not a parent
    assert fsprobe.filesystem_type(Path("/x"), "garbage line\n") is None


@pytest.mark.parametrize(("n", "kind"), list(enumerate(TYPES)))
def test_doctor_and_watcher_agree_for_every_mount(settings: Settings, n: int, kind: str) -> None:
    path = Path(f"/mnt/m{n} x/Kaal")

    def probe(p: Path) -> str | None:
        return fsprobe.filesystem_type(p, MOUNTINFO)

    assert probe(path) == kind
    polls = choose_backend("auto", path, probe) == "polling"
    check = doctor.check_filesystem(settings, fstype=probe(path))
    assert check.warning == polls, (kind, check.render())
    assert polls == (kind not in ("ext4", "btrfs", "zfs", "tmpfs", "overlay", "fuse.mergerfs", "fuseblk"))
