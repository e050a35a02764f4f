#!/usr/bin/env python3
"""What host work between timed generations costs: one process, the same engines, the same prompts.

    python scripts/diag_timing_gap.py --model checkpoints/ee-24x128 --out $OUT/diag.json   # on a GPU
    python scripts/diag_timing_gap.py --conditions b2b,run_py_before --threads 16,1 ...

Why: ``run.py`` timed the shipped 5.6 M model 9-18 % below ``bench_gpu.py`` on an
H200 although both time through ``measure.timed_generate``. This script builds
``run.py``'s engines (AR and layerskip) on ``run.py``'s HumanEval workload once, then
times them under each *condition* -- what happens between two timed generations --
so only that differs: decoder after decoder with nothing in between (the
benchmark), alternating sample by sample, scoring in line, scoring on a
background thread, a pause, an fsync, an untimed pre-roll. Every condition runs
``--reps`` passes over all prompts; the JSON has tokens/s, decode tokens/s and the
mean prefill per method. ``docs/performance.md`` ("How a run is timed", rule 4)
has what it found; ``results/gpu_run4/timing_gap/`` the three calls.

Run as several fresh processes (``--host-probe``, ``--prefill``, ``--methods``), it
also asks why one process decodes slower than the next on the same machine: each
records where it runs (CPU affinity, NUMA node of those CPUs and of the GPU), how
fast its host is (a pure-Python loop and a kernel-launch loop, both timed untimed
to the generations) and the prefill mode of the native backend -- so a slow
process can be matched to a slow host or to one prefill path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from hsd_bench import measure, parity  # noqa: E402
from hsd_bench.api import truncate_at_stop  # noqa: E402
from hsd_bench.bench.jobs import METHOD_OVERRIDES as JOB_OVERRIDES  # noqa: E402
from hsd_bench.bench.jobs import run_py_workload  # noqa: E402
from hsd_bench.models.native.model import PREFILL_MODES  # noqa: E402
from hsd_bench.sampling import DecodingConfig  # noqa: E402

# the methods this script can time (run.py's overrides for each: hsd_bench/bench/jobs.py)
METHOD_OVERRIDES = {m: JOB_OVERRIDES[m] for m in ("autoregressive", "layerskip", "hispec")}
BOTH = ("autoregressive", "layerskip")  # the default --methods; conditions naming BOTH time all of --methods
# name -> (decoders, what happens after each timed generation; "alternate": sample-major order)
CONDITIONS = {
    "b2b": (BOTH, ""),
    "alternate": (BOTH, "alternate"),
    "sleep": (("autoregressive",), "sleep"),
    "score": (("autoregressive",), "score"),
    "fsync": (("autoregressive",), "fsync"),
    "run_py_before": (BOTH, "alternate score fsync explain"),  # run.py's loop before deferred scoring
    "run_py_before_preroll": (BOTH, "alternate score fsync explain preroll"),
    "sleep_preroll": (("autoregressive",), "sleep preroll"),
    "background": (BOTH, "background fsync explain"),  # scores on a thread beside the next generations
    "alternate_background": (BOTH, "alternate background fsync explain"),
    "deferred_scoring": (BOTH, "fsync explain"),  # run.py now: the row written, scores after the last
    "b2b_again": (BOTH, ""),
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/ee-24x128")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--limit", type=int, default=8, help="HumanEval samples (run.py's dataset.limit)")
    ap.add_argument("--max-new", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", default="1", help="comma-separated intra-op CPU thread counts, run in this order")
    ap.add_argument("--conditions", default="b2b,deferred_scoring,b2b_again",
                    help=f"comma-separated, in order, of {', '.join(CONDITIONS)}")
    ap.add_argument("--methods", default=",".join(BOTH),
                    help=f"comma-separated, AR first, of {', '.join(METHOD_OVERRIDES)}")
    ap.add_argument("--prefill", default=None, choices=PREFILL_MODES,
                    help="the native backend's prefill mode (default: the backend's own)")
    ap.add_argument("--host-probe", action="store_true",
                    help="record CPU affinity, NUMA nodes and host speed before the timings")
    ap.add_argument("--probe-only", action="store_true", help="print the host probe and exit (no model)")
    ap.add_argument("--print-pin-cpus", action="store_true",
                    help="print the CPUs a pinned run uses (taskset -c's list) and exit")
    ap.add_argument("--pin-main", type=int, default=None, metavar="CPU",
                    help="pin the main thread (the one that launches every replay) to this CPU after loading")
    ap.add_argument("--out", default="diag_timing_gap.json")
    args = ap.parse_args(argv)
    unknown = [c for c in args.conditions.split(",") if c not in CONDITIONS]
    if unknown:
        ap.error(f"unknown condition(s) {', '.join(unknown)}; valid: {', '.join(CONDITIONS)}")
    methods = args.methods.split(",")
    bad = [m for m in methods if m not in METHOD_OVERRIDES]
    if bad or methods[0] != "autoregressive":
        ap.error(f"--methods={args.methods!r}: AR first, then any of {', '.join(list(METHOD_OVERRIDES)[1:])}")
    return args


def _cpu_list(text: str) -> list[int]:
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11] (the kernel's cpulist format)."""
    cpus: list[int] = []
    for part in filter(None, text.strip().split(",")):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def _numa_of_cpus(cpus: list[int]) -> dict[int, int]:
    """NUMA node -> how many of ``cpus`` it holds (empty where sysfs does not say)."""
    counts: dict[int, int] = {}
    for node_dir in sorted(Path("/sys/devices/system/node").glob("node[0-9]*")):
        node_cpus = set(_cpu_list((node_dir / "cpulist").read_text()))
        n = sum(c in node_cpus for c in cpus)
        if n:
            counts[int(node_dir.name[4:])] = n
    return counts


