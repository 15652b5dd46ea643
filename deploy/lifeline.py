"""Run a server so that it dies with the process that started it, however that one dies (SIGKILL, the
out-of-memory killer), with no help from it.

    python deploy/lifeline.py FD -- COMMAND...

Started by `deploy.launcher.spawn_tied` as the leader of a new process group, with FD the read end of a pipe
whose only write end the launcher holds. It leaves a watchdog in its process group, then becomes COMMAND
(exec: same pid, so the launcher's `Popen` is the server's). When the launcher dies, the kernel closes the
write end; the watchdog reads end-of-file and ends the whole group: the server and every process it started
in it (vLLM's engine cores), SIGTERM first, SIGKILL after `GRACE_SECONDS`. A parent-death signal
(PR_SET_PDEATHSIG) would reach the server alone, not the engine processes it spawns.

Standard library only: it runs before anything of the project is importable.
"""

from __future__ import annotations

import os
import signal
import sys
import time

#: How long the server and its engine processes get to exit on SIGTERM before the group is killed.
GRACE_SECONDS = 5.0


def group_alive(group: int, besides: int | None = None) -> bool:
    """Whether any process of `group` other than `besides` is still alive (zombies do not count)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == besides:
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            return True
    return False


def wait_group_gone(group: int, seconds: float, besides: int | None = None, poll: float = 0.1) -> bool:
    """Wait up to `seconds` until no process of `group` but `besides` is alive; whether none is."""
    deadline = time.monotonic() + seconds
    while group_alive(group, besides):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def watch(fd: int) -> None:
    """Wait for end-of-file on `fd`, then end this process group (this process included)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's own SIGTERM must not end the watch early
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except InterruptedError:
            continue
    group = os.getpgrp()
    os.killpg(group, signal.SIGTERM)
    wait_group_gone(group, GRACE_SECONDS, besides=os.getpid())
    os.killpg(group, signal.SIGKILL)


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: lifeline.py FD -- COMMAND...")
    fd, command = int(argv[0]), argv[2:]
    # Two forks: the watchdog is not the server's child, so the server never reaps or waits on it.
    child = os.fork()
    if child == 0:
        if os.fork() == 0:
            # Not the server's output pipe: a reader of it must see end-of-file when the server exits.
            devnull = os.open(os.devnull, os.O_RDWR)
            for stdio in (0, 1, 2):
                os.dup2(devnull, stdio)
            try:
                watch(fd)
            finally:
                os._exit(0)
        os._exit(0)
    os.waitpid(child, 0)
    os.close(fd)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
