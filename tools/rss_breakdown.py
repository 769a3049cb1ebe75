#!/usr/bin/env python3
"""Where a command's peak resident set goes, by mapping.

Runs COMMAND, samples /proc/PID/smaps of it and of its children every 20 ms, and prints for each process the
sample with the largest total Rss, broken down by mapping (file path, [heap], [anon], ...). Sampling can miss a
short peak by a little; `lowbit bench` reports the exact high-water mark (getrusage), this says what it is made
of. Linux only, standard library only.

    tools/rss_breakdown.py build/release/lowbit bench /tmp/packed_w4a16_head --prompt-len 512 --gen-len 128 \\
        --batch 1 --repeat 1 --threads 2 --no-bandwidth
"""
import re
import subprocess
import sys
import time

MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def rss_by_mapping(pid):
    """{mapping name: Rss in kB} of one process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps") as f:
            text = f.read()
    except OSError:
        return None
    per, name = {}, None
    for line in text.splitlines():
        if MAPPING.match(line):
            parts = line.split()
            name = parts[5] if len(parts) > 5 else "[anon]"
        elif line.startswith("Rss:"):
            per[name] = per.get(name, 0) + int(line.split()[1])
    return per


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    peaks = {}  # pid -> (total kB, per mapping)
    while proc.poll() is None:
        for pid in [proc.pid] + children(proc.pid):
            per = rss_by_mapping(pid)
            if per is None:
                continue
            total = sum(per.values())
            if total > peaks.get(pid, (0,))[0]:
                peaks[pid] = (total, per)
        time.sleep(0.02)
    for pid, (total, per) in peaks.items():
        print(f"pid {pid}: peak sampled Rss {total * 1024 / 1e6:.1f} MB")
        for name, kb in sorted(per.items(), key=lambda kv: -kv[1])[:12]:
            print(f"  {kb * 1024 / 1e6:8.1f} MB  {name}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
