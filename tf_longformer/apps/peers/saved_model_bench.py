"""The `saved_model` implementation of `tf-longformer bench`: times an exported SavedModel's `serving_default`
as TF Serving would run it (`tf.saved_model.load`, the signature called with named int32 tensors).

Started as a file (`python saved_model_bench.py SPEC_JSON`) by the bench worker that exported the model, so this
process holds TensorFlow and the SavedModel only: it imports nothing from tf_longformer or Keras. SPEC_JSON:
`{"model": SavedModel dir, "inputs": npz path, "warmup": n, "repeats": n}`. Prints one line
`BENCH_RESULT {json}` with `first_call_s`, `times`, `peak_rss_bytes`, `rss_after_build_bytes` (after loading),
`tensorflow`.
"""

import json
import os
import sys
import time

from process_memory import peak_rss_bytes, status_bytes  # beside this file

RESULT_PREFIX = "BENCH_RESULT "


def main(spec_json):
    spec = json.loads(spec_json)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(spec["model"])
    serve = loaded.signatures["serving_default"]
    after_build = status_bytes("VmRSS")
    data = np.load(spec["inputs"])
    names = serve.structured_input_signature[1]
    feed = {name: tf.constant(data[name], dtype=names[name].dtype) for name in names}

    def call():
        out = serve(**feed)
        return out[sorted(out)[0]].numpy()

    t0 = time.perf_counter()
    call()
    result = {"first_call_s": time.perf_counter() - t0, "tensorflow": tf.__version__,
              "rss_after_build_bytes": after_build, "signature_inputs": sorted(names),
              "input_shape": list(data["input_ids"].shape)}
    for _ in range(int(spec.get("warmup", 1))):
        call()
    times = []
    for _ in range(int(spec.get("repeats", 3))):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    result["times"] = times
    result["peak_rss_bytes"] = peak_rss_bytes()
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