def gpu_sysfs(device: str) -> dict:
    """The GPU's PCI address, NUMA node and local CPUs (``local_cpulist``), where sysfs says."""
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(torch.device(device))
    ids = [getattr(props, k, None) for k in ("pci_domain_id", "pci_bus_id", "pci_device_id")]
    if None in ids:
        return {}
    out = {"gpu_pci": "{:04x}:{:02x}:{:02x}.0".format(*ids)}
    sysfs = Path("/sys/bus/pci/devices") / out["gpu_pci"]
    if sysfs.exists():
        out["gpu_numa"] = int((sysfs / "numa_node").read_text())
        out["gpu_local_cpus"] = (sysfs / "local_cpulist").read_text().strip()
    return out


def pin_cpus(device: str) -> list[int]:
    """The CPUs a pinned run uses: those this process may use next to the GPU; else those of the
    first NUMA node it may use; else all it may use."""
    mine = sorted(os.sched_getaffinity(0))
    local = set(_cpu_list(gpu_sysfs(device).get("gpu_local_cpus", "")))
    if local & set(mine):
        return [c for c in mine if c in local]
    for node_dir in sorted(Path("/sys/devices/system/node").glob("node[0-9]*")):
        node = set(_cpu_list((node_dir / "cpulist").read_text()))
        if node & set(mine):
            return [c for c in mine if c in node]
    return mine


def host_probe(device: str) -> dict:
    """Where this process runs and how fast its host is, measured before any timed generation.

    Why: on an H200 the same run.py job decoded 19 % apart in fresh processes, the
    difference sitting in the eager prefill and in host-bound methods -- a host that
    is slower in some processes (placement, a busy neighbour) would show here first.
    """
    cpus = sorted(os.sched_getaffinity(0))
    out: dict = {"affinity": cpus, "affinity_numa": _numa_of_cpus(cpus), "cpu_count": os.cpu_count()}
    try:
        out["cpu_now"] = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[36])
    except (OSError, IndexError, ValueError):
        pass
    out.update(gpu_sysfs(device))
    best = []
    for _ in range(5):  # best of 5: the host's speed, not a hiccup
        t0 = time.perf_counter()
        x = 0
        for i in range(200_000):
            x += i & 7
        best.append(time.perf_counter() - t0)
    out["py_loop_ms"] = 1000 * min(best)
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        a = torch.zeros(16, device=device)
        for _ in range(200):
            a.add_(1)
        torch.cuda.synchronize()
        launches = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(1000):
                a.add_(1)
            launches.append(time.perf_counter() - t0)  # enqueue time only: the host's share of a launch
            torch.cuda.synchronize()
        out["launch_us"] = 1000 * min(launches)
    return out


def os_counters() -> dict:
    """Scheduler counters that say whether the host took time from this process while it decoded:
    the main thread's involuntary context switches and CPU migrations (``/proc/thread-self/sched``),
    the process's context switches (``getrusage``) and the whole VM's steal time (``/proc/stat``,
    jiffies the hypervisor ran something else on our vCPUs); empty where the OS does not say."""
    import resource

    out: dict = {}
    try:
        for line in Path("/proc/thread-self/sched").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("nr_involuntary_switches", "nr_voluntary_switches", "se.nr_migrations"):
                out["main_" + key.replace("se.", "")] = int(float(value))
    except OSError:
        pass
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["proc_nvcsw"], out["proc_nivcsw"] = ru.ru_nvcsw, ru.ru_nivcsw
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        out["vm_steal_jiffies"] = int(fields[8])
    except (OSError, IndexError, ValueError):
        pass
    return out


