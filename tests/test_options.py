"""Likert option log-probabilities: whole multi-token options on a SentencePiece-style tokenizer (local
backend), every spelling of an option and options out of the top-k (endpoint backend)."""

import numpy as np
import pytest

from ealign_dagster.core.config import ModelConfig
from ealign_dagster.persona.items import LIKERT, expected_likert
from tests.fake_endpoint import Endpoint

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _sentencepiece_tokenizer():
    """Like Llama-2's and Mistral's: a Unigram model behind a Metaspace pre-tokenizer that marks every
    word's start with '▁', with no '▁1'..'▁5' pieces, so "4" encodes as ['▁', '4']."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]
    chars = "12345abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,?!:;\"'()=-\n"
    words = ("the", "agree", "statement", "how", "much", "do", "you", "with", "this")
    vocab = [(s, 0.0) for s in specials] + [("▁", -2.0)] + [(c, -5.0) for c in chars]
    tk = Tokenizer(models.Unigram(vocab + [("▁" + w, -3.0) for w in words], unk_id=0, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tk.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=specials[4:],
    )
    tok.chat_template = TEMPLATE
    return tok


@pytest.fixture(scope="module")
def sp_chat(tmp_path_factory):
    """A tiny random Llama behind the SentencePiece-style tokenizer, loaded like a user's HF folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ealign_dagster.core.chat import LocalChat
    from ealign_dagster.core.paths import Home

    folder = tmp_path_factory.mktemp("sp-model")
    tok = _sentencepiece_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.3,  # far from uniform: options differ clearly
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return LocalChat(ModelConfig(model=str(folder)), Home.at(tmp_path_factory.mktemp("sp-home")))


PROMPTS = [
    [{"role": "user", "content": q}]
    for q in (
        "How much do you agree with this statement? 1 to 5",
        "ok",
        "Do you agree with the statement: the sea is wet. Reply 1, 2, 3, 4 or 5.",
        "agree?",
    )
]


def _brute_force(chat, prompt, option) -> float:
    """log p(option | prompt) from one plain forward over the whole prompt + option sequence."""
    import torch

    head = chat.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    n = len(chat.tokenizer(head, add_special_tokens=False)["input_ids"])
    ids = torch.tensor([chat.tokenizer(head + option, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        logp = torch.log_softmax(chat.model(input_ids=ids).logits[0, :-1].float(), -1)
    return float(logp[n - 1 :].gather(-1, ids[0, n:, None]).sum())


def test_sentencepiece_options_are_scored_by_their_whole_tokens(sp_chat):
    tok = sp_chat.tokenizer
    # (a) The old code scored each option by its FIRST token: every Likert option starts with '▁' here,
    # so its five columns were one and the same column, every expected Likert exactly 3, every persona
    # score 0.
    assert [tok.convert_ids_to_tokens(tok(o, add_special_tokens=False)["input_ids"]) for o in LIKERT] == [
        ["▁", o] for o in LIKERT
    ]
    assert len({tok(o, add_special_tokens=False)["input_ids"][0] for o in LIKERT}) == 1
    lp = sp_chat.option_logprobs(PROMPTS, LIKERT)
    assert lp.shape == (len(PROMPTS), 5) and np.isfinite(lp).all() and (lp < 0).all()
    # (b) five distinct columns, each the brute-force log-probability of the option's two tokens
    assert all(len(np.unique(np.round(row, 4))) == 5 for row in lp)
    brute = [[_brute_force(sp_chat, p, o) for o in LIKERT] for p in PROMPTS]
    assert lp == pytest.approx(np.array(brute), abs=1e-4)
    # here prompt + option splits at the seam, so `logprobs` of the option as a completion agrees too
    assert lp[0] == pytest.approx(sp_chat.logprobs([PROMPTS[0]] * 5, LIKERT), abs=1e-4)
    expected, mass = expected_likert(lp)
    assert not np.allclose(expected, 3.0) and ((mass > 0) & (mass < 1)).all()


def test_option_scores_batched_equal_one_at_a_time(sp_chat):
    """Left padding of the prefill and right padding of options of unequal lengths change nothing."""
    options = ["1", "5", "I agree", "no"]
    batched = sp_chat.option_logprobs(PROMPTS, options, batch_size=4)
    alone = np.concatenate([sp_chat.option_logprobs([p], options, batch_size=1) for p in PROMPTS])
    assert batched == pytest.approx(alone, abs=1e-4)
    assert batched[2] == pytest.approx([_brute_force(sp_chat, PROMPTS[2], o) for o in options], abs=1e-4)


def test_options_with_the_same_tokens_are_refused(sp_chat):
    # neither character is in the vocabulary: both options are ['▁', '<unk>']
    with pytest.raises(ValueError, match=r"options 'é' and 'ü' are the same tokens .* under tokenizer .*sp-model"):
        sp_chat.option_logprobs(PROMPTS[:1], ["1", "é", "ü"])


def _endpoint_chat(url, paths):
    from ealign_dagster.core.openai_chat import OpenAIChat

    return OpenAIChat(ModelConfig(backend="openai", model="m", base_url=url, max_retries=0), paths)


def test_endpoint_option_spellings_add_up(paths):
    """'4' and ' 4' are the same answer: the old code kept whichever came last (here the less likely
    ' 4', -2.0) instead of p('4') + p(' 4')."""
    with Endpoint() as ep:
        ep.top_logprobs = lambda body: [("4", -0.5), ("5", -1.5), (" 4", -2.0), ("4\n", -4.0), ("The", -5.0)]
        lp = _endpoint_chat(ep.url, paths).option_logprobs([[{"role": "user", "content": "q"}]], LIKERT)
    assert np.exp(lp[0, 3]) == pytest.approx(np.exp(-0.5) + np.exp(-2.0) + np.exp(-4.0))
    assert lp[0, 4] == pytest.approx(-1.5) and np.isneginf(lp[0, [0, 1, 2]]).all()


def test_endpoint_prompts_without_any_option_are_reported(paths):
    """A prompt with no option in the top-k is a row of -inf (no option mass) and is counted in one log
    line per call; the old code returned the same row silently."""
    lines = []
    with Endpoint() as ep:
        ep.top_logprobs = lambda body: (
            {"The": -0.1, "I": -1.0} if "none" in body["messages"][-1]["content"] else {"2": -0.2, " 2": -0.3}
        )
        prompts = [[{"role": "user", "content": q}] for q in ("none a", "some", "none b")]
        lp = _endpoint_chat(ep.url, paths).option_logprobs(prompts, LIKERT, log=lines.append)
    assert len(lines) == 1 and "2/3 prompts had none of the options" in lines[0]
    assert np.isneginf(lp[[0, 2]]).all() and np.isfinite(lp[1, 1])
    assert expected_likert(lp)[1].tolist() == pytest.approx([0.0, np.exp(-0.2) + np.exp(-0.3), 0.0])
