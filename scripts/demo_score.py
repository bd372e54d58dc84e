"""Part of `make demo`: wait until the scoring service is ready, score a few ad-copy variants
over HTTP and print the answers; then, given a table of ad copy, send its rows as traffic (in
requests of 8 items), so the prediction log holds a window for the drift step."""
from __future__ import annotations

import sys
import time

import requests

EXAMPLES = [
    {"text": "Timeless wool coat, tailored and refined for quiet city mornings.", "brand": "Atelier Nord",
     "industry": "fashion", "channel": "social", "audience": "returning_customers", "cta": "Discover"},
    {"text": "HUGE DROP!!! Loud neon hoodies, hyped and fresh, grab yours now.", "brand": "Atelier Nord",
     "industry": "fashion", "channel": "social", "audience": "returning_customers", "cta": "Discover"},
    {"text": "Cozy handmade throws in natural linen for calm, warm evenings.", "brand": "Maison Verte",
     "industry": "home", "channel": "email", "audience": "new_visitors", "cta": "Shop now"},
    {"text": "Engineered for precision: powerful pro earbuds with fast charging.", "brand": "Voltix",
     "industry": "electronics", "channel": "search", "audience": "lapsed_customers", "cta": "Buy"},
]


def main(url: str, traffic: str | None = None) -> int:
    deadline = time.monotonic() + 180
    while True:
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            print(f"the scoring service at {url} was not ready after 180 s")
            return 1
        time.sleep(0.5)
    answer = requests.post(f"{url}/v1/score", json={"items": EXAMPLES, "request_key": "demo"}, timeout=60).json()
    print(f"{answer['model']} version {answer['version']} ({answer['alias']}) answered:")
    for item, result in zip(EXAMPLES, answer["results"]):
        best = max(result["engagement"], key=result["engagement"].get)
        print(f"  {item['brand']:<13} on voice {result['brand_voice']:.2f}  engagement {best:<20} "
              f"(p {result['engagement'][best]:.2f})  \"{item['text'][:60]}\"")
    session = requests.Session()  # one kept-alive connection, as a client of the service would hold
    start = time.perf_counter()
    for i in range(20):
        session.post(f"{url}/v1/score", json={"items": EXAMPLES[:1], "request_key": f"demo-{i}"}, timeout=30)
    print(f"  20 single-item requests: {(time.perf_counter() - start) / 20 * 1000:.1f} ms each on average "
          "(benchmarks/bench_serving.py measures p50/p95/p99)")
    if traffic:
        import pandas as pd

        rows = pd.read_parquet(traffic).sample(frac=1.0, random_state=0).head(400)
        items = [{"text": f"{r.headline} {r.body}", "brand": r.brand, "industry": r.industry, "channel": r.channel,
                  "audience": r.audience, "cta": r.cta} for r in rows.itertuples()]
        for lo in range(0, len(items), 8):
            session.post(f"{url}/v1/score", json={"items": items[lo:lo + 8], "request_key": f"traffic-{lo}"},
                         timeout=30).raise_for_status()
        print(f"  traffic: {len(items)} rows of {traffic} scored, in requests of 8")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
