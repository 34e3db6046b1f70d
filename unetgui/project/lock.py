"""The ``.lock`` file of an open project: who has it open, and whether that process is still there.

The lock records the host, the pid, and, where the system tells them (Linux), the boot id and the
process's start time. A pid alone is not enough: after a crash and a reboot the same pid (pid 1, say)
belongs to another process, and the project would look open forever. A lock whose boot id or start time
differs from the live process with that pid was left by a crash. Where neither can be read (macOS,
Windows), a live pid counts as open, and the app offers "open anyway".

A lock from another machine (a project on a network drive) cannot be checked: it is reported as "open on
HOST", never as a crash. A lock that is not valid JSON, or whose pid is not a number, was cut short by a
crash (or written by hand): it counts as a crash, never as a traceback.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass

from unetgui.core import atomic

NONE, OURS, RUNNING, CRASHED, OTHER_HOST = "none", "ours", "running", "crashed", "other host"


@dataclass(frozen=True)
class LockOwner:
    state: str  # one of NONE, OURS, RUNNING, CRASHED, OTHER_HOST
    pid: int = 0
    host: str = ""


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read(200).strip()
    except (OSError, UnicodeDecodeError):
        return None


def boot_id() -> str:
    """This boot of this machine (Linux), else ''."""
    return _read("/proc/sys/kernel/random/boot_id") or ""


def process_start(pid: int) -> str:
    """When process ``pid`` started, in clock ticks since boot (Linux), else ''."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
        return fields[19]  # field 22 of proc(5), counted after the name and the state
    except (OSError, IndexError, ValueError):
        return ""


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (never signals it: os.kill kills on Windows)."""
    if pid <= 0:
        return False
    if os.name == "nt":
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return False
    return True


def _this_process() -> bytes:
    pid = os.getpid()
    return json.dumps({"pid": pid, "host": socket.gethostname(), "boot": boot_id(), "start": process_start(pid)}).encode()


def write(path: str) -> None:
    atomic.write_bytes(path, _this_process())


def acquire(path: str) -> bool:
    """Take the lock only if nobody holds it (exclusive create): False when a lock is there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(_this_process())
    return True


def release(path: str) -> None:
    """Remove the lock if this process holds it (never another's)."""
    if owner(path).state == OURS:
        os.remove(path)


def owner(path: str) -> LockOwner:
    """Who holds the lock at ``path`` (see the module docstring)."""
    if not os.path.exists(path):
        return LockOwner(NONE)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        pid, host = int(data.get("pid", 0)), str(data.get("host", ""))
        boot, start = str(data.get("boot") or ""), str(data.get("start") or "")
    except (OSError, ValueError, TypeError, AttributeError, OverflowError, RecursionError):  # torn, hand-written
        return LockOwner(CRASHED)
    if not 0 < pid < 2**31:
        return LockOwner(CRASHED)
    if host != socket.gethostname():
        return LockOwner(OTHER_HOST, pid, host)
    same = (not boot or boot == boot_id()) and (not start or start == process_start(pid))
    if pid == os.getpid():  # this process, unless the pid is reused (a container's pid 1 after a restart)
        return LockOwner(OURS if same else CRASHED, pid, host)
    return LockOwner(RUNNING if same and process_alive(pid) else CRASHED, pid, host)
