"""Prompt cleaning, tokenizer padding/truncation against transformers, and the embedding cache."""

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

from cos_jax.wan.text import PromptCache, PromptTokenizer, clean_prompt

CORPUS = ["a red ball bounces off the wall", "solve the maze from the green start", "the clock hand turns"] * 20


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory):
    """A small unigram tokenizer with T5's conventions (<pad>=0, </s>=1 appended), saved like a checkpoint's."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=80, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    folder = tmp_path_factory.mktemp("tokenizer")
    tok.save(str(folder / "tokenizer.json"))
    return folder


def test_cleaning_fixes_mojibake_html_and_whitespace():
    assert clean_prompt("  the  ball \n is\tred ") == "the ball is red"
    assert clean_prompt("fish &amp;amp; chips") == "fish & chips"  # unescaped twice
    assert clean_prompt("&lt;b&gt;bold&lt;/b&gt;") == "<b>bold</b>"
    assert clean_prompt("schÃ¶n") == "schön"  # ftfy repairs mojibake


@pytest.mark.parametrize("max_length", [12, 64])
def test_tokenizer_matches_transformers(tokenizer_folder, max_length):
    from transformers import PreTrainedTokenizerFast

    ref = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_folder / "tokenizer.json"), pad_token="<pad>",
                                  eos_token="</s>", unk_token="<unk>")  # fmt: skip
    prompts = ["a red ball &amp; the wall", "Solve  the maze\nfrom the green start " * 3, "ünïcödé clock"]
    ids, mask = PromptTokenizer(tokenizer_folder, max_length=max_length)(prompts)
    expected = ref([clean_prompt(p) for p in prompts], padding="max_length", max_length=max_length, truncation=True,
                   add_special_tokens=True, return_tensors="np")  # fmt: skip
    np.testing.assert_array_equal(ids, expected["input_ids"])
    np.testing.assert_array_equal(mask, expected["attention_mask"])
    lengths = mask.sum(1)
    assert all(ids[i, lengths[i] - 1] == 1 for i in range(3))  # </s> closes every prompt, even truncated ones
    assert (ids[mask == 0] == 0).all()


def test_missing_tokenizer_file_is_explained(tmp_path):
    (tmp_path / "spiece.model").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"no tokenizer.json .*spiece.model"):
        PromptTokenizer(tmp_path)


def test_cache_encodes_each_prompt_once(tmp_path):
    calls = []

    def encode(prompts):
        calls.append(list(prompts))
        return np.stack([np.full((4, 3), len(p), np.float32) for p in prompts])

    cache = PromptCache(tmp_path, encoder_id="tiny-umt5")
    first = cache.get_or_compute(["ab", "abc", "ab"], encode)
    again = PromptCache(tmp_path, encoder_id="tiny-umt5").get_or_compute(["abc", " ab "], encode)
    assert calls == [["ab", "abc"]]  # " ab " cleans to "ab": a cache hit
    np.testing.assert_array_equal(again, first[[1, 0]])
    other = PromptCache(tmp_path, encoder_id="other-encoder")
    other.get_or_compute(["ab"], encode)
    assert len(calls) == 2 and not list(tmp_path.glob("*.tmp"))
