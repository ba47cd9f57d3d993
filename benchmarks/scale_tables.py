"""docs/scale.md's protect-throughput table, rendered from ``benchmarks/bench_scale.py``'s
``results/bench_scale.json`` by ``benchmarks/render_docs.py`` (block ``scale_protect``)."""

from __future__ import annotations


def protect_table(d: dict) -> str:
    p = d["protect"]
    runs = p["runs"]
    local = runs["local"]
    lines = [f"`{p['method']}` on `{p['model']}`, {p['size_px']} px, {p['steps']} PGD steps"
             f"{' with random start' if p.get('random_start') else ''}, {p['images']} photos, {p['device'].upper()}, "
             f"{p['torch_threads_per_worker']} torch thread per worker; Ray started in {p['ray_init_s']:.1f} s:", "",
             "| engine | steady images/s | wall s (incl. actor start) | protect call s/image | wall vs local | "
             "PNGs identical to local | load average (1 min) |",
             "|---|---:|---:|---:|---:|---|---:|"]
    names = {"local": "local loop", "ray_1_actor": "Ray, 1 actor", "ray_2_actor": "Ray, 2 actors"}
    for key, label in names.items():
        r = runs.get(key)
        if r is None:
            continue
        same = "(reference)" if key == "local" else ("yes" if r.get("identical_to_local") else "NO")
        wall = "(reference)" if key == "local" else f"{100 * (r['wall_s'] / local['wall_s'] - 1):+.1f} %"
        lines.append(f"| {label} | {r['steady_images_per_s']:.3f} | {r['wall_s']:.1f} | {r['protect_s_per_image']:.2f} | "
                     f"{wall} | {same} | {r['load_avg'][0]:.2f} |")
    return "\n".join(lines) + "\n"
