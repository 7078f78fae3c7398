"""Log-probability scoring on the local backend: completions, answer options and the next token,
each after a chat prompt, with the adapter the call names (LocalChat switches or merges it)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


class LocalScoring:
    """Mixed into LocalChat: uses its tokenizer, model, device and activate()."""

    def logprobs(
        self, prompts: list[list[dict]], completions: list[str], batch_size: int = 8, adapter: str | None = None
    ) -> list[float]:
        """Sum of log-probabilities of each completion after its chat prompt."""
        import torch

        self.activate(adapter)
        out = []
        for b in range(0, len(prompts), batch_size):
            heads = [
                self.tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                for p in prompts[b : b + batch_size]
            ]
            head_ids = [self.tokenizer(h, add_special_tokens=False)["input_ids"] for h in heads]
            tail_ids = [
                self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in completions[b : b + batch_size]
            ]
            seqs = [h + t for h, t in zip(head_ids, tail_ids)]
            width = max(map(len, seqs))
            pad = self.tokenizer.pad_token_id
            ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=self.device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=self.device)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
            for j, (h, t) in enumerate(zip(head_ids, tail_ids)):
                out.append(float(logp[j, len(h) - 1 : len(h) - 1 + len(t)].sum()))
        return out

    def option_logprobs(
        self, prompts: list[list[dict]], options: list[str], batch_size: int = 16, adapter: str | None = None, log=None
    ) -> np.ndarray:
        """Log-probability of each option as the reply's start, one row per prompt: the sum over all its tokens
        after the chat prompt (SentencePiece spells "4" as '▁' '4': first tokens alike). Per batch, one prefill of
        the left-padded prompts; longer options go on from a copy of its cache. `log`: unused (the endpoint's)."""
        import numpy as np
        import torch

        self.activate(adapter)
        pad, out = self.tokenizer.pad_token_id, []
        for b in range(0, len(prompts), batch_size):
            heads = [
                self.tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                for p in prompts[b : b + batch_size]
            ]
            head_ids = [self.tokenizer(h, add_special_tokens=False)["input_ids"] for h in heads]
            tails = [self._option_tokens(h, hi, options) for h, hi in zip(heads, head_ids)]  # [row][option]
            width, n = max(map(len, head_ids)), len(heads)
            ids = torch.tensor([[pad] * (width - len(s)) + s for s in head_ids], device=self.device)
            mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in head_ids], device=self.device)
            scores = torch.zeros(n, len(options), device=self.device)
            with torch.inference_mode():
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                prefill = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1
                )
                first = torch.log_softmax(prefill.logits[:, -1].float(), dim=-1)
                for k in range(len(options)):
                    m = max(len(t[k]) for t in tails)  # option k's tokens, right-padded
                    opt = torch.tensor([t[k] + [pad] * (m - len(t[k])) for t in tails], device=self.device)
                    scores[:, k] = first.gather(-1, opt[:, :1])[:, 0]
                    if m == 1:
                        continue
                    # feed all tokens but the last: position j predicts token j + 1
                    fed = torch.tensor([[1] * (len(t[k]) - 1) + [0] * (m - len(t[k])) for t in tails]).to(opt)
                    logits = self.model(
                        input_ids=opt[:, :-1],
                        attention_mask=torch.cat([mask, fed], dim=1),
                        position_ids=mask.sum(-1, keepdim=True) + torch.arange(m - 1, device=self.device),
                        cache=copy.deepcopy(prefill.cache),
                    ).logits
                    lp = torch.log_softmax(logits.float(), dim=-1).gather(-1, opt[:, 1:, None])[..., 0]
                    scores[:, k] += (lp * fed).sum(-1)
            out.append(scores.cpu().numpy().astype(float))
        return np.concatenate(out) if out else np.zeros((0, len(options)))

    def next_token_logprobs(
        self, prompts: list[list[dict]], k: int = 5, adapter: str | None = None, batch_size: int = 16
    ) -> list[dict[str, float]]:
        """The k most likely first reply tokens after each chat prompt, as {decoded token: log-prob}
        (what an endpoint's top_logprobs return): one left-padded forward pass per batch."""
        import numpy as np
        import torch

        self.activate(adapter)
        pad, out = self.tokenizer.pad_token_id, []
        for b in range(0, len(prompts), batch_size):
            rows = [self.tokenizer(self.tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False),
                                   add_special_tokens=False)["input_ids"] for p in prompts[b : b + batch_size]]  # fmt: skip
            width = max(map(len, rows))
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
            with torch.inference_mode():
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = (
                    self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1)
                    .logits[:, -1]
                    .float()
                )
            top = torch.log_softmax(logits, dim=-1).topk(k, dim=-1)
            for values, idx in zip(top.values.tolist(), top.indices.tolist()):
                d: dict[str, float] = {}
                for v, i in zip(values, idx):  # two ids can decode alike: their probabilities add
                    t = self.tokenizer.decode([i])
                    d[t] = float(np.logaddexp(d[t], v)) if t in d else v
                out.append(d)
        return out

    def _option_tokens(self, head: str, head_ids: list[int], options: list[str]) -> list[list[int]]:
        """Each option's tokens after a chat prompt: those of prompt + option past the prompt's own or,
        where the two merge at the seam, the option's alone (as `logprobs` takes completions)."""
        full = self.tokenizer([head + o for o in options], add_special_tokens=False)["input_ids"]
        alone = self.tokenizer(options, add_special_tokens=False)["input_ids"]
        tails = [f[len(head_ids) :] if f[: len(head_ids)] == head_ids else a for f, a in zip(full, alone)]
        seen: dict[tuple[int, ...], str] = {}
        for o, t in zip(options, tails):
            if not t or tuple(t) in seen:
                raise ValueError(
                    f"options {seen.get(tuple(t), '')!r} and {o!r} are the same tokens {t} after the chat prompt "
                    f"under tokenizer {self.tokenizer.name_or_path}: their log-probabilities cannot be told apart"
                )
            seen[tuple(t)] = o
        return tails
