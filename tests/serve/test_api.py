"""The HTTP API of ``latentguard serve``: every endpoint, every bad input (documented status, one-line detail),
the bounded queue (429), timeouts, TTL cleanup and what is written where."""

from __future__ import annotations

import io
import threading
import time
import zipfile

import pytest
import torch

from latentguard.io import load_image, read_provenance

from .conftest import png_bytes, png_header_only


def _poll(client, job_id: str, timeout: float = 300.0) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        j = client.get(f"/v1/jobs/{job_id}").json()
        if j["status"] in ("done", "failed"):
            return j
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def _detail(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    d = r.json()["detail"]
    assert isinstance(d, str) and d and "\n" not in d and "Traceback" not in d
    return d


def test_healthz_and_methods(client, serve_config):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["workers"] == 1 and h["queue"]["max"] == serve_config.queue_size
    m = client.get("/v1/methods").json()
    from latentguard.protect import available

    assert [x["name"] for x in m["methods"]] == available()  # from the registry: a new method appears by itself
    assert m["default_method"] == "fast" and [x["name"] for x in m["methods"] if x["default"]] == ["fast"]
    assert m["models"] == ["zoo:vae-a"] and m["editor"] == "zoo:t2i"
    assert "zoo:vae-a" in m["notes"]["zoo:vae-a"] and "not guaranteed" in m["notes"]["zoo:vae-a"]
    assert {x["name"]: x["surrogate"] for x in m["methods"]}["advdm"] == "editor pipeline"


def test_openapi_documents_the_api(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/protect", "/v1/jobs/{job_id}", "/v1/methods", "/healthz", "/v1/zip"} <= set(spec["paths"])
    body = spec["paths"]["/v1/protect"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"image", "method", "eps", "steps", "model"} <= set(body["properties"]) and body["required"] == ["image"]


def test_page_lists_the_registry(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    for name in ("pca+", "pca-", "photoguard-enc", "zoo:vae-a", "zoo:t2i", 'id="files"', "/static/app.js"):
        assert name in r.text
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/app.css").status_code == 200


def test_protect_answers_the_png_within_the_budget(client, serve_config, tmp_path):
    data = png_bytes(40, 24, seed=1)
    r = client.post("/v1/protect", files={"image": ("my photo.png", data, "application/octet-stream")},
                    data={"method": "pca+", "eps": "8/255", "steps": "2", "model": "zoo:vae-a"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and "my_photo-protected.png" in r.headers["content-disposition"]
    (tmp_path / "in.png").write_bytes(data)
    (tmp_path / "out.png").write_bytes(r.content)
    x, y = load_image(tmp_path / "in.png"), load_image(tmp_path / "out.png")
    assert y.shape == x.shape
    linf = float((y - x).abs().max())
    assert 0 < linf <= 8 / 255 + 1e-6  # both are 8-bit PNGs: the budget holds on the integer grid too
    prov = read_provenance(tmp_path / "out.png")
    assert prov["method"] == "pca+" and prov["eps_label"] == "8/255" and prov["steps"] == 2
    assert prov["surrogates"] == ["zoo:vae-a"] and prov["source"] == "my_photo"
    job = client.get(f"/v1/jobs/{r.headers['x-job-id']}").json()
    assert job["status"] == "done" and job["figures"]["linf"] == pytest.approx(linf, abs=1e-6)
    assert job["figures"]["kl_after"] > job["figures"]["kl_before"]  # pca+ ascends the KL


def test_async_job_with_preview_and_zip(client, serve_config):
    r = client.post("/v1/protect", files={"image": ("a.png", png_bytes(32, 32, 2))}, data={"preview": "1", "wait": "0"})
    assert r.status_code == 202 and r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
    j = r.json()
    assert j["status"] in ("queued", "running") and j["result_url"] is None and 0 <= j["progress"] <= 1
    j = _poll(client, j["id"])
    assert j["status"] == "done" and j["progress"] == 1.0 and j["result_url"].endswith("/result.png")
    p = j["figures"]["preview"]
    assert p["editor"] == "zoo:t2i" and p["crop"] == [32, 32] and 0 < p["edit_protected_vs_edit_clean"]["psnr"] <= 100
    for name, url in j["files"].items():
        g = client.get(url)
        assert g.status_code == 200 and g.headers["content-type"] == "image/png" and g.content[:4] == b"\x89PNG", name
    r2 = client.post("/v1/protect", files={"image": ("a.png", png_bytes(32, 32, 3))})
    assert r2.status_code == 200
    z = client.get(f"/v1/zip?ids={j['id']},{r2.headers['x-job-id']}")
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
    assert names == ["a-protected.png", "a-protected-1.png"]
    assert not list((serve_config.data_dir / "zips").glob("*.zip"))  # deleted once sent


@pytest.mark.parametrize("payload, status, words", [
    (b"", 400, "empty upload"),
    (b"this is not an image, only text", 415, "not a PNG"),
    (b"GIF89a" + b"\0" * 40, 415, "not a PNG"),
    ("truncated", 400, "truncated"),
    ("bomb", 413, "decompression bomb"),
    ("big-header", 413, "exceeds the limit"),
])
def test_bad_images_get_4xx(client, payload, status, words):
    if payload == "truncated":
        full = png_bytes(64, 64)
        payload = full[: len(full) // 2]
    elif payload == "bomb":
        payload = png_header_only(50000, 50000)
    elif payload == "big-header":
        payload = png_header_only(1000, 1000)  # over this server's 512x512 limit
    t0 = time.monotonic()
    d = _detail(client.post("/v1/protect", files={"image": ("x.png", payload, "image/png")}), status)
    assert words in d and time.monotonic() - t0 < 10  # refused from the header: no 7.5 GB decode


@pytest.mark.parametrize("fields, words", [
    ({"method": "nope"}, "method: unknown"), ({"eps": "16"}, "pixel units"), ({"eps": "x/255"}, "eps:"),
    ({"steps": "-2"}, "steps:"), ({"steps": "6"}, "outside 0..5"), ({"steps": "many"}, "not an integer"),
    ({"model": "runwayml/stable-diffusion-v1-5"}, "not offered"), ({"preview": "perhaps"}, "preview:"),
    ({"wait": "-1"}, "wait:"), ({"extra": "1"}, "unknown field"),
])
def test_wrong_parameters_get_422(client, fields, words):
    d = _detail(client.post("/v1/protect", files={"image": ("x.png", png_bytes(16, 16))}, data=fields), 422)
    assert words in d


def test_malformed_requests(client, serve_config):
    assert "image: missing" in _detail(client.post("/v1/protect", files={"eps": (None, "8/255")}), 422)
    assert "multipart" in _detail(client.post("/v1/protect", data={"eps": "8/255"}), 415)  # urlencoded
    assert "multipart" in _detail(client.post("/v1/protect", content=b"{}", headers={"content-type": "application/json"}), 415)
    assert "expected a file" in _detail(client.post("/v1/protect", files={"x": (None, "1")}, data={"image": "abc"}), 422)
    two = [("image", ("a.png", png_bytes(8, 8))), ("image", ("b.png", png_bytes(8, 8)))]
    assert "malformed form" in _detail(client.post("/v1/protect", files=two), 400)
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (serve_config.max_upload_bytes + 100 * 1024)
    assert "exceeds the limit" in _detail(client.post("/v1/protect", files={"image": ("big.png", big)}), 413)


def test_unknown_jobs_and_files(client):
    assert "no job" in _detail(client.get("/v1/jobs/" + "0" * 32), 404)
    assert _detail(client.get("/v1/jobs/..%2F..%2Fetc"), 404)  # no route, or no job: never a file
    assert _detail(client.get("/v1/jobs/" + "0" * 32 + "/result.png"), 404)
    assert "ids:" in _detail(client.get("/v1/zip?ids=,"), 422)
    assert "ids" in _detail(client.get("/v1/zip"), 422)
    r = client.post("/v1/protect", files={"image": ("a.png", png_bytes(16, 16))})
    jid = r.headers["x-job-id"]
    assert "no file" in _detail(client.get(f"/v1/jobs/{jid}/secret.png"), 404)
    assert "preview not requested" in _detail(client.get(f"/v1/jobs/{jid}/edit_clean.png"), 404)


def test_everything_is_written_inside_the_data_folder(client, serve_config):
    root = serve_config.data_dir.resolve()
    pool = client.app.state.pool
    with pool._lock:
        jobs = list(pool._jobs.values())
    assert jobs
    for j in jobs:
        assert j.folder.resolve().is_relative_to(root / "jobs")
        assert all(p.resolve().is_relative_to(j.folder.resolve()) for p in j.files.values())
    assert {p.name for p in root.iterdir()} <= {"jobs", "zips"}


def test_upload_stays_in_memory(client, monkeypatch):
    """Starlette spools uploads over 1 MB to a system temp file; the server keeps them in memory instead."""
    import tempfile

    def refuse(*a, **k):
        raise AssertionError("an upload was spooled to a temporary file outside the data folder")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    big = png_header_only(1000, 1000) + b"\0" * (1536 * 1024)  # 1.5 MB, refused for its pixels after parsing
    assert "exceeds the limit" in _detail(client.post("/v1/protect", files={"image": ("b.png", big)}), 413)


# ------------------------------------------------------------------------------------------ queue and timeouts
class _BlockingPool:
    """A WorkerPool whose worker waits on an event before running each job (no model is loaded)."""

    @staticmethod
    def make(config):
        from latentguard.serve.jobs import WorkerPool

        class Pool(WorkerPool):
            release = threading.Event()

            def _run(self, job, models):
                job.status, job.stage = "running", "blocked by the test"
                self.release.wait(30)
                job.status = "queued"
                super()._run(job, models)

        return Pool(config)


def test_full_queue_gets_429_and_stale_jobs_time_out(tmp_path):
    from fastapi.testclient import TestClient

    from latentguard.serve import ServeConfig
    from latentguard.serve.app import create_app

    cfg = ServeConfig(data_dir=tmp_path / "d", models=["zoo:vae-a"], editor="zoo:t2i", queue_size=2,
                      job_timeout_s=0.5, default_steps=0, ttl_s=60.0)
    pool = _BlockingPool.make(cfg)
    with TestClient(create_app(cfg, pool=pool)) as c:
        post = lambda: c.post("/v1/protect", files={"image": ("a.png", png_bytes(8, 8))}, data={"wait": "0"})  # noqa: E731
        first = post()
        assert first.status_code == 202
        t0 = time.monotonic()
        while c.get(f"/v1/jobs/{first.json()['id']}").json()["status"] != "running":
            assert time.monotonic() - t0 < 10
            time.sleep(0.02)
        queued = [post(), post()]
        assert [r.status_code for r in queued] == [202, 202]
        r = post()
        assert "queue full" in _detail(r, 429) and r.headers["retry-after"] == "5"
        assert c.get("/healthz").json()["queue"] == {"queued": 2, "max": 2}
        time.sleep(0.6)
        pool.release.set()
        for q in [first] + queued:
            j = _poll(c, q.json()["id"], timeout=20)
            assert j["status"] == "failed" and "timed out after 0.5 s" in j["error"]
        # the refused request left no folder behind; the three jobs' folders go with the TTL
        assert len(list((cfg.data_dir / "jobs").iterdir())) == 3
        assert pool.cleanup(now=time.time() + 61) == 3
        assert not list((cfg.data_dir / "jobs").iterdir())
        assert "no job" in _detail(c.get(f"/v1/jobs/{first.json()['id']}"), 404)


def test_sync_request_that_fails_says_why(tmp_path):
    from fastapi.testclient import TestClient

    from latentguard.serve import ServeConfig
    from latentguard.serve.app import create_app

    cfg = ServeConfig(data_dir=tmp_path / "d", models=["zoo:vae-a"], editor="zoo:t2i", job_timeout_s=0.2)
    pool = _BlockingPool.make(cfg)
    pool.release.set()
    with TestClient(create_app(cfg, pool=pool)) as c:
        orig = pool._check_deadline
        pool._check_deadline = lambda job, phase: (time.sleep(0.3), orig(job, phase))  # noqa: E731
        r = c.post("/v1/protect", files={"image": ("a.png", png_bytes(8, 8))}, data={"wait": "10"})
        assert "timed out" in _detail(r, 504) and r.json()["status"] == "failed"


def test_cli_registers_serve(capsys):
    from latentguard.cli import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["serve", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--data-dir" in out and "127.0.0.1" in out and "--editor" in out
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.workers, args.data_dir) == ("127.0.0.1", 7860, 1, None)


def test_input_tensor_of_the_job_is_not_kept(client):
    """The queue holds paths, not decoded images: memory per queued job is its upload on disk."""
    pool = client.app.state.pool
    with pool._lock:
        jobs = list(pool._jobs.values())
    assert all(not any(isinstance(v, torch.Tensor) for v in vars(j).values()) for j in jobs)


def test_progress_is_the_engines_real_step_count(client, tmp_path):
    """Issue 22 item 10: the job reports the engine's steps (its per-step callback), not a time estimate."""
    from latentguard.serve.jobs import _P_LOAD, _P_PROTECT, Job

    r = client.post("/v1/protect", files={"image": ("s.png", png_bytes(40, 32, 5))},
                    data={"method": "pca+", "steps": "3", "wait": "0"})  # the default, fast, has no steps
    assert r.status_code == 202
    j = _poll(client, r.json()["id"])
    assert j["status"] == "done" and j["steps_done"] == j["steps"] == 3 and "progress_estimated" not in j
    job = Job(id="0" * 32, params=None, stem="s", folder=tmp_path, upload=tmp_path / "u.png")
    job.status, job.stage, job.started = "running", "protecting", time.time()
    job.steps_done, job.steps_total = 0, 4
    assert job.progress() == pytest.approx(_P_LOAD)
    job.steps_done = 3
    assert job.progress() == pytest.approx(_P_LOAD + (_P_PROTECT - _P_LOAD) * 0.75)


def test_no_measure_server_returns_the_same_png_and_null_records(client, serve_config, tmp_path):
    from fastapi.testclient import TestClient

    from latentguard.serve.app import create_app
    from latentguard.serve.jobs import WorkerPool

    cfg = serve_config.replace(data_dir=tmp_path / "bare", measure_records=False)
    form = {"method": "pca+", "eps": "8/255", "steps": "1", "model": "zoo:vae-a"}
    data = png_bytes(24, 24, seed=7)
    ref = client.post("/v1/protect", files={"image": ("a.png", data)}, data=form)
    pool = WorkerPool(cfg)
    try:
        with TestClient(create_app(cfg, pool=pool)) as bare:
            r = bare.post("/v1/protect", files={"image": ("a.png", data)}, data=form)
            assert r.status_code == 200 and ref.status_code == 200
            assert r.content == ref.content  # the same pixels, the same PNG
            f = bare.get(f"/v1/jobs/{r.headers['x-job-id']}").json()["figures"]
    finally:
        pool.stop()
    assert f["loss_before"] is None and f["kl_after"] is None and f["psnr"] > 0
