"""Child process of :func:`deployable.evaluation.targets.measure_efficiency`: load, warm up, time, report JSON."""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

_RUNTIME = {
    "onnx": "onnxruntime",
    "transformers": "transformers",
    "sentence-transformers": "transformers",
    "pytorch": "torch",
    "torchscript": "torch",
}


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    request = json.loads(sys.stdin.read())
    spec = dict(request["spec"])
    threads = int(request["threads"])
    __import__(_RUNTIME.get(spec["type"], "numpy"))  # import time is not load time
    if spec["type"] in ("pytorch", "torchscript", "transformers", "sentence-transformers"):
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    from deployable.models.sources import load_predictor

    if spec["type"] == "onnx":
        spec["threads"] = threads
    with np.load(request["inputs"], allow_pickle=False) as z:
        inputs = z["text"].tolist() if "text" in z.files else z["x"]
    start = time.perf_counter()
    predictor = load_predictor(spec)
    predictor.set_threads(threads) if spec["type"] != "onnx" else None
    load_time = time.perf_counter() - start
    n = len(inputs)
    runs = []
    for bs in request["batch_sizes"]:

        def batch(i: int, bs: int = bs) -> object:
            idx = [(i * bs + j) % n for j in range(bs)]
            return [inputs[k] for k in idx] if isinstance(inputs, list) else inputs[idx]

        for i in range(request["warmup"]):
            predictor.forward(batch(i))
        times: list[float] = []
        began = time.perf_counter()
        i = 0
        while len(times) < request["min_repetitions"] or (
            time.perf_counter() - began < request["max_seconds"] and len(times) < 2000
        ):
            b = batch(i)
            t0 = time.perf_counter()
            predictor.forward(b)
            times.append(time.perf_counter() - t0)
            i += 1
        runs.append({"batch_size": bs, "times": times})
    print(json.dumps({"load_time_s": load_time, "peak_memory_mb": _peak_rss_mb(), "runs": runs}))


if __name__ == "__main__":
    main()
