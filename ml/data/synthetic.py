"""Seeded synthetic creative data: a product catalog, rendered product images, ad copy with
engagement outcomes from a hidden ground-truth process, and a realistic share of problems.

``generate(seed, n, ...)`` returns a :class:`SyntheticSource` layout: the same files a stock
export or agency delivery would contain (asset files, ``metadata.jsonl``, ``copy.jsonl``).
Images are rendered lazily, so ten thousand 512×512 images never sit in memory together.
The hidden truth (true click-through rate, brand-voice fit, engagement class) is kept apart
from the data in :attr:`SyntheticData.truth`, so later stages can be checked against it.
"""
from __future__ import annotations

import io as _io
import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

INDUSTRIES = {
    "fashion": ["jacket", "sneakers", "dress", "scarf"],
    "home": ["lamp", "sofa", "vase", "blanket"],
    "electronics": ["headphones", "speaker", "smartwatch", "laptop"],
}

# Each brand has a voice: words it uses. Copy that borrows another voice or the generic
# hard-sell phrases below is off voice.
BRANDS = {
    "Atelier Nord": ("fashion", (40, 44, 52), ["crafted", "timeless", "tailored", "quiet", "refined"]),
    "Street Pulse": ("fashion", (230, 57, 70), ["bold", "fresh", "drop", "loud", "hyped"]),
    "Maison Verte": ("home", (106, 153, 78), ["cozy", "natural", "handmade", "calm", "warm"]),
    "Casa Bright": ("home", (255, 183, 3), ["easy", "bright", "smart", "family", "cheerful"]),
    "Voltix": ("electronics", (33, 158, 188), ["engineered", "precise", "fast", "powerful", "pro"]),
    "Nimbus Audio": ("electronics", (94, 84, 142), ["immersive", "pure", "studio", "deep", "feel"]),
}
OFF_VOICE = ["cheapest ever", "BUY NOW!!!", "crazy deals", "limited time only!!!", "insane prices"]
CHANNELS = ["social", "search", "display", "email"]
AUDIENCES = ["new_visitors", "returning_customers", "lookalike", "loyalty_members"]
CTAS = {"Shop now": 0.25, "Discover": 0.1, "Learn more": -0.1, "Get yours": 0.2, "See the collection": 0.05}
CHANNEL_BASE = {"social": -4.0, "search": -3.2, "display": -5.0, "email": -3.6}
AUDIENCE_EFFECT = {"new_visitors": -0.2, "returning_customers": 0.35, "lookalike": -0.05, "loyalty_members": 0.5}
ENGAGEMENT_CUTS = (0.02, 0.045)  # true CTR below / between / above: negative, neutral, positive

IMAGE_LICENCES = [  # (licence, origin, share)
    ("owned", "owned", 0.30),
    ("CC0-1.0", "open", 0.12),
    ("CC-BY-4.0", "open", 0.12),
    ("CC-BY-SA-4.0", "open", 0.04),
    ("unsplash", "stock", 0.08),
    ("pexels", "stock", 0.05),
    ("rights-managed", "stock", 0.13),
    ("CC-BY-NC-4.0", "open", 0.04),
    ("CC-BY-ND-4.0", "open", 0.03),
    ("agency-custom-v2", "stock", 0.02),  # not in the registry: licence_unknown
    ("owned", "user_generated", 0.07),
]
COPY_LICENCES = [
    ("owned", "owned", 0.86),
    ("rights-managed", "stock", 0.07),
    ("CC-BY-NC-4.0", "open", 0.03),
    ("agency-custom-v2", "stock", 0.02),
    ("owned", "user_generated", 0.02),
]


@dataclass
class SyntheticData:
    """A virtual source folder: ``files`` maps a relative path to a zero-argument renderer."""

    files: dict = field(default_factory=dict)
    truth: dict = field(default_factory=dict)

    def read(self, rel: str) -> bytes:
        item = self.files[rel]
        return item() if callable(item) else item

    def write_to(self, folder) -> None:
        """Materialise the layout in a real folder (for the demo, S3 uploads and tests)."""
        from pathlib import Path

        root = Path(folder)
        for rel in sorted(self.files):
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.read(rel))


def _pick(rng: np.random.Generator, table):
    shares = np.array([row[-1] for row in table], dtype=float)
    return table[int(rng.choice(len(table), p=shares / shares.sum()))][:-1]


