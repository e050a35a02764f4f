"""Runs ``program.py`` from the current directory under guards; executed *as a script*
in a child interpreter by :mod:`hsd_bench.tasks.scoring.code_exec`, never imported.

What it does before running the program (stdlib only, so the child imports
nothing from hsd-bench):

* resource limits, soft = hard: CPU seconds, address space, file size, open
  files, no core dumps;
* a ``sys.addaudithook`` hook (hooks cannot be removed from Python code) that
  raises ``PermissionError`` for: opening a file for writing, or creating,
  renaming, removing or changing the metadata of a path, outside the working
  directory (a fresh temp dir; ``/dev/null`` is allowed); starting or
  signalling processes; network connections and name lookups; ``ctypes``;
  changing resource limits;
* ``_posixsubprocess.fork_exec`` replaced, since calling it directly is the
  one process-spawning path that raises no audit event.

On success it writes the nonce it was given (environment variable
``HSD_EXEC_NONCE``, removed before the program runs) to ``result.json``, so a
program that exits early with status 0 is not counted as passing. This is a
guard against accidents in model-written code, not a sandbox against a
determined attacker: see docs/datasets.md.
"""

import builtins
import json
import os
import resource
import sys
import traceback

ROOT = os.path.realpath(os.getcwd())
ALLOWED_FILES = {"/dev/null"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
# Events that create, move, remove or modify a path: (event, indices of path args, index of dir_fd or None)
PATH_EVENTS = {
    "os.remove": ((0,), 1),
    "os.rmdir": ((0,), 1),
    "os.mkdir": ((0,), 2),
    "os.rename": ((0, 1), 2),
    "os.link": ((0, 1), 2),
    "os.symlink": ((1,), 2),
    "os.chmod": ((0,), 2),
    "os.chown": ((0,), 3),
    "os.chflags": ((0,), None),
    "os.lchflags": ((0,), None),
    "os.lchmod": ((0,), None),
    "os.truncate": ((0,), None),
    "os.utime": ((0,), 3),
    "os.setxattr": ((0,), None),
    "os.removexattr": ((0,), None),
    "shutil.rmtree": ((0,), 1),
    "shutil.chown": ((0,), None),
}
DENIED_EVENTS = {
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "os.startfile", "os.kill", "os.killpg", "signal.pthread_kill", "pty.spawn",
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr", "socket.gethostname", "socket.sethostname",
    "resource.setrlimit", "resource.prlimit", "os.chroot", "os.setuid", "os.setgid",
}
blocked = []


def _resolve(path, dir_fd=None):
    if isinstance(path, int):  # an already-open descriptor: its opening was checked
        return None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    path = os.fspath(path)
    if dir_fd is not None and not os.path.isabs(path):
        try:
            base = os.readlink(f"/proc/self/fd/{dir_fd}")
        except OSError:
            return "<unresolvable dir_fd path>"
        path = os.path.join(base, path)
    return os.path.realpath(path)


def _outside(path, dir_fd=None):
    resolved = _resolve(path, dir_fd)
    if resolved is None or resolved in ALLOWED_FILES:
        return False
    return not (resolved == ROOT or resolved.startswith(ROOT + os.sep))


def _deny(event, detail):
    blocked.append(f"{event}: {detail}")
    raise PermissionError(f"blocked by the hsd-bench execution guard: {event} {detail}")


def audit(event, args):
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS
        )
        if writes and path is not None and _outside(path):
            _deny(event, repr(path))
    elif event in PATH_EVENTS:
        indices, fd_index = PATH_EVENTS[event]
        dir_fd = args[fd_index] if fd_index is not None and fd_index < len(args) else None
        for i in indices:
            if i < len(args) and args[i] is not None and _outside(args[i], dir_fd if isinstance(dir_fd, int) else None):
                _deny(event, repr(args[i]))
    elif event == "sqlite3.connect":
        if args and str(args[0]) != ":memory:" and _outside(args[0]):
            _deny(event, repr(args[0]))
    elif event in DENIED_EVENTS or event.startswith("ctypes."):
        _deny(event, "")


def _limit(which, value):
    resource.setrlimit(which, (value, value))


def main():
    nonce = os.environ.pop("HSD_EXEC_NONCE", "")
    limits = json.loads(os.environ.pop("HSD_EXEC_LIMITS", "{}"))
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_CPU, int(limits.get("cpu_s", 10)))
    _limit(resource.RLIMIT_FSIZE, int(limits.get("file_bytes", 16 << 20)))
    _limit(resource.RLIMIT_NOFILE, int(limits.get("open_files", 256)))
    if limits.get("memory_bytes"):
        _limit(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    with open(os.path.join(ROOT, "program.py"), encoding="utf-8") as f:
        source = f.read()
    import _posixsubprocess

    def no_fork_exec(*args, **kwargs):
        _deny("_posixsubprocess.fork_exec", "")

    _posixsubprocess.fork_exec = no_fork_exec
    sys.addaudithook(audit)
    status = "passed"
    try:
        exec(compile(source, "program.py", "exec"), {"__name__": "__hsd_program__", "__builtins__": builtins})
    except SystemExit as err:
        status = f"failed: program called exit({err.code!r})"
    except BaseException:  # noqa: BLE001 -- any exception in the program is a failed test
        status = "failed"
        traceback.print_exc()
    with open(os.path.join(ROOT, "result.json"), "w", encoding="utf-8") as f:  # absolute: the program may chdir
        json.dump({"nonce": nonce, "status": status, "blocked": blocked}, f)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: atexit handlers belong to the program


if __name__ == "__main__":
    main()
