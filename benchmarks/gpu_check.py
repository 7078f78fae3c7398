"""GPU path check, on a CUDA machine, in about a minute: LoRA training through ealign's own loop on a
random-init model with Qwen2-0.5B's shape (built from a config object, nothing downloaded) in bf16,
reporting tokens/s and MFU; then generation for several LoRA adapters (and the base) in one mixed batch
through PEFT's `adapter_names=` against one adapter at a time, same prompts, with the ratio and how
many rows decode identically. On a machine without CUDA it prints one line and exits 0.

    python benchmarks/gpu_check.py [--steps 20] [--batch-size 8] [--seq-len 512] [--adapters 4]
        [--prompts-per-model 16] [--max-new-tokens 32] [--peak-tflops N] [--smoke]

MFU = 6 * N * tokens/s / peak bf16 dense FLOP/s, N = every parameter of the base model (the usual
convention; a LoRA step skips the frozen weights' gradients, about 4 * N per token, also printed).
The peak comes from the device name (H200, H100 SXM/PCIe/NVL, A100, L40S, L4, B200) or --peak-tflops.
--smoke runs the same code on a tiny shape, on CPU when there is no CUDA, to test the script itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

# Qwen2-0.5B's architecture (config.json of Qwen/Qwen2-0.5B), weights random.
QWEN2_05B = dict(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)
# Dense bf16 peak TFLOP/s by device name (vendor datasheets, without sparsity); first match wins.
PEAK_BF16_TFLOPS = [
    ("h200", 989.4),
    ("h100 pcie", 756.0),
    ("h100 nvl", 835.0),
    ("h100", 989.4),
    ("h800", 989.4),
    ("a100", 312.0),
    ("a800", 312.0),
    ("l40s", 362.1),
    ("l4", 121.0),
    ("b200", 2250.0),
]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def peak_tflops(device_name: str) -> float | None:
    name = device_name.lower()
    return next((v for k, v in PEAK_BF16_TFLOPS if k in name), None)


def build_model(shape: dict, dtype, device: str, out: Path) -> tuple[Path, int]:
    """A random-init Qwen2 of the given shape saved as a plain HF folder; (path, parameter count)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    cfg = Qwen2Config(**shape, pad_token_id=0, bos_token_id=None, eos_token_id=None)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out)
    del model
    return out, n_params


