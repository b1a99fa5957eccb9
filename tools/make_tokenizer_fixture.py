"""Regenerate the small byte-level BPE fixture used by `tests/test_tokenizer.py`.

Uses only the `tokenizers` library (not tf_longformer), so the fixture is an independent reference:

    python tools/make_tokenizer_fixture.py [OUT_DIR]   # default: tests/fixtures/tokenizer

Writes vocab.json + merges.txt (the classic RoBERTa/Longformer pair), tokenizer.json (the same model with the
RoBERTa pipeline: byte-level pre-tokenizer and decoder, RobertaProcessing, `<mask>` with lstrip) and a
tokenizer_config.json. Training is deterministic for a fixed corpus and `tokenizers` version.
"""

from __future__ import annotations

import json
import os
import sys

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

CORPUS = [
    "The Longformer is a transformer model for long documents. It combines a local windowed attention "
    "with a task motivated global attention, so the cost grows linearly with the sequence length.",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who told stories "
    "to the children every evening. They would sit on the warm sand and listen until the stars came out.",
    "Il était une fois une élève très curieuse qui aimait les mathématiques, la musique et le théâtre. "
    "Où est la bibliothèque ? Ça dépend de la façon dont on cherche.",
    "Der schnelle braune Fuchs springt über den faulen Hund. Grüße aus München und Köln!",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다。",
    "Emoji are everywhere now 😀🎉🚀 and people use them 👍 in almost every message ❤️.",
    "def train(model, data):\n\tfor batch in data:\n\t\tloss = model(batch)\n\t\tloss.backward()\n    return model",
    "Numbers like 3.14159, 2,718 and 1e-12 appear in papers; prices were $12.50 or €9,99 in 2023.",
    "Questions? Answers! Don't stop, we're nearly there -- isn't it great? I'm sure you'll agree.",
    "Whitespace   runs,\ttabs,\n\nnewlines and    trailing spaces   are part of real text too.",
]


def build(vocab_size: int = 400) -> Tokenizer:
    tok = Tokenizer(models.BPE(dropout=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 3, trainer=trainer)
    tok.add_special_tokens(
        [
            AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=True)
            for t in ("<s>", "<pad>", "</s>", "<unk>")
        ]
        + [AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)]
    )
    tok.post_processor = processors.RobertaProcessing(
        sep=("</s>", tok.token_to_id("</s>")),
        cls=("<s>", tok.token_to_id("<s>")),
        trim_offsets=True,
        add_prefix_space=False,
    )
    return tok


def main(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    tok = build()
    tok.model.save(out_dir)  # vocab.json, merges.txt
    tok.save(os.path.join(out_dir, "tokenizer.json"), pretty=True)
    config = {"model_max_length": 4096, "add_prefix_space": False, "trim_offsets": True}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    print(f"wrote {out_dir}: vocab size {tok.get_vocab_size()}")


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tokenizer")
    )
