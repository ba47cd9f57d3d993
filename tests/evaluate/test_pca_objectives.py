"""benchmarks/pca_objectives.py scores each method on its own objective (the doc block itself is checked by
tests/test_render_docs.py)."""


def test_objective_verdicts_follow_the_rows(load_benchmark):
    mod = load_benchmark("pca_objectives")
    row = {"method": "pca+", "eps": "16/255", "image": "a", "clean_edit_vs_input_psnr": 20.0}
    rows = [dict(row, edit="recon-mean", obj1={"psnr": 21.0, "ssim": 0.7}, obj2={"psnr": 30.0, "ssim": 0.9}),
            dict(row, method="random-noise", edit="recon-mean", obj1={"psnr": 20.5, "ssim": 0.6},
                 obj2={"psnr": 35.0, "ssim": 0.95})]
    out = mod.render({"rows": rows})
    assert "| pca+ | 1 | **21.00** |" in out and "yes (+0.50 dB)" in out  # Objective 1: closer to the input than noise
    rows[0]["obj1"]["psnr"] = 20.0
    assert "no (-0.50 dB)" in mod.render({"rows": rows})
