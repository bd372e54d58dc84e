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
        longest = tf.reduce_max(tf.reduce_sum(tf.cast(x["padding_mask"], tf.int32), axis=1))
        x = {k: x[k][:, :longest] for k in ("token_ids", "padding_mask", "segment_ids")}  # no all-padding columns
        tokens = backbone(x)["sequence_output"]
        mask = tf.cast(x["padding_mask"], tokens.dtype)[:, :, None]
        pooled = tf.reduce_sum(tokens * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        return tf.math.l2_normalize(pooled, axis=1)  # mean pooling, as all-MiniLM-L6-v2 is meant to be used

    return encode


def embed(texts: list[str], base: str, max_seq_len: int = 64, batch_size: int = 128) -> np.ndarray:
    """One L2-normalised vector per text, in the order given. Texts are batched by length, and a
    batch is cut to its longest text, so short copy costs little (the padding is masked: the
    vectors are those of a fixed-length batch)."""
    import tensorflow as tf

    encode = _encoder(base, max_seq_len)
    order = np.argsort([len(t) for t in texts], kind="stable")
    parts = [encode(tf.constant([texts[i] for i in order[lo:lo + batch_size]])).numpy()
             for lo in range(0, len(texts), batch_size)]
    if not parts:
        return np.zeros((0, 384), np.float32)
    vectors = np.empty((len(texts), parts[0].shape[1]), np.float32)
    vectors[order] = np.concatenate(parts)
    return vectors
