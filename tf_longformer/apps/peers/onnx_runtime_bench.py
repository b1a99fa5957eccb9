"""The `onnx` implementation of `tf-longformer bench`: times an exported ONNX file in ONNX Runtime.

Started as a file (`python onnx_runtime_bench.py SPEC_JSON`) by the bench worker that exported the model, so this
process holds ONNX Runtime and numpy only (its peak memory is ONNX Runtime's, not TensorFlow's): it imports
nothing from tf_longformer, TensorFlow or Keras. SPEC_JSON: `{"model": path, "inputs": npz path, "warmup": n,
"repeats": n}`. Prints one line `BENCH_RESULT {json}` with `first_call_s`, `times`, `peak_rss_bytes`,
`rss_after_build_bytes` (after the session is made), `onnxruntime`.
"""

import json
import sys
import time

from process_memory import peak_rss_bytes, status_bytes  # beside this file

RESULT_PREFIX = "BENCH_RESULT "


def main(spec_json):
    spec = json.loads(spec_json)
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(spec["model"], providers=["CPUExecutionProvider"])
    after_build = status_bytes("VmRSS")
    data = np.load(spec["inputs"])
    feed = {i.name: data[i.name] for i in session.get_inputs()}
    first = session.get_outputs()[0].name
    t0 = time.perf_counter()
    session.run([first], feed)
    result = {"first_call_s": time.perf_counter() - t0, "onnxruntime": ort.__version__,
              "rss_after_build_bytes": after_build, "input_shape": list(data["input_ids"].shape)}
    for _ in range(int(spec.get("warmup", 1))):
        session.run([first], feed)
    times = []
    for _ in range(int(spec.get("repeats", 3))):
        t0 = time.perf_counter()
        session.run([first], feed)
        times.append(time.perf_counter() - t0)
    result["times"] = times
    result["peak_rss_bytes"] = peak_rss_bytes()
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
