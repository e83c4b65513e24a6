"""Which filesystem a path lives on, and whether it is a network one (where inotify misses other
machines' changes, so the watcher polls and ``doctor`` says so). One probe and one list, used by both."""

from __future__ import annotations

from pathlib import Path

#: Filesystem types whose changes can come from another machine: inotify/FSEvents do not see those.
#: FUSE types are listed one by one: a local FUSE filesystem (mergerfs, bindfs) is watched natively.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "afpfs", "9p", "afs", "ceph", "glusterfs", "lustre",
    "gpfs", "virtiofs", "webdav", "davfs", "sshfs", "fuse.sshfs", "fuse.glusterfs", "fuse.davfs", "fuse.davfs2",
    "fuse.rclone", "fuse.s3fs", "fuse.gvfsd-fuse", "fuse.smbnetfs", "fuse.curlftpfs",
})

MOUNTINFO = Path("/proc/self/mountinfo")


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the mount holding ``path`` (Linux ``/proc/self/mountinfo``: the longest mount point that
    is ``path`` or a parent of it), else None (another system, or no ``/proc``)."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    target = str(path.resolve())
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mount_point = fields[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), right.split()[0])
    return best[1] if best else None


def is_network(fstype: str | None) -> bool:
    """True for a filesystem type another machine can change (an unknown type counts as local)."""
    return fstype in NETWORK_FILESYSTEMS
