"""Sentence embeddings of ad copy from the pretrained base (no adapter): the space in which
embedding drift is measured, the same for every champion, so windows stay comparable."""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=2)
def _encoder(base: str, max_seq_len: int):
    import keras_hub
    import tensorflow as tf

    from ml.training.model import base_path

    preset = base_path(base)
    backbone = keras_hub.models.BertBackbone.from_preset(preset)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        keras_hub.models.BertTokenizer.from_preset(preset), sequence_length=max_seq_len)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode(texts):
        x = preprocessor(texts)
        tokens = backbone({k: x[k] for k in ("token_ids", "padding_mask", "segment_ids")})["sequence_output"]
        mask = tf.cast(x["padding_mask"], tokens.dtype)[:, :, None]
        pooled = tf.reduce_sum(tokens * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        return tf.math.l2_normalize(pooled, axis=1)  # mean pooling, as all-MiniLM-L6-v2 is meant to be used

    return encode


def embed(texts: list[str], base: str, max_seq_len: int = 64, batch_size: int = 128) -> np.ndarray:
    import tensorflow as tf

    encode = _encoder(base, max_seq_len)
    parts = [encode(tf.constant(texts[lo:lo + batch_size])).numpy() for lo in range(0, len(texts), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 384), np.float32)
