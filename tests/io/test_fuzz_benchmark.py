"""A few hundred cases of benchmarks/fuzz_images.py (the 10,000-file run is the benchmark): truncations, bit flips,
wrong headers, huge declared sizes, bombs, palette / 16-bit / alpha / CMYK / animated variants. Only ImageLoadError
comes out, with a one-line message; nothing hangs (a 30 s alarm per file)."""

from __future__ import annotations


def test_fuzz_cases_give_only_the_declared_error(load_benchmark):
    fuzz = load_benchmark("fuzz_images")
    # the legal worst case (8000x8000 at the pixel limit, ~2 GB decoded) belongs to the benchmark, not the suite
    res = fuzz.run(300, seed=1, progress=False, include_limit=False)
    assert res["inputs"] == 300
    assert res["unexpected_exceptions"] == [] and res["hangs"] == []
    assert res["decoded"] + res["refused_with_ImageLoadError"] == 300
    assert res["errors_by_type"].get("ImageLoadError: too many pixels (bomb guard)", 0) >= 5
    assert not [k for k in res["errors_by_type"] if k.startswith("ImageLoadError: other")], res["errors_by_type"]
    variants = set(res["by_variant"])
    for v in ("png-palette-trns", "png16-rgba", "png-gray-alpha", "jpeg-cmyk", "webp-animated", "png-animated",
              "tiff-multipage", "gif"):
        assert v in variants
    for op in ("truncate", "bitflip", "header", "huge-size"):
        assert res["by_mutation"].get(op, 0) > 0
