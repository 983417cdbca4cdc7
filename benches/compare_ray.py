#!/usr/bin/env python3
"""Ray 2.60 and Mobula side by side, on this machine, in one sitting.

Runs Ray's `ray microbenchmark` and Mobula's `cargo bench --bench microbenchmark` back to
back (never at the same time) and prints one table: case, Ray, Mobula, Mobula / Ray. With
--seed it also runs the lecture's walkthrough on both (../shared/bench/ray/seed_ray.py and
`cargo run --release --example quickstart`) and compares the sections' times.

    python3 benches/compare_ray.py                      # everything (about 15 minutes)
    python3 benches/compare_ray.py --filter "actor"     # cases whose name contains "actor"
    python3 benches/compare_ray.py --seed --markdown    # a table for BENCHMARKS.md

A Ray environment is needed (see ../shared/bench/ray/README.md):
    python3 -m venv /tmp/rayenv && /tmp/rayenv/bin/pip install -q "ray[default,tune]==2.60.0" numpy
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^(?P<name>.+?) per second (?P<mean>[0-9.e+]+) \+- (?P<std>[0-9.e+]+)\s*$")


def parse(text):
    out = {}
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if m:
            out[m["name"]] = (float(m["mean"]), float(m["std"]))
    return out


def run(cmd, env=None, cwd=ROOT):
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    return proc.stdout


def ray_microbenchmark(ray_bin, pattern):
    env = dict(os.environ)
    if pattern:
        env["TESTS_TO_RUN"] = pattern
    try:
        return parse(run([ray_bin, "microbenchmark"], env=env))
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True)


def mobula_microbenchmark(pattern):
    cmd = ["cargo", "bench", "--bench", "microbenchmark", "--"]
    if pattern:
        cmd += ["--filter", pattern]
    return parse(run(cmd))


def fmt(v):
    if v is None:
        return "-"
    mean, std = v
    return f"{mean:,.2f} ± {std:,.2f}" if mean < 100 else f"{mean:,.0f} ± {std:,.0f}"


def table(rows, markdown):
    head = ("case", "Ray 2.60", "Mobula", "Mobula / Ray")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "| --- | ---: | ---: | ---: |"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def seed(ray_python, markdown):
    ray_out = run([ray_python, str(ROOT.parent / "shared/bench/ray/seed_ray.py")])
    subprocess.run([str(Path(ray_python).parent / "ray"), "stop", "--force"], capture_output=True)
    ray = json.loads([l for l in ray_out.splitlines() if l.startswith("{")][-1])
    quick = run(["cargo", "run", "--release", "--example", "quickstart"])
    secs = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\[(\d)\].* in ([0-9.]+) s$", quick, re.M)}
    rows = []
    for section, key, what in [
        ("2", "init_s", "init"),
        ("3", "tasks_4x1s_s", "four 1-s tasks, num_cpus 4"),
        ("4", "actor_5_calls_s", "Counter: create + 5 calls"),
        ("5", "put_and_sum_8MB_s", "put 1000x1000 f64 + sum task"),
    ]:
        r, m = ray.get(key), secs.get(section)
        ratio = f"{r / m:,.0f}x faster" if r and m else "-"
        rows.append((f"[{section}] {what}", f"{r:.4f} s" if r else "-", f"{m:.4f} s" if m else "-", ratio))
    head = ("section", "Ray 2.60", "Mobula", "")
    if markdown:
        out = ["| " + " | ".join(head) + " |", "| --- | ---: | ---: | ---: |"] + ["| " + " | ".join(r) + " |" for r in rows]
    else:
        out = ["  ".join(head)] + ["  ".join(r) for r in rows]
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ray", default="/tmp/rayenv/bin/ray", help="the ray executable of a Ray 2.60 environment")
    p.add_argument("--filter", default="", help="only cases whose name contains this text")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    p.add_argument("--seed", action="store_true", help="also compare the lecture's walkthrough")
    p.add_argument("--json", help="write both sides' figures to this file")
    args = p.parse_args()
    if not Path(args.ray).exists():
        raise SystemExit(f"no Ray at {args.ray}; see ../shared/bench/ray/README.md")

    ray = ray_microbenchmark(args.ray, args.filter)
    mobula = mobula_microbenchmark(args.filter)
    rows = []
    for name in list(ray) + [n for n in mobula if n not in ray]:
        r, m = ray.get(name), mobula.get(name)
        ratio = f"{m[0] / r[0]:,.1f}x" if r and m and r[0] > 0 else "-"
        rows.append((name, fmt(r), fmt(m), ratio))
    print(table(rows, args.markdown))
    if args.json:
        Path(args.json).write_text(json.dumps({"ray": ray, "mobula": mobula}, indent=1))
    if args.seed:
        print()
        print(seed(str(Path(args.ray).parent / "python"), args.markdown))


if __name__ == "__main__":
    main()