def render_product_image(seed: int, index: int, brand: str, product: str, size: int, fmt: str) -> bytes:
    """A deterministic product shot: brand-coloured backdrop, a product silhouette, a caption."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, index, 7])
    colour = np.array(BRANDS[brand][1], dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)  # direction of the backdrop's light ramp
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    ramp = (0.55 + 0.45 * ((np.cos(angle) * xx + np.sin(angle) * yy) % 1.0))[:, :, None]
    noise = rng.normal(0, 6, (size, size, 1)).astype(np.float32)
    pixels = np.clip(colour[None, None, :] * ramp + 60 * (1 - ramp) + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 5))):  # props around the product: every shot is composed differently
        px, py, pr = (int(v) for v in (rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0.05, 0.2) * size))
        draw.ellipse((px - pr, py - pr, px + pr, py + pr), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    cx, cy = (int(size * rng.uniform(0.3, 0.7)) for _ in range(2))
    r = int(size * rng.uniform(0.15, 0.3))
    fill = tuple(int(v) for v in rng.integers(150, 255, 3))
    shape = list(INDUSTRIES[BRANDS[brand][0]]).index(product) % 3
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == 0:
        draw.rounded_rectangle(box, radius=r // 4, fill=fill)
    elif shape == 1:
        draw.ellipse(box, fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    draw.text((size // 16, size - size // 8), f"{brand} · {product}", fill=(255, 255, 255))
    buf = _io.BytesIO()
    if fmt == "png":
        img.save(buf, format="PNG", optimize=False, compress_level=1)
    else:
        img.save(buf, format="JPEG", quality=88)
    return buf.getvalue()


def resized_copy(image_bytes: bytes, scale: float = 0.75, quality: int = 70) -> bytes:
    """The same picture resized and re-encoded as JPEG, as a reseller or a CMS would."""
    from PIL import Image

    with Image.open(_io.BytesIO(image_bytes)) as img:
        small = img.convert("RGB").resize((int(img.width * scale), int(img.height * scale)))
    buf = _io.BytesIO()
    small.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width``×``height`` pixels."""
    raw = b"\x00" + b"\x00" * 3  # one filtered row of one pixel; decoding would fail long after
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _voice_copy(rng, brand: str, product: str, off_voice: bool, borrowed: str | None):
    words = list(BRANDS[borrowed or brand][2])
    rng.shuffle(words)
    discount = bool(rng.random() < 0.3)
    pct = int(rng.choice([10, 15, 20, 30]))
    headline = f"{words[0].capitalize()} {product} by {brand}"
    if discount:
        headline += f", {pct}% off"
    body = f"Meet the {words[1]} {product}: {words[2]} by design and {words[3]} every day."
    if off_voice:
        body = f"{rng.choice(OFF_VOICE)} {body} {rng.choice(OFF_VOICE)}"
    if rng.random() < 0.4:
        body += f" Now {rng.integers(29, 899)}.99."
    return headline, body, discount


def _consent(rng, logical: date) -> dict | None:
    roll = rng.random()
    granted = (logical - timedelta(days=int(rng.integers(30, 700)))).isoformat()
    cid = f"cns-{int(rng.integers(10**7, 10**8))}"
    if roll < 0.15:
        return None  # consent_missing
    if roll < 0.3:
        withdrawn = (logical - timedelta(days=int(rng.integers(1, 25)))).isoformat()
        return {"id": cid, "scope": ["training", "generation"], "granted_at": granted, "withdrawn_at": withdrawn}
    if roll < 0.45:
        return {"id": cid, "scope": ["display"], "granted_at": granted, "withdrawn_at": None}
    return {"id": cid, "scope": ["training", "generation", "display"], "granted_at": granted, "withdrawn_at": None}


def _licence_fields(rng, licence: str, origin: str, logical: date, index: int) -> dict:
    extra: dict = {}
    if licence.startswith("CC-BY") and rng.random() < 0.88:
        extra["attribution"] = f"Photo by Creator {index} (CC)"
    if licence in ("unsplash", "pexels"):
        extra["attribution"] = f"Photo by Creator {index} on {licence.capitalize()}"
    if licence == "rights-managed":
        roll = rng.random()
        days = -int(rng.integers(1, 200)) if roll < 0.2 else int(rng.integers(1, 25)) if roll < 0.35 else int(rng.integers(60, 900))
        extra["licence_expires"] = (logical + timedelta(days=days)).isoformat()
        extra["rights_holder"] = f"Agency {int(rng.integers(1, 9))}"
    if origin == "user_generated":
        consent = _consent(rng, logical)
        if consent:
            extra["consent"] = consent
    return extra


def true_engagement(channel: str, audience: str, cta: str, voice_fit: float, discount: bool, length: int) -> float:
    """The hidden process behind clicks: the true click-through rate of a copy variant."""
    logit = (
        CHANNEL_BASE[channel]
        + AUDIENCE_EFFECT[audience]
        + CTAS[cta]
        + 1.1 * voice_fit
        + (0.3 if discount else 0.0)
        - 0.004 * max(0, length - 120)
    )
    return 1.0 / (1.0 + math.exp(-logit))


