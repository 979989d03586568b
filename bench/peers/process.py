"""A server as a process tree: started in its own session, measured (RSS of every process in it), always stopped
whole, with its ports checked free afterwards. Linux ``/proc`` only."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free right now (all held open until every one is picked)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (index 0 = state, 1 = ppid, 19 = start time)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(root: int) -> dict[int, str]:
    """``root`` and every process below it (by parent links), as pid -> start time (which tells a reused pid)."""
    parents: dict[int, int] = {}
    starts: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None and fields[0] != "Z":
            parents[int(entry)], starts[int(entry)] = int(fields[1]), fields[19]
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return {pid: starts[pid] for pid in tree if pid in starts}


def rss_bytes(pids: dict[int, str]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total


class Tree:
    """A started server's process tree. Every process ever seen in it is remembered, so one that left the tree
    (re-parented when its parent exited, or in a session of its own) is still stopped with the rest."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started = time.monotonic()
        fields = _stat(self.proc.pid)
        self.seen: dict[int, str] = {self.proc.pid: fields[19] if fields else ""}
        self._peak = 0
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    def current(self) -> dict[int, str]:
        pids = descendants(self.proc.pid)
        self.seen.update(pids)
        return pids

    def rss(self) -> tuple[int, int]:
        """RSS of the whole tree now, in bytes, and the number of processes in it."""
        pids = self.current()
        return rss_bytes(pids), len(pids)

    def start_sampling(self, every_s: float = 1.0) -> None:
        """Track the tree's peak RSS in a thread until ``peak()`` (about 15 ms of CPU per sample)."""
        self._peak, self._sampling = 0, threading.Event()

        def sample() -> None:
            while not self._sampling.wait(every_s):
                self._peak = max(self._peak, self.rss()[0])

        self._sampler = threading.Thread(target=sample, daemon=True)
        self._sampler.start()

    def peak(self) -> int:
        self._sampling.set()
        if self._sampler is not None:
            self._sampler.join()
        return max(self._peak, self.rss()[0])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: float = 15.0) -> list[int]:
        """SIGTERM to the session and every process seen, SIGKILL to what is left after ``grace_s``; returns the
        pids that survived even that (none, normally)."""
        self._sampling.set()
        if self.alive():
            self.current()
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self._remaining() and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.1)
        if self._remaining():
            self._signal(signal.SIGKILL)
            deadline = time.monotonic() + 5
            while self._remaining() and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.1)
        self._reap()
        return self._remaining()

    def _reap(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=0)

    def _remaining(self) -> list[int]:
        left = []
        for pid, start in self.seen.items():
            fields = _stat(pid)
            if fields is not None and fields[0] != "Z" and (not start or fields[19] == start):
                left.append(pid)
        if self.proc.poll() is None and self.proc.pid not in left:
            left.append(self.proc.pid)
        return left

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)
        for pid in self._remaining():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
