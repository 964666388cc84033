"""`python -m client demo`: a temporary local stack, and one job of every registered kind."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from worker_src import registry, wire

from . import names
from .local import LocalStack


def demo(output_dir: Path) -> int:
    from PIL import Image
    from skimage import data

    output_dir.mkdir(parents=True, exist_ok=True)
    worker_log = output_dir / "worker.log"
    worker_log.unlink(missing_ok=True)
    source, reference = output_dir / "moon.png", output_dir / "camera.png"
    Image.fromarray(data.moon()).save(source)
    Image.fromarray(data.camera()).save(reference)
    print("starting a temporary local stack (emulator, CDK template, 1 worker) ...")
    started = time.monotonic()
    failures = 0
    with LocalStack(workers=1, worker_log=worker_log) as stack, stack.client() as client:
        print(f"ready in {time.monotonic() - started:.1f} s at {stack.endpoint_url}\n")
        numbers = [random.randint(-1000, 1000) for _ in range(20)]
        print(f"stats of {len(numbers)} integers: {' '.join(map(str, numbers))}")
        [job_id] = client.submit([("stats", {"numbers": numbers})])
        [result] = list(client.wait([job_id], timeout=60))
        failures += report(result)
        if result.ok:
            for key, value in result.value.items():
                print(f"  {key:<8} {value}")
        print()
        for kind in registry.kinds().values():
            if kind.output != registry.IMAGE:  # the image kinds, on the moon
                continue
            others = {name: reference for name in kind.file_args() if name != kind.main_input}
            [job_id] = client.submit_files(kind.name, [source], dict(kind.example), others)
            [result] = list(client.wait([job_id], timeout=60))
            failures += report(result, kind.name)
            if result.ok:
                key = result.value["output_key"]
                destination = names.output_path(output_dir, source.name, kind.name, key)
                client.download_output(key, destination)
                print(f"{kind.name:<9} {source} -> {destination} "
                      f"(run {result.timing.get('run_s', 0):.3f} s on the worker)")
    print(f"\ndone in {time.monotonic() - started:.1f} s; the local stack is gone. "
          f"Worker log: {worker_log}")
    return 1 if failures else 0


def report(result: wire.Result, kind: str = "stats") -> int:
    if result.ok:
        return 0
    print(f"{kind} failed: {result.error_code}: {result.error_message}", file=sys.stderr)
    return 1
