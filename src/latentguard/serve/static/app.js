// latentguard serve: the page. Uploads each image to POST /v1/protect (wait=0), polls /v1/jobs/{id}, shows results.
(function () {
  "use strict";
  const info = JSON.parse(document.getElementById("info").textContent);
  const $ = (id) => document.getElementById(id);
  const filesInput = $("files"), drop = $("drop"), button = $("protect"), results = $("results");
  const doneIds = [];
  let picked = [];

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children || []) e.appendChild(c);
    return e;
  }
  function figure(src, caption, cls) {
    return el("figure", {}, [el("img", { src: src, alt: caption, class: cls || "" }), el("figcaption", { text: caption })]);
  }
  function fmt(v, d) { return (v === null || v === undefined) ? "n/a" : Number(v).toFixed(d); }

  function updateNotes() {
    const m = info.methods.find((x) => x.name === $("method").value);
    $("method-summary").textContent = m ? (m.summary.startsWith(m.name) ? m.summary : `${m.name}: ${m.summary}`) + (m.surrogate !== "VAE" ? ` (attacks the editor pipeline ${info.editor}).` : "") : "";
    $("surrogate-note").textContent = info.notes[$("model").value] || "";
    $("model").disabled = !!(m && m.surrogate !== "VAE");
  }
  function setFiles(list) {
    picked = Array.from(list || []);
    $("drop-text").textContent = picked.length ? picked.map((f) => f.name).join(", ") : "Drop images here or click to choose";
    button.disabled = picked.length === 0;
  }
  $("eps").addEventListener("input", () => { $("eps-out").textContent = `${$("eps").value}/255`; });
  $("method").addEventListener("change", updateNotes);
  $("model").addEventListener("change", updateNotes);
  filesInput.addEventListener("change", () => setFiles(filesInput.files));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); setFiles(e.dataTransfer.files); });
  button.addEventListener("click", () => { for (const f of picked) protectOne(f); });
  updateNotes();

  function figuresTable(f) {
    const rows = [
      ["L-inf distance", `${fmt(f.linf_255, 2)}/255 (budget ${fmt(f.eps_255, 2)}/255)`],
      ["PSNR / SSIM vs input", `${fmt(f.psnr, 2)} dB / ${fmt(f.ssim, 4)}`],
      ["objective before -> after", `${fmt(f.loss_before, 4)} -> ${fmt(f.loss_after, 4)}`],
      ["KL(q(z|x) || N(0,I)) before -> after", `${fmt(f.kl_before, 1)} -> ${fmt(f.kl_after, 1)}`],
      ["size, time", `${f.width}x${f.height} px, ${fmt(f.protect_seconds, 1)} s`],
    ];
    const p = f.preview;
    if (p) {
      rows.push(["VAE reconstruction PSNR vs input: clean / protected",
        `${fmt(p.recon_clean_vs_input.psnr, 2)} / ${fmt(p.recon_protected_vs_input.psnr, 2)} dB`]);
      rows.push(["img2img PSNR vs input: clean / protected",
        `${fmt(p.edit_clean_vs_input.psnr, 2)} / ${fmt(p.edit_protected_vs_input.psnr, 2)} dB`]);
      rows.push(["img2img of protected vs of clean (PSNR / SSIM)",
        `${fmt(p.edit_protected_vs_edit_clean.psnr, 2)} dB / ${fmt(p.edit_protected_vs_edit_clean.ssim, 4)}`]);
    }
    return el("table", { class: "figs" }, rows.map(([k, v]) => el("tr", {}, [el("th", { text: k }), el("td", { text: v })])));
  }

  function showDone(card, job, localUrl) {
    card.classList.add("done");
    card.querySelector(".state").textContent = `done: ${job.params.method}, eps ${job.params.eps_label}, ${job.params.steps} steps, surrogate ${job.params.model}`;
    card.querySelector("progress").remove();
    const files = job.files;
    card.appendChild(el("div", { class: "row" }, [
      figure(localUrl, "input"),
      figure(files.result, "protected", "protected"),
      figure(files.diff, "difference (amplified to the budget)", "diff"),
    ]));
    card.appendChild(figuresTable(job.figures));
    const p = job.figures.preview;
    if (p) {
      const crop = p.crop[0] === job.figures.width && p.crop[1] === job.figures.height ? "whole image" : `central ${p.crop[0]}x${p.crop[1]} crop, pixels unchanged`;
      card.appendChild(el("div", { class: "preview" }, [
        el("h3", { text: `What the editor ${p.editor} makes of it (${crop}; img2img strength ${p.img2img.strength}, ${p.img2img.steps} steps, empty prompt)` }),
        el("div", { class: "row" }, [
          figure(files.recon_clean, "VAE reconstruction: clean"), figure(files.recon_protected, "VAE reconstruction: protected"),
          figure(files.edit_clean, "img2img: clean"), figure(files.edit_protected, "img2img: protected"),
        ]),
      ]));
    }
    const a = el("a", { class: "button download", href: `${files.result}?download=1`, download: job.name, text: `Download ${job.name}` });
    card.appendChild(el("div", { class: "actions" }, [a]));
    doneIds.push(job.id);
    $("zip").href = `/v1/zip?ids=${doneIds.join(",")}`;
    $("zip-row").hidden = false;
  }

  function showFailed(card, message) {
    card.classList.add("failed");
    card.querySelector(".state").textContent = `failed: ${message}`;
    const bar = card.querySelector("progress");
    if (bar) bar.remove();
  }

  async function poll(card, id, localUrl) {
    try {
      const r = await fetch(`/v1/jobs/${id}`);
      const job = await r.json();
      if (!r.ok) return showFailed(card, job.detail || r.statusText);
      if (job.status === "done") return showDone(card, job, localUrl);
      if (job.status === "failed") return showFailed(card, job.error);
      card.querySelector("progress").value = job.progress;
      card.querySelector(".state").textContent = `${job.status}: ${job.stage}` + (job.status === "running" ? ` (${Math.round(job.progress * 100)}%` +
        (job.stage === "protecting" && job.steps ? `, step ${job.steps_done}/${job.steps}` +
          (job.eta_s !== null ? `, ~${Math.ceil(job.eta_s)} s left` : "") : "") + ")" : "");
    } catch (err) {
      return showFailed(card, String(err));
    }
    setTimeout(() => poll(card, id, localUrl), 500);
  }

  async function protectOne(file) {
    const localUrl = URL.createObjectURL(file);
    const card = el("div", { class: "card result" }, [
      el("h2", {}, [el("span", { text: file.name }), el("span", { class: "state", text: "uploading" })]),
      el("progress", { max: "1", value: "0" }),
    ]);
    results.prepend(card);
    const fd = new FormData();
    fd.append("image", file, file.name);
    fd.append("method", $("method").value);
    fd.append("eps", `${$("eps").value}/255`);
    fd.append("steps", $("steps").value);
    fd.append("model", $("model").value);
    fd.append("preview", $("preview").checked ? "true" : "false");
    fd.append("wait", "0");
    try {
      const r = await fetch("/v1/protect", { method: "POST", body: fd });
      const body = await r.json();
      if (r.status !== 202 && r.status !== 200) return showFailed(card, body.detail || r.statusText);
      poll(card, body.id, localUrl);
    } catch (err) {
      showFailed(card, String(err));
    }
  }
})();
