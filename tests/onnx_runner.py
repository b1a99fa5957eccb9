"""Runs an exported ONNX file in ONNX Runtime in a process where TensorFlow and Keras cannot be imported.

    python onnx_runner.py MODEL.onnx CASES.npz OUT.npz

CASES.npz holds `<case>::<input name>` arrays; OUT.npz gets `<case>::<output name>` for every case (for a
case named `bad_*`, which must be refused, `<case>::__error__`: ONNX Runtime's message, empty if it ran), and
`__metadata__` (the model's metadata_props) and `__inputs__` (its input names), as JSON. Not a test module: test_onnx.py runs it.
"""

import importlib.abc
import json
import sys

BLOCKED = ("tensorflow", "keras", "tf_keras", "tf_longformer")


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED:
            raise ImportError(f"{fullname} is blocked: the ONNX file must run without TensorFlow and Keras")
        return None


def main(model_path, cases_path, out_path):
    already = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not already, f"imported before the blocker: {already}"
    sys.meta_path.insert(0, _Blocker())
    for name in BLOCKED[:2]:
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise AssertionError(f"{name} could be imported: the blocker does not work")

    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    cases = np.load(cases_path)
    names = sorted({key.split("::")[0] for key in cases.files})
    result = {}
    for case in names:
        feed = {name: cases[f"{case}::{name}"] for name in inputs}
        if case.startswith("bad_"):  # must be refused: its error message is the result
            try:
                session.run(outputs, feed)
            except Exception as e:  # onnxruntime's own exception types
                result[f"{case}::__error__"] = np.array(str(e))
            else:
                result[f"{case}::__error__"] = np.array("")
            continue
        for name, value in zip(outputs, session.run(outputs, feed)):
            result[f"{case}::{name}"] = value
    meta = dict(session.get_modelmeta().custom_metadata_map)
    result["__metadata__"] = np.array(json.dumps(meta))
    result["__inputs__"] = np.array(json.dumps(inputs))
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, f"loaded while running: {loaded}"
    np.savez(out_path, **result)


if __name__ == "__main__":
    main(*sys.argv[1:4])
