import polars as pl

from ealign_dagster.cai.sft import build_sft
from ealign_dagster.core.config import SftConfig


class WordTokenizer:
    """Whitespace tokens; the chat template just tags each turn."""

    def apply_chat_template(self, messages, tokenize=False):
        return " ".join(f"<{m['role']}> {m['content']}" for m in messages)

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def test_sft_keeps_one_selected_revision_per_training_prompt_and_counts_the_rest():
    train = pl.DataFrame({"prompt_id": ["p4", "p0", "p1", "p2", "p3"], "category": ["c"] * 5})
    revisions = pl.DataFrame(
        {
            "prompt_id": ["p0", "p1", "p2", "p3", "p4", "p9"],
            "selected": [True, True, False, True, True, True],
            "prompt": ["q0", "q1", "q2", "q3", "q4", "q9"],
            # p1 repeats p0's reply up to what str.strip() removes (\x1f included): a template, left out
            "revision": ["Same answer.", "  Same answer.\x1f", "not selected", "one", "a fine answer", "untrained"],
            "principle_id": ["a", "b", "c", "d", "e", "f"],
        }
    )
    cfg = SftConfig(min_tokens=2, max_tokens=20)
    rows, counts = build_sft("virtue", "broad", train, revisions, WordTokenizer(), cfg)
    assert rows["prompt_id"].to_list() == ["p4", "p0"]  # training order
    assert rows.row(0, named=True) == {
        "constitution": "virtue",
        "scope": "broad",
        "prompt_id": "p4",
        "category": "c",
        "prompt": "q4",
        "response": "a fine answer",
        "principle_id": "e",
        "n_tokens": 6,
        "response_tokens": 3,
    }
    assert counts == {"no_accepted_revision": 1, "duplicate_response": 1, "token_length": 1}
