#!/usr/bin/env python3
"""Where kilnd's CPU goes, from a `perf record --call-graph dwarf` file.

usage: perf_breakdown.py PERF_DATA

Works for CPU samples (perf record -F ...) and for event samples, e.g.
`perf record -e syscalls:sys_enter_clock_nanosleep` (every sleep of a kilnd
thread: under sqlite3InvokeBusyHandler it is SQLite waiting for the write
lock).

Prints (1) the share of samples spent under each of kilnd's top-level
operations (create handler, claim, finish, advance, I/O loop, ...), each
sample counted once, and (2) the inclusive share of a list of interesting
functions (SQLite commit, WAL write, checkpoint, system calls, JSON).
"""
import collections
import subprocess
import sys

# (label, function); a sample goes to the first that is on its stack.
OPERATIONS = [
    ("POST /workflows (create handler)", "kiln_api_workflow_create"),
    ("GET /workflows (list, the poll)", "kiln_api_workflow_list"),
    ("worker: claim a step", "kiln_store_claim_step"),
    ("worker: finish a step", "kiln_store_finish_step"),
    ("worker: advance a workflow", "kiln_store_advance"),
    ("worker: load the claim", "kiln_store_load_claim"),
    ("worker: other", "worker_main"),
    ("I/O thread (libcurl multi)", "io_main"),
    ("HTTP: other (MHD, auth, routing)", "on_request"),
]
FUNCTIONS = [
    "kiln_store_begin", "sqlite3InvokeBusyHandler", "kiln_store_commit",
    "sqlite3WalFrames", "sqlite3WalCheckpoint", "__x64_sys_fdatasync",
    "__x64_sys_pwrite64", "__x64_sys_pread64", "__x64_sys_fcntl",
    "sqlite3_step", "kiln_store_insert_workflow", "kiln_store_get_workflow",
    "kiln_workflow_validate_create", "kiln_auth_verify", "json_dumps",
    "json_loadb", "curl_multi_perform", "tcp_sendmsg", "malloc", "free",
]


def stacks(path):
    out = subprocess.run(
        ["perf", "script", "-i", path, "-F", "comm,tid,ip,sym"],
        capture_output=True, text=True, check=True).stdout
    cur = None
    for line in out.splitlines():
        if line and not line[0].isspace():
            if cur is not None:
                yield cur
            cur = []
        elif line.strip() and cur is not None:
            parts = line.split(None, 1)
            if len(parts) == 2:
                cur.append(parts[1].split(" (")[0].strip())
    if cur is not None:
        yield cur


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    samples = [set(s) for s in stacks(sys.argv[1])]
    n = len(samples)
    if n == 0:
        sys.exit("no samples")
    ops = collections.Counter()
    for s in samples:
        for label, fn in OPERATIONS:
            if fn in s:
                ops[label] += 1
                break
        else:
            ops["other"] += 1
    print(f"{n} samples of kilnd's threads")
    print("by operation (each sample once):")
    for label, c in ops.most_common():
        print(f"  {100.0 * c / n:5.1f}%  {label}")
    print("inclusive share of some functions:")
    for fn in FUNCTIONS:
        c = sum(1 for s in samples if fn in s)
        if c:
            print(f"  {100.0 * c / n:5.1f}%  {fn}")


if __name__ == "__main__":
    main()
