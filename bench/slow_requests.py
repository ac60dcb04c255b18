#!/usr/bin/env python3
"""Line up the predict bench's slow requests with what else held a core meanwhile.

Each request of a traced run (`AIRLOCK_BENCH_TRACE=DIR`) was in flight from its scheduled send
time for its latency. This counts the slow ones (over 2 ms) whose time in flight overlaps a
run of another process's thread (or a kernel thread) on a CPU of at least 0.5 ms, next to the
share of all requests that do (what chance alone gives), and names the threads.

On the 2-core VM the bench was built on, in a 20 s traced run, 476 of the open loop's 788 slow
requests (60%) overlapped such a run, against 1% of all its requests: the VM's agent (a tokio
thread of PID 1, every ~1.05 s) and the kernel's kdamond, in about equal parts. (Tracing adds
slow requests of its own: perf wrote about 3.5 MB/s of events.)

    cargo bench -p airlock-server --bench predict --no-run
    mkdir -p /tmp/trace
    AIRLOCK_BENCH_TRACE=/tmp/trace perf record -k mono -a -e sched:sched_switch \\
        -o /tmp/trace/sched.data cargo bench -p airlock-server --bench predict
    perf script -i /tmp/trace/sched.data -F pid,tid,time,cpu,event,trace > /tmp/trace/sched.txt
    python3 bench/slow_requests.py /tmp/trace [--over-ms 2] [--min-run-ms 0.5]

`perf record -k mono` stamps events with CLOCK_MONOTONIC, the clock in each trace file's
header (when its measured window opened, and the bench's process id).
"""
import argparse
import bisect
import collections
import pathlib
import re
import sys

SWITCH = re.compile(
    r"^\s*(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+): sched:sched_switch: .*==> next_comm=(.*?) next_pid=(\d+) "
)
HEADER = re.compile(r"^# pid (\d+) window_opened_monotonic_s ([\d.]+)")


def cpu_runs(path, min_s):
    """(start, end, process id or "?", comm) of every run of a non-idle thread on a CPU of at
    least min_s. A run lasts from the switch to the thread until the next switch on that CPU:
    the switch away from it is not always in the trace (none is, for the VM's agent)."""
    on = {}
    runs = []
    process = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = SWITCH.match(line)
            if not m:
                continue
            pid, tid, cpu, t, comm, nxt = m.groups()
            t = float(t)
            process[tid] = pid
            if cpu in on:
                since, who, name = on[cpu]
                if who != "0" and t - since >= min_s:
                    runs.append((since, t, who, name))
            on[cpu] = (t, nxt, comm)
    runs = [(a, b, process.get(tid, "?"), f"{name}/{tid}") for a, b, tid, name in runs]
    runs.sort()
    return runs


def read_trace(path):
    lines = path.read_text().splitlines()
    if not lines or not (m := HEADER.match(lines[0])):
        sys.exit(f"{path}: line 1: no '# pid ... window_opened_monotonic_s ...' header")
    reqs = []
    for n, line in enumerate(lines[1:], 2):
        parts = line.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            sys.exit(f"{path}: line {n}: expected 'send_us<TAB>latency_us'")
        reqs.append((int(parts[0]), int(parts[1])))
    return m.group(1), float(m.group(2)), reqs


def share(k, n):
    return f"{100 * k / n:.0f}%" if n else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=pathlib.Path, help="AIRLOCK_BENCH_TRACE's directory, with sched.txt")
    ap.add_argument("--over-ms", type=float, default=2.0, help="a slow request's latency (2)")
    ap.add_argument("--min-run-ms", type=float, default=0.5, help="shortest run counted (0.5)")
    a = ap.parse_args()
    over_us = a.over_ms * 1e3
    min_run_s = a.min_run_ms / 1e3
    d = a.dir
    sched = d / "sched.txt"
    if not sched.is_file():
        sys.exit(f"{sched}: missing (see the usage: perf script ... > {sched})")
    traces = sorted(d.glob("run-*.tsv"), key=lambda p: int(p.stem.split("-")[1]))
    if not traces:
        sys.exit(f"{d}: no run-N.tsv (run the bench with AIRLOCK_BENCH_TRACE={d})")
    all_runs = cpu_runs(sched, min_run_s)
    print(f"{sched}: {len(all_runs)} runs of at least {min_run_s * 1e3:.1f} ms on a CPU")
    for path in traces:
        pid, opened, reqs = read_trace(path)
        others = [r for r in all_runs if r[2] != pid]
        starts = [r[0] for r in others]
        longest = max((r[1] - r[0] for r in others), default=0.0)

        def overlapping(send_us, lat_us):
            a = opened + send_us / 1e6
            b = a + lat_us / 1e6
            # Runs that start before b and end after a: none started more than the longest
            # run's length before a.
            i = bisect.bisect_left(starts, a - longest)
            return [r for r in others[i : bisect.bisect_right(starts, b)] if r[1] > a]

        slow = [(s, l) for s, l in reqs if l > over_us]
        hit = 0
        who = collections.Counter()
        for s, l in slow:
            o = overlapping(s, l)
            if o:
                hit += 1
                _, _, other, comm = max(o, key=lambda r: r[1] - r[0])
                who[f"{comm} (pid {other})"] += 1
        any_hit = sum(1 for s, l in reqs if overlapping(s, l))
        print(
            f"{path.name}: {len(reqs)} requests, {len(slow)} over {over_us / 1e3:g} ms; "
            f"{hit} of those ({share(hit, len(slow))}) overlap another thread's run on a CPU, "
            f"against {share(any_hit, len(reqs))} of all requests"
        )
        for name, k in who.most_common(5):
            print(f"    {k:6d}  {name}")


if __name__ == "__main__":
    main()