def check_training(path: Path, args, dtype_name: str, device: str, n_params: int) -> None:
    """LoRA steps through ealign's training loop (the adapters asset's code path)."""
    import random

    from ealign_dagster.core.config import TrainConfig
    from ealign_dagster.training.lora import train

    rng = random.Random(0)
    vocab = args.shape["vocab_size"]
    # Random token sequences of full length; the loss covers the second half (the "assistant reply").
    examples = [
        ([rng.randrange(1, vocab) for _ in range(args.seq_len)], args.seq_len // 2)
        for _ in range(args.batch_size * args.steps)
    ]
    cfg = TrainConfig(
        rank=16,
        alpha=32,
        dropout=0.0,
        target_modules=TARGETS,
        scheduler="constant",
        warmup_ratio=0.0,
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.seq_len,
        checkpoint_every=0,
        dtype=dtype_name,
    )
    out = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    res = train(str(path), examples, cfg, out / "adapter", out / "ckpt", log=lambda m: None, pad_id=0)
    warm = min(args.warmup_steps, args.steps - 1)
    secs = res.log[-1]["seconds"] - res.log[warm - 1]["seconds"] if warm else res.log[-1]["seconds"]
    steps = args.steps - warm
    tokens_per_s = steps * args.batch_size * args.seq_len / secs
    print(
        f"training: {n_params / 1e6:.1f}M parameters, LoRA r=16 on {len(TARGETS)} projections, {res.dtype} on "
        f"{res.device}, batch {args.batch_size} x {args.seq_len} tokens: {secs / steps:.3f} s/step, "
        f"{tokens_per_s:,.0f} tokens/s, peak memory {res.peak_memory_mb:,.0f} MB, final loss {res.log[-1]['loss']:.3f}"
    )
    peak = args.peak_tflops
    if peak is None and device == "cuda":
        import torch

        peak = peak_tflops(torch.cuda.get_device_name())
    if peak:
        mfu = 6 * n_params * tokens_per_s / (peak * 1e12)
        lora = 4 * n_params * tokens_per_s / (peak * 1e12)
        print(f"MFU {mfu * 100:.1f}% (6*N*tokens/s over {peak:g} TFLOP/s bf16 peak); with 4*N (LoRA) {lora * 100:.1f}%")
    else:
        print("MFU: unknown peak for this device; pass --peak-tflops")


def check_shared_batch(path: Path, args, dtype, device: str) -> None:
    """Greedy generation for the base and K adapters: one mixed batch (PEFT adapter_names, one row per
    prompt and model) against one model at a time, same left-padded prompts, tokens/s and the ratio."""
    import random

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device)
    names = [f"a{i}" for i in range(args.adapters)]
    # init_lora_weights=False: random B, so every adapter changes the outputs
    lcfg = LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS, init_lora_weights=False, task_type="CAUSAL_LM")
    model = get_peft_model(base, lcfg, adapter_name=names[0])
    for n in names[1:]:
        model.add_adapter(n, lcfg)
    model.eval()
    models = ["__base__", *names]

    rng = random.Random(1)
    vocab, p = args.shape["vocab_size"], args.prompts_per_model
    lengths = [rng.randrange(args.prompt_len // 2, args.prompt_len + 1) for _ in range(p)]
    prompts = [[rng.randrange(1, vocab) for _ in range(n)] for n in lengths]
    width = max(lengths)  # one padding for both paths, so each row sees the same positions
    ids = torch.zeros((p, width), dtype=torch.long)
    attn = torch.zeros((p, width), dtype=torch.long)
    for i, seq in enumerate(prompts):
        ids[i, width - len(seq) :] = torch.tensor(seq)
        attn[i, width - len(seq) :] = 1
    ids, attn = ids.to(device), attn.to(device)
    gen = dict(max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=0)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def one_model(name):
        model.set_adapter(names[0] if name == "__base__" else name)
        if name == "__base__":
            with model.disable_adapter():
                return model.generate(input_ids=ids, attention_mask=attn, **gen)[:, width:]
        return model.generate(input_ids=ids, attention_mask=attn, **gen)[:, width:]

    def mixed():
        rows = [m for m in models for _ in range(p)]
        return model.generate(
            input_ids=ids.repeat(len(models), 1), attention_mask=attn.repeat(len(models), 1), adapter_names=rows, **gen
        )[:, width:]

    with torch.inference_mode():
        one_model(names[0])  # warm-up: kernels, allocator
        mixed()
        sync()
        t0 = time.perf_counter()
        separate = torch.cat([one_model(m) for m in models])
        sync()
        t1 = time.perf_counter()
        together = mixed()
        sync()
        t2 = time.perf_counter()
    tokens = len(models) * p * args.max_new_tokens
    same = int((separate == together).all(dim=1).sum())
    print(
        f"shared-batch evaluation: base + {args.adapters} adapters x {p} prompts ({width} tokens max), "
        f"{args.max_new_tokens} new tokens each, greedy"
    )
    print(f"  one model at a time: {tokens / (t1 - t0):,.0f} tokens/s ({t1 - t0:.2f} s)")
    print(f"  one mixed batch (adapter_names): {tokens / (t2 - t1):,.0f} tokens/s ({t2 - t1:.2f} s)")
    print(f"  ratio mixed/one-at-a-time: {(t1 - t0) / (t2 - t1):.2f}x; rows decoded identically {same}/{len(separate)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup-steps", type=int, default=3, help="first steps left out of the timing")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--adapters", type=int, default=4)
    ap.add_argument("--prompts-per-model", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=256, help="longest prompt; lengths vary down to half")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--peak-tflops", type=float, help="the device's bf16 dense peak, if its name is not known")
    ap.add_argument("--smoke", action="store_true", help="tiny shape and sizes; on CPU when there is no CUDA")
    args = ap.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print("gpu_check: no CUDA device here; nothing to check (run it on a GPU machine, or --smoke to test it)")
        return
    args.shape = QWEN2_05B
    if args.smoke:
        from ealign_dagster.core.models import TINY_CONFIG

        args.shape = dict(TINY_CONFIG, vocab_size=1024)  # the tests' tiny shape, a small vocabulary
        args.steps, args.batch_size, args.seq_len, args.warmup_steps = 4, 2, 64, 1
        args.prompts_per_model, args.prompt_len, args.max_new_tokens = 4, 16, 8
    device = "cuda" if cuda else "cpu"
    dtype_name = "bfloat16" if cuda else "float32"  # bf16 matmuls on a CPU without native support crawl
    dtype = getattr(torch, dtype_name)
    name = torch.cuda.get_device_name() if cuda else "cpu"
    print(
        f"gpu_check on {name}, torch {torch.__version__}, {dtype_name}, shape {'tiny' if args.smoke else 'Qwen2-0.5B'}"
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-model-") as tmp:
        path, n_params = build_model(args.shape, dtype, device, Path(tmp) / "model")
        if cuda:
            torch.cuda.empty_cache()
        check_training(path, args, dtype_name, device, n_params)
        if cuda:
            torch.cuda.empty_cache()
        check_shared_batch(path, args, dtype, device)
    print(f"gpu_check done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
