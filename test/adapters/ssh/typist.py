#!/usr/bin/python3
# A person at a terminal, for the SSH tests: runs a program (e.g. `ssh -tt …`) on a real pty, waits
# for each expected text on the screen and then types the keys that follow it, then presses the quit
# key every QUIT_EVERY seconds until the program exits. Prints one JSON object: the exit code, the
# screen transcript, and the steps whose text never appeared.
#   typist.py '{"argv": [...], "steps": [{"expect": "TEXT", "send": "KEYS"}], "quit": "q", "timeout": 30}'
import json
import os
import pty
import select
import sys
import time

QUIT_EVERY = 0.3

spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(spec["argv"][0], spec["argv"])

deadline = time.monotonic() + spec.get("timeout", 30)
transcript = b""
missed = []
eof = False


def read(wait):
    """Bytes from the terminal, b"" at EOF, None when nothing came within `wait` seconds."""
    r, _, _ = select.select([fd], [], [], max(0.0, wait))
    if not r:
        return None
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the program closed the terminal
        return b""


def type_keys(keys):
    try:
        os.write(fd, keys.encode())
    except OSError:
        pass


for step in spec.get("steps", []):
    seen = b""
    want = step["expect"].encode()
    while not eof and want not in seen and time.monotonic() < deadline:
        d = read(deadline - time.monotonic())
        if d is None:
            continue
        if d == b"":
            eof = True
            break
        seen += d
        transcript += d
    if want not in seen:
        missed.append(step["expect"])
        break
    type_keys(step["send"])

while not eof and time.monotonic() < deadline:
    d = read(QUIT_EVERY)
    if d is None:
        type_keys(spec.get("quit", "q"))
    elif d == b"":
        eof = True
    else:
        transcript += d

if not eof:
    os.kill(pid, 9)
_, status = os.waitpid(pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "transcript": transcript.decode("utf-8", "replace"), "missed": missed, "timed_out": not eof}))
