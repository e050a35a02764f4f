"""Read spy_host.py's samples: per method, the host's time per generated token by line and by
function, split into waiting for the device (a verdict's or a chunk's event, a read back) and work.

    python results/gpu_run37/spy_analyze.py RAW RATES_JSON RATE_HZ [top] > spy.md

A sample counts 1/RATE_HZ s; per token = over the sampled loop's tokens. Frames of the engine's
prompt admission (prefill) are counted apart, as the decode rates leave them out.
"""
import collections, json, re, sys

raw, rates_path, hz = sys.argv[1], sys.argv[2], float(sys.argv[3])
top = int(sys.argv[4]) if len(sys.argv) > 4 else 30
rates = json.load(open(rates_path))
WAIT = ("synchronize", "_read_back", "tolist")  # a line blocked on the device shows here
per = {m: {"self_line": collections.Counter(), "incl": collections.Counter(), "total": 0, "admit": 0, "wait": 0,
           "wait_lines": collections.Counter()} for m in rates}
strip = lambda f: re.sub(r":\d+\)", ")", f)
for line in open(raw):
    stack, _, n = line.rstrip().rpartition(" ")
    if not n.isdigit():  # a frame whose source text held a line break splits its sample over lines: dropped
        continue
    n = int(n)
    frames = stack.split(";")
    m = next((mm for mm in rates if any(f.startswith(f"sampled_{mm} ") for f in frames)), None)
    if m is None:
        continue
    d = per[m]
    d["total"] += n
    if any("Engine._admit" in f for f in frames):
        d["admit"] += n
        continue
    leaf = frames[-1]
    d["self_line"][leaf] += n
    if any(w in leaf for w in ("synchronize", "HostValue.get (hsd_bench/draft_stop.py:123)")) or "Engine._sync" in leaf:
        d["wait"] += n
        d["wait_lines"][" < ".join(frames[-1:-4:-1])] += n
    seen = set()
    for f in frames:
        k = strip(f)
        if k not in seen:
            d["incl"][k] += n
            seen.add(k)
for m, d in per.items():
    r = rates[m]
    tok = r["sampled_tokens"]
    us = lambda n: n / hz * 1e6 / tok
    print(f"## {m}\n\ntimed {r['timed_decode_tok_s']:.1f} tok/s before sampling, {r['sampled_decode_tok_s']:.1f} "
          f"while sampled ({r['sampled_passes']} passes, {tok} tokens, host probe {r['host_probe_us']} µs)\n")
    print(f"- sampled per token: all {us(d['total']):.1f} µs, prefill {us(d['admit']):.1f}, decode "
          f"{us(d['total'] - d['admit']):.1f} of which waiting on the device {us(d['wait']):.1f} and host work "
          f"{us(d['total'] - d['admit'] - d['wait']):.1f} (decode wall per token {1e6 * r['sampled_decode_s'] / tok:.1f})\n")
    print("| µs / token | line (self) |\n| --- | --- |")
    for k, n in d["self_line"].most_common(top):
        print(f"| {us(n):.2f} | `{k}` |")
    print("\n| µs / token | function (inclusive) |\n| --- | --- |")
    for k, n in d["incl"].most_common(top + 15):
        print(f"| {us(n):.2f} | `{k}` |")
    print("\n| µs / token | waits (leaf < callers) |\n| --- | --- |")
    for k, n in d["wait_lines"].most_common(8):
        print(f"| {us(n):.2f} | `{k}` |")
    print()
