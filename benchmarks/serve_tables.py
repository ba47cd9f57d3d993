"""Markdown tables of docs/serve.md, rendered from the committed raw outputs by ``benchmarks/render_docs.py``.

* ``timing_table``: ``benchmarks/bench_serve_steps.py --timing`` -> ``results/bench_serve_timing.json``;
* ``steps_table``: ``benchmarks/bench_serve_steps.py`` -> ``results/bench_serve_steps.json``;
* ``load_table``: ``benchmarks/bench_serve.py`` -> ``results/bench_serve.json``.
"""

from __future__ import annotations


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _g(v: float) -> str:
    return f"{v:g}"


def timing_table(d: dict) -> str:
    out = [_row(["image", "seconds (1 step)", "seconds (5 steps)", "per step"]), "|---|---|---|---|"]
    for size, r in d["sizes"].items():
        out.append(_row([size, f"{r['s_1_step']:.1f}", f"{r['s_5_steps']:.1f}", f"{r['s_per_step']:.2f}"]))
    la = d.get("loadavg_at_end")
    if la:
        out += ["", f"({d['method']} on `{d['vae']}`, {d['eps']}, one image, {d['torch_threads']} torch thread; load average "
                f"{la[0]:.1f} on {d['cpus']} cores at the end of the run.)"]
    est = []
    for size, r in d["sizes"].items():
        est.append(f"~{r['s_1_step'] + 9 * r['s_per_step']:.0f} s at {size.split('x')[0]} px")
    big = d["sizes"].get("256x256")
    if est:
        line = "So 10 steps take " + " and ".join(est)
        if big:
            mpix = big["s_per_step"] * 1e6 / (256 * 256) * 10 / 60
            line += f"; a 1-megapixel photo ~{mpix:.0f} minutes (per-step cost scaled by the pixel count)"
        out += ["", line + "."]
    return "\n".join(out) + "\n"


def steps_table(d: dict) -> str:
    names = ", ".join(i.split("[")[0] for i in d["images"])
    out = [_row(["steps", "seconds per image", f"KL after/before ({names})", "L-inf (/255)",
                 "reconstruction PSNR clean -> protected (dB)"]), "|---|---|---|---|---|"]
    for steps, r in d["steps"].items():
        linf = sorted(set(r["linf255"]))
        out.append(_row([steps, f"{r['s_per_img']:.2f}", ", ".join(f"{v:.3f}" for v in r["kl_ratio"]),
                         ", ".join(_g(v) for v in linf),
                         ", ".join(f"{c:.2f} -> {p:.2f}" for c, p in zip(r["recon_psnr_clean"], r["recon_psnr_prot"]))]))
    return "\n".join(out) + "\n"


def load_table(d: dict) -> str:
    s, ld, lat, rss = d["server"], d["load"], d["latency_s"], d["rss_mb"]
    codes = ", ".join(f"{n} x HTTP {c}" for c, n in sorted(d["status_counts"].items()))
    out = [_row(["requests (clients)", "answers", "5xx", "latency p50 / p95 / p99 / max (s)", "throughput",
                 "server RSS after warm-up -> after (MB)"]), "|---|---|---|---|---|---|",
           _row([f"{ld['requests']} ({ld['concurrency']} concurrent)", codes, d["errors_5xx"],
                 f"{lat['p50']:.2f} / {lat['p95']:.2f} / {lat['p99']:.2f} / {lat['max']:.2f}",
                 f"{d['throughput_rps']:.2f} requests/s",
                 f"{rss['before']:.1f} -> {rss['after']:.1f} ({rss['delta']:+.1f})"])]
    samples = ", ".join(f"{mb:.1f}" for _, mb in rss.get("samples", []))
    m = d["machine"]
    out += ["", f"Server: {s['workers']} worker, {s['torch_threads']} torch thread, {s['method']} {s['steps']} step on "
            f"{s['image']}s; {m['cpus']} cores, load average {m['loadavg_at_end'][0]:.1f} at the end. RSS sampled during "
            f"the run: {samples} MB."]
    return "\n".join(out) + "\n"
