"""A watchdog that ends a test server's process tree when the test process that started it dies.

Usage (``services.watch`` starts it): ``python -I -S service_watchdog.py PARENT_PID LEADER_PID``.

The servers the tests start (moto, redis, the GCS emulator, Airflow's api-server, scheduler, dag-processor
and celery workers) each lead their own process group. A graceful fixture teardown stops that group; a test
process killed outright (SIGKILL, a second Ctrl-C during teardown, a CI timeout, a crashed xdist worker)
never runs its teardown, and the servers kept running: one such Airflow cluster slowed the next `make test`
by minutes. This process waits (``pidfd_open``, no polling) for PARENT_PID to die and then ends the group
of LEADER_PID and every descendant of its processes: SIGTERM, and SIGKILL after ``GRACE`` seconds.

Why not ``prctl(PR_SET_PDEATHSIG)`` in the server: it reaches only the process it is set in, not the
workers Airflow's scheduler, api-server and celery fork; it fires when the *thread* that forked the server
ends, not the process; and setting it needs ``preexec_fn``, which Python documents as unsafe while other
threads run (Airflow's in-process tests leave some running). This file imports only the standard library
(it runs with ``-I -S``: ~10 ms to start) and ignores SIGINT and SIGHUP, which a terminal's Ctrl-C and
hang-up send to the test process's group (it runs in its own session all the same).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

GRACE = 3.0  # seconds between SIGTERM and SIGKILL once the parent is gone
EMPTY_CHECK = 1.0  # seconds between checks that the group still has a process (else the watchdog exits)


def _processes() -> dict[int, tuple[int, int, int]]:
    """Every live process: pid -> (parent pid, process group, start time in clock ticks), from /proc."""
    table: dict[int, tuple[int, int, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                text = stat.read()
        except OSError:
            continue  # ended meanwhile
        # The command name (field 2) is in parentheses and may itself hold spaces and ')'.
        fields = text[text.rindex(b")") + 2 :].split()
        if fields[0] != b"Z":  # a zombie has ended: only its parent's wait() is missing
            table[int(name)] = (int(fields[1]), int(fields[2]), int(fields[19]))
    return table


def tree(group: int | None, known: dict[int, int]) -> dict[int, int]:
    """``known`` (pid -> start time) still alive, plus group ``group``'s processes and every descendant of
    all of them: pid -> start time. Descendants count wherever they are: Airflow's task supervisor puts each
    task runner in a process group of its own (``setpgid``), BashOperator's command gets a session of its
    own, and a process whose parent ended is re-parented, out of reach of its old tree (hence ``known``)."""
    table = _processes()
    found = {pid: start for pid, start in known.items() if table.get(pid, (0, 0, -1))[2] == start}
    if group is not None:
        found.update({pid: start for pid, (_, pgid, start) in table.items() if pgid == group})
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found[child] = table[child][2]
                stack.append(child)
    return found


def signal_all(victims: dict[int, int], number: int) -> None:
    """Send signal ``number`` to every process of ``victims`` (pid -> start time) that still exists."""
    for pid in victims:
        try:
            os.kill(pid, number)
        except (ProcessLookupError, PermissionError):
            pass


def end_tree(group: int, grace: float = GRACE) -> None:
    """SIGTERM group ``group`` and its descendants, then SIGKILL whatever of them is left after ``grace`` s."""
    victims = tree(group, {})
    signal_all(victims, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while victims and time.monotonic() < deadline:
        time.sleep(0.05)
        victims = tree(group, victims)
    signal_all(victims, signal.SIGKILL)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch(parent: int, group: int) -> None:
    """Return when group ``group`` is empty; end it (``end_tree``) as soon as process ``parent`` dies.

    The watchdog is ``parent``'s child, so ``os.getppid()`` changing also says the parent died: that check
    covers the moment before ``pidfd_open`` and kernels without it.
    """
    try:
        parent_fd: int | None = os.pidfd_open(parent)
    except (OSError, AttributeError):
        parent_fd = None
    while os.getppid() == parent:
        if not _group_alive(group):
            return
        if parent_fd is None:
            time.sleep(0.2)
        elif select.select([parent_fd], [], [], EMPTY_CHECK)[0]:
            break
    end_tree(group)


def main(argv: list[str]) -> int:
    """``service_watchdog.py PARENT_PID LEADER_PID``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parent, leader = (int(value) for value in argv)
    watch(parent, leader)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