def generate(seed: int, n: int, *, image_size: int = 256, copy_share: float = 0.5,
             problem_share: float = 0.04, logical_date: str | date = "2026-12-01") -> SyntheticData:
    """``n`` inputs (images and copy rows, ``copy_share`` of them copy) with problems mixed in."""
    logical = date.fromisoformat(str(logical_date)[:10])
    rng = np.random.default_rng(seed)
    data = SyntheticData()
    metadata: list[str] = []
    copy_rows: list[str] = []
    brand_names = sorted(BRANDS)
    n_copy = int(round(n * copy_share))
    n_images = n - n_copy

    for i in range(n_images):
        brand = brand_names[int(rng.integers(len(brand_names)))]
        product = str(rng.choice(INDUSTRIES[BRANDS[brand][0]]))
        fmt = "png" if rng.random() < 0.15 else "jpeg"
        rel = f"images/{BRANDS[brand][0]}/{i:06d}.{'png' if fmt == 'png' else 'jpg'}"
        licence, origin = _pick(rng, IMAGE_LICENCES)
        record = {"path": rel, "kind": "image", "origin": origin, "licence": licence,
                  "source_url": f"https://assets.example/{brand.replace(' ', '-').lower()}/{i}",
                  **_licence_fields(rng, licence, origin, logical, i)}
        data.files[rel] = (lambda i=i, b=brand, p=product, f=fmt: render_product_image(seed, i, b, p, image_size, f))
        problem = rng.random() < problem_share
        if problem:
            kind = int(rng.integers(8))
            if kind == 0:
                data.files[rel] = b""  # empty_file
            elif kind == 1:
                data.files[rel] = lambda i=i, b=brand, p=product: render_product_image(seed, i, b, p, image_size, "jpeg")[:600]
            elif kind == 2:
                data.files[rel] = b"%PDF-1.4 this is a brochure, not an image\n"  # unsupported_type
            elif kind == 3 and i > 0:
                prev = rel.replace(f"/{i:06d}.", f"/dup-{i:06d}.")  # duplicate_content
                data.files[prev] = data.files[rel]
                metadata.append(json.dumps({**record, "path": prev}))
            elif kind == 4:
                continue  # file without a metadata record: metadata_missing
            elif kind == 5:
                metadata.append('{"path": "' + rel + '", "kind": "image", broken json')
                continue
            elif kind == 6:
                data.files[rel] = png_bomb(30000, 30000)  # too_large
            elif kind == 7:  # a resized, re-encoded copy: new bytes, same picture (labeling QA's pHash finds it)
                near = rel.replace(f"/{i:06d}.", f"/resized-{i:06d}.").rsplit(".", 1)[0] + ".jpg"
                data.files[near] = lambda r=data.files[rel]: resized_copy(r())
                metadata.append(json.dumps({**record, "path": near}))
        metadata.append(json.dumps(record))

    for j in range(n_copy):
        brand = brand_names[int(rng.integers(len(brand_names)))]
        industry = BRANDS[brand][0]
        product = str(rng.choice(INDUSTRIES[industry]))
        off_voice = bool(rng.random() < 0.2)
        borrowed = None
        if not off_voice and rng.random() < 0.1:
            borrowed = str(rng.choice([b for b in brand_names if b != brand]))
        headline, body, discount = _voice_copy(rng, brand, product, off_voice, borrowed)
        channel, audience = str(rng.choice(CHANNELS)), str(rng.choice(AUDIENCES))
        cta = str(rng.choice(list(CTAS)))
        voice_fit = 0.0 if (off_voice or borrowed) else 1.0
        ctr = true_engagement(channel, audience, cta, voice_fit, discount, len(headline) + len(body))
        impressions = int(rng.lognormal(8.0, 0.8)) + 50
        clicks = int(rng.binomial(impressions, ctr))
        conversions = int(rng.binomial(clicks, 0.05 + 0.1 * voice_fit))
        licence, origin = _pick(rng, COPY_LICENCES)
        vid = f"cv-{seed}-{j:06d}"
        row = {"copy_variant_id": vid, "brand": brand, "industry": industry, "audience": audience,
               "channel": channel, "headline": headline, "body": body, "cta": cta, "language": "en",
               "impressions": impressions, "clicks": clicks, "conversions": conversions,
               "licence": licence, "origin": origin, **_licence_fields(rng, licence, origin, logical, j)}
        label = "negative_engagement" if ctr < ENGAGEMENT_CUTS[0] else "neutral" if ctr < ENGAGEMENT_CUTS[1] else "positive_engagement"
        data.truth[vid] = {"true_ctr": ctr, "brand_voice": "on_voice" if voice_fit else "off_voice",
                           "engagement_label": label}
        if rng.random() < problem_share:
            kind = int(rng.integers(3))
            if kind == 0:
                row["clicks"] = row["impressions"] + 5  # schema_violation
            elif kind == 1:
                row.pop("headline")  # schema_violation
            else:
                copy_rows.append("{not json")  # schema_violation
                continue
        copy_rows.append(json.dumps(row))

    data.files["metadata.jsonl"] = ("\n".join(metadata) + "\n").encode()
    data.files["copy.jsonl"] = ("\n".join(copy_rows) + "\n").encode()
    return data
