"""TEST ONLY: one client process of the concurrency scenario; prints a JSON summary.

    python -m tests.reliability.load_client STACK SEED JOBS WORKDIR   (AWS_ENDPOINT_URL set)

Submits JOBS jobs of mixed kinds (stats and small PNG images), waits, and checks every
result: the numbers against Python's, the pixels against scikit-image's.
"""

import json
import os
import random
import statistics
import sys
import warnings
from io import BytesIO
from pathlib import Path

import boto3
import numpy as np
from PIL import Image

from client import api

from .harness import TrackedClient, equalized, low_contrast, write_png


def main(stack_name: str, seed: int, jobs: int, workdir: Path) -> dict:
    warnings.filterwarnings("ignore", message="This might be a color image")
    rng = random.Random(seed)
    session = boto3.Session()
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    client = TrackedClient(api.Client(session, api.find_stack(session, stack_name, endpoint),
                                      endpoint_url=endpoint))
    numbers = {}
    images = {}
    try:
        stats_jobs = [[rng.randint(-10**6, 10**6) for _ in range(rng.randint(1, 40))]
                      for _ in range(jobs - jobs * 2 // 5)]
        for job_id, values in zip(client.submit([("stats", {"numbers": v})
                                                 for v in stats_jobs]), stats_jobs, strict=True):
            numbers[job_id] = values
        paths, pixels = [], []
        for index in range(jobs * 2 // 5):
            shape = (rng.randint(8, 24), rng.randint(8, 24)) + ((3,) if index % 2 else ())
            pixels.append(low_contrast(shape, seed * 1000 + index))
            paths.append(write_png(workdir / f"{seed}-{index}.png", pixels[-1]))
        images = dict(zip(client.submit_files("equalize", paths), pixels, strict=True))
        outcome = client.collect([*numbers, *images], timeout=120)
        wrong = []
        for job_id, values in numbers.items():
            result = outcome.results.get(job_id)
            if result is None:
                continue
            expected = {"count": len(values), "min": min(values), "max": max(values),
                        "sum": sum(values), "average": statistics.mean(values),
                        "median": statistics.median(values)}
            if not result.ok or result.value != expected:
                wrong.append(job_id)
        for job_id, source in images.items():
            result = outcome.results.get(job_id)
            if result is None:
                continue
            if not result.ok or not result.value["output_key"].startswith(f"outputs/{job_id}/"):
                wrong.append(job_id)
                continue
            body = client.client.s3.get_object(Bucket=client.client.stack.bucket,
                                               Key=result.value["output_key"])["Body"].read()
            if not np.array_equal(np.asarray(Image.open(BytesIO(body))), equalized(source)):
                wrong.append(job_id)
        reply_queue = client.client.reply_queue_url
    finally:
        client.close()
    return {"jobs": len(numbers) + len(images), "lost": outcome.lost, "wrong": wrong,
            "misrouted": client.misrouted, "duplicated": outcome.duplicated,
            "redundant_deliveries": sum(n - 1 for n in client.deliveries.values() if n > 1),
            "reply_queue": reply_queue}


if __name__ == "__main__":
    stack, seed, count, workdir = sys.argv[1:]
    print(json.dumps(main(stack, int(seed), int(count), Path(workdir))))
