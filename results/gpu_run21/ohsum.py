"""Print the overhead rows of bench.json files: one line per engine row (not part of the project)."""
import json, sys
for path in sys.argv[1:]:
    d = json.load(open(path))
    for part, p in d["parts"].items():
        for r in p.get("rows", []):
            o = r.get("outside_forwards_async") or {}
            hs = r.get("host_serial") or {}
            print(f"{path.split('/')[-2]:>10} {r['name'][:34]:34} tok/s {r.get('tokens_per_s',0):8.1f} "
                  f"tok {r.get('tokens_per_rep')} ohtok {o.get('tokens')}/{hs.get('tokens')} "
                  f"idle {100*o.get('gpu_idle_frac', float('nan')):5.1f}% slow {100*o.get('instrumented_slowdown', float('nan')):+5.1f}% "
                  f"probe {r.get('host_probe_us', float('nan')):5.1f} tau {r.get('mean_accepted_len', 0):.2f}")
            for t in (o.get("idle_by_transition") or [])[:3]:
                print(f"{'':46}{t['before']} -> {t['after']}: {t['count']} x, {100*t['share']:.1f}%")