def sm_clock_mhz(device: str):
    """The GPU's SM clock now (NVML through torch), or None where NVML is not installed."""
    try:
        return torch.cuda.clock_rate(torch.device(device))
    except Exception:  # noqa: BLE001 -- pynvml missing or no NVML: the probe is optional
        return None


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.print_pin_cpus:
        print(",".join(map(str, pin_cpus(args.device))))
        return 0
    host = host_probe(args.device) if args.host_probe or args.probe_only else None
    if host:
        print("host", json.dumps({k: v for k, v in host.items() if k != "affinity"}), flush=True)
    if args.probe_only:
        return 0
    job = run_py_workload(args.model, args.methods.split(","), args.device, args.dtype, args.limit, args.max_new)
    engines, target, codec, task, samples, prompts, stop = (job.engines, job.target, job.codec, job.task, job.samples,
                                                            job.prompts, job.stop)
    if args.prefill is not None:  # read by the model at every prefill, so setting it after the build holds
        if not hasattr(target, "prefill"):
            raise SystemExit(f"--prefill={args.prefill}: the {target.backend} backend has no prefill modes")
        target.prefill = args.prefill
    decoding = DecodingConfig()
    compile_s = measure.prepare(engines.values(), prompts, args.max_new, decoding, 1, stop_sequences=stop,
                                tokenizer=codec)
    print(f"compile_s {compile_s:.1f}", flush=True)
    if args.pin_main is not None:
        os.sched_setaffinity(0, {args.pin_main})  # pid 0: the calling thread only
    started = time.perf_counter()
    rows_file = tempfile.NamedTemporaryFile("a", delete=False)
    scorer = ThreadPoolExecutor(1)

    def between(kind: str, i: int, gen, ar_ids) -> None:
        text = truncate_at_stop(codec.decode(gen.output_ids), stop)
        if "background" in kind:
            scorer.submit(task.score, samples[i], text)
        if "sleep" in kind:
            time.sleep(0.2)
        if "score" in kind:
            task.score(samples[i], text)
        if "fsync" in kind:
            rows_file.write(json.dumps(gen.output_ids) + "\n")
            rows_file.flush()
            os.fsync(rows_file.fileno())
        if "explain" in kind and ar_ids is not None:
            parity.explain(target, prompts[i], ar_ids, gen.output_ids)

    def condition(name: str) -> dict:
        methods, kind = CONDITIONS[name]
        methods = tuple(engines) if methods == BOTH else methods
        acc = {m: {"tokens": 0, "wall": 0.0, "prefill": 0.0, "n": 0, "captures": 0} for m in methods}
        per_rep = []  # each pass: its start in the process, tokens/s per method, the OS counters' change
        for _ in range(args.reps):
            rep = {m: {"tokens": 0, "wall": 0.0, "prefill": 0.0} for m in methods}
            rep_start, before, clock_before = time.perf_counter() - started, os_counters(), sm_clock_mhz(args.device)
            order = ([(i, m) for i in range(len(prompts)) for m in methods] if "alternate" in kind
                     else [(i, m) for m in methods for i in range(len(prompts))])
            ar_ids: dict[int, list[int]] = {}
            for i, m in order:
                if "preroll" in kind:
                    engines[m].generate(prompts[i], 2, decoding)
                timed = measure.timed_generate(engines[m], prompts[i], args.max_new, decoding, stop_sequences=stop,
                                               tokenizer=codec)
                g = timed.generation
                a = acc[m]
                a["captures"] += timed.graph_captures
                a["tokens"] += g.stats.n_generated
                a["wall"] += g.stats.wall_s
                a["prefill"] += g.stats.prefill_s
                a["n"] += 1
                for k, v in (("tokens", g.stats.n_generated), ("wall", g.stats.wall_s), ("prefill", g.stats.prefill_s)):
                    rep[m][k] += v
                if m == "autoregressive":
                    ar_ids[i] = g.output_ids
                between(kind, i, g, None if m == "autoregressive" else ar_ids.get(i))
            after = os_counters()
            per_rep.append({"start_s": rep_start, "sm_clock_mhz": [clock_before, sm_clock_mhz(args.device)],
                            **{k: after[k] - before[k] for k in after if k in before},
                            **{m: {"tok_s": r["tokens"] / r["wall"],
                                   "decode_tok_s": r["tokens"] / (r["wall"] - r["prefill"])} for m, r in rep.items()}})
        scorer.submit(lambda: None).result()  # background scores finished before the next condition
        return {m: {"tok_s": a["tokens"] / a["wall"], "decode_tok_s": a["tokens"] / (a["wall"] - a["prefill"]),
                    "prefill_ms": 1000 * a["prefill"] / a["n"], "captures": a["captures"]} for m, a in acc.items()} | {
            "per_rep": per_rep}

    results = {"compile_s": compile_s, "threads_default": torch.get_num_threads(), "args": vars(args),
               "python": sys.version.split()[0],
               "prefill": getattr(target, "prefill", None), "host": host}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        key = f"threads={threads}"
        results[key] = {}
        for name in args.conditions.split(","):
            results[key][name] = row = condition(name)
            print(key, name, json.dumps({m: {k: round(v, 1) for k, v in d.items()} for m, d in row.items()
                                         if m != "per_rep"}), flush=True)
            for rep in row["per_rep"]:
                print("  rep", json.dumps({k: (round(v, 1) if isinstance(v, float) else
                                                v if not isinstance(v, dict) else round(v["decode_tok_s"]))
                                            for k, v in rep.items()}), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    scorer.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
