"""A STAND-IN for TensorFlow Serving's predict APIs, in Python, backed by `tf.saved_model.load`.

NOT TensorFlow Serving: `tensorflow_model_server` (a C++ binary, or the `tensorflow/serving` Docker image) is what
serves in production; it cannot be installed on the machines this project is developed on. This stand-in
implements the same request/response contract so that the clients in `clients/` can be tested and tried:

- REST: `GET /v1/models/<name>[/versions/<n>|/labels/<l>]` (status), `.../metadata`, and
  `POST /v1/models/<name>[/versions/<n>|/labels/<l>]:predict` with `{"signature_name": ..., "instances": [...]}`
  (row format -> `{"predictions": ...}`) or `{"inputs": {...}}` (columnar -> `{"outputs": ...}`); errors as
  `{"error": "..."}` with an HTTP error status; JSON numbers converted to the signature's input dtypes.
- gRPC: `tensorflow.serving.PredictionService/Predict` (the `tensorflow-serving-api` protos): tensors must have
  the signature's dtypes (no conversion, as in TF Serving), `output_filter` honoured.
- Models from `--model_name/--model_base_path` or a `--model_config_file` (TF Serving's ModelServerConfig text
  format, e.g. `models.config`); every numeric version folder is loaded, the largest is the default.

    python export/standin_server.py --model_config_file export/models.config --port 8500 --rest_api_port 8501
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf

MAX_MESSAGE_BYTES = 1 << 30


class ServingError(Exception):
    """A request the server refuses: `kind` is "invalid" (HTTP 400 / INVALID_ARGUMENT) or "not_found" (404)."""

    def __init__(self, message, kind="invalid"):
        super().__init__(message)
        self.kind = kind


class ServedModel:
    """Every numeric version folder under `base_path`, loaded with `tf.saved_model.load`."""

    def __init__(self, name, base_path, labels=None):
        from tensorflow.core.protobuf import saved_model_pb2

        self.name = name
        self.base_path = base_path
        self.labels = dict(labels or {})
        if not os.path.isdir(base_path):
            raise FileNotFoundError(f"Model {name!r}: base path {base_path} does not exist.")
        versions = sorted(int(v) for v in os.listdir(base_path)
                          if re.fullmatch(r"\d+", v) and os.path.isdir(os.path.join(base_path, v)))
        if not versions:
            raise FileNotFoundError(f"Model {name!r}: no numeric version folder under {base_path}.")
        self.loaded, self.signature_defs = {}, {}
        for v in versions:
            path = os.path.join(base_path, str(v))
            self.loaded[v] = tf.saved_model.load(path)
            proto = saved_model_pb2.SavedModel()
            with open(os.path.join(path, "saved_model.pb"), "rb") as f:
                proto.ParseFromString(f.read())
            graph = next(m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags)
            self.signature_defs[v] = graph.signature_def
        self.latest = versions[-1]

    def version_for(self, version=None, label=None):
        if label:
            if label not in self.labels:
                raise ServingError(f"Unrecognized servable version label: {label}", "not_found")
            version = self.labels[label]
        if version is None:
            return self.latest
        if int(version) not in self.loaded:
            raise ServingError(f"Servable not found for request: Specific({self.name}, {version})", "not_found")
        return int(version)



class StandInServer:
    def __init__(self, models):
        """`models`: `{name: base_path}` or `{name: ServedModel}`."""
        self.models = {n: m if isinstance(m, ServedModel) else ServedModel(n, m) for n, m in models.items()}
        self._http = None
        self._grpc = None

    @classmethod
    def from_config_file(cls, path):
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2

        config = model_server_config_pb2.ModelServerConfig()
        with open(path, encoding="utf-8") as f:
            text_format.Parse(f.read(), config)
        models = {}
        for c in config.model_config_list.config:
            if c.model_platform and c.model_platform != "tensorflow":
                raise ValueError(f"Model {c.name!r}: platform {c.model_platform!r} is not 'tensorflow'.")
            models[c.name] = ServedModel(c.name, c.base_path, labels=dict(c.version_labels))
        return cls(models)

    # ------------------------------------------------------------------------------------------------ core
    def _signature(self, name, version, label, signature_name):
        if name not in self.models:
            raise ServingError(f"Servable not found for request: Latest({name})", "not_found")
        model = self.models[name]
        version = model.version_for(version, label)
        signature_name = signature_name or "serving_default"
        loaded = model.loaded[version]
        if signature_name not in loaded.signatures:
            raise ServingError(f'Serving signature name: "{signature_name}" not found in signature def')
        return version, signature_name, loaded.signatures[signature_name]

    @staticmethod
    def _input_specs(fn):
        return dict(fn.structured_input_signature[1])

    def predict(self, name, inputs, signature_name=None, version=None, label=None, convert=True,
                output_filter=()):
        """Runs a signature on `{input name: array}`; returns `(version, signature name, {output: array})`.

        `convert`: cast to the signature's dtypes (REST/JSON) instead of refusing a mismatch (gRPC).
        """
        version, signature_name, fn = self._signature(name, version, label, signature_name)
        specs = self._input_specs(fn)
        missing = sorted(set(specs) - set(inputs))
        extra = sorted(set(inputs) - set(specs))
        if extra:
            raise ServingError(f"input tensor alias not found in signature: {extra[0]}. Inputs expected to be in the "
                               f"set {{{','.join(sorted(specs))}}}.")
        if missing:
            raise ServingError(f"Missing input(s) {missing} for signature {signature_name!r}; it takes "
                               f"{sorted(specs)}.")
        tensors = {}
        for i, key in enumerate(sorted(specs)):
            spec = specs[key]
            value = inputs[key]
            if convert:
                try:
                    value = np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
                except (ValueError, TypeError) as e:
                    raise ServingError(f"Input {key!r} is not a {spec.dtype.name} tensor: {e}") from None
            elif np.asarray(value).dtype != spec.dtype.as_numpy_dtype:
                raise ServingError(f"Expects arg[{i}] to be {spec.dtype.name} but {np.asarray(value).dtype} is provided")
            if value.ndim != len(spec.shape):
                raise ServingError(f"Input {key!r} must have rank {len(spec.shape)}, got shape {list(value.shape)}.")
            tensors[key] = tf.constant(value)
        try:
            outputs = fn(**tensors)
        except tf.errors.OpError as e:
            raise ServingError(e.message) from None
        outputs = {k: v.numpy() for k, v in outputs.items()}
        if output_filter:
            unknown = [k for k in output_filter if k not in outputs]
            if unknown:
                raise ServingError(f"output tensor alias not found in signature: {unknown[0]}")
            outputs = {k: outputs[k] for k in output_filter}
        return version, signature_name, outputs

    # ------------------------------------------------------------------------------------------------ REST
    URL = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                     r"(?P<verb>:predict|/metadata)?$")

    def rest(self, method, path, body):
        """One REST call: `(http status, JSON object)`."""
        match = self.URL.match(path)
        if not match:
            return 404, {"error": f"Malformed request: {method} {path}"}
        name, verb = match["name"], match["verb"]
        try:
            if method == "GET" and verb is None:
                return 200, self._status(name, match["version"])
            if method == "GET" and verb == "/metadata":
                return 200, self._metadata(name, match["version"], match["label"])
            if method == "POST" and verb == ":predict":
                return 200, self._rest_predict(name, match["version"], match["label"], body)
            return 404, {"error": f"Malformed request: {method} {path}"}
        except ServingError as e:
            return (404 if e.kind == "not_found" else 400), {"error": str(e)}

    def _status(self, name, version):
        if name not in self.models:
            raise ServingError(f"Could not find any versions of model {name}", "not_found")
        model = self.models[name]
        versions = [model.version_for(version)] if version else sorted(model.loaded)
        return {"model_version_status": [{"version": str(v), "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}} for v in versions]}

    def _metadata(self, name, version, label):
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        if name not in self.models:
            raise ServingError(f"Servable not found for request: Latest({name})", "not_found")
        model = self.models[name]
        version = model.version_for(version, label)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in model.signature_defs[version].items():
            sig_map.signature_def[key].CopyFrom(value)
        return {"model_spec": {"name": name, "signature_name": "", "version": str(version)},
                "metadata": {"signature_def": json_format.MessageToDict(sig_map, preserving_proto_field_name=True)}}

    def _rest_predict(self, name, version, label, body):
        if not isinstance(body, dict):
            raise ServingError("JSON Value: not an object; a predict request is a JSON object.")
        if ("instances" in body) == ("inputs" in body):
            raise ServingError("JSON object: does not have named input(s): give exactly one of 'instances' (row "
                               "format) or 'inputs' (columnar format).")
        signature_name = body.get("signature_name") or "serving_default"
        _, _, fn = self._signature(name, version, label, signature_name)
        names = sorted(self._input_specs(fn))
        if "instances" in body:
            instances = body["instances"]
            if not isinstance(instances, list) or not instances:
                raise ServingError("'instances' must be a non-empty list.")
            if len(names) == 1 and not isinstance(instances[0], dict):
                inputs = {names[0]: instances}
            else:
                if not all(isinstance(x, dict) for x in instances):
                    raise ServingError("With several named inputs, every instance must be an object of them.")
                keys = set(instances[0])
                if any(set(x) != keys for x in instances):
                    raise ServingError("Every instance must have the same named inputs.")
                inputs = {k: [x[k] for x in instances] for k in keys}
        else:
            columns = body["inputs"]
            inputs = columns if isinstance(columns, dict) else {names[0]: columns}
        _, _, outputs = self.predict(name, inputs, signature_name, version, label, convert=True)
        if "instances" in body:
            batch = {len(v) for v in outputs.values()}
            if len(batch) != 1:
                raise ServingError("Tensor outputs do not all have the same 0-th dimension: use the columnar format.")
            if len(outputs) == 1:
                return {"predictions": next(iter(outputs.values())).tolist()}
            rows = batch.pop()
            return {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(rows)]}
        if len(outputs) == 1:
            return {"outputs": next(iter(outputs.values())).tolist()}
        return {"outputs": {k: v.tolist() for k, v in outputs.items()}}

    def start_rest(self, port=0, host="127.0.0.1"):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status, obj):
                data = json.dumps(obj).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._reply(*server.rest("GET", self.path, None))

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length).decode("utf-8"))
                except ValueError as e:
                    self._reply(400, {"error": f"JSON Parse error: {e}"})
                    return
                self._reply(*server.rest("POST", self.path, body))

            def log_message(self, *args):
                pass

        self._http = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self._http.server_address[1]

    # ------------------------------------------------------------------------------------------------ gRPC
    def start_grpc(self, port=0, host="127.0.0.1"):
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        server = self

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):  # noqa: N802
                spec = request.model_spec
                version = spec.version.value if spec.HasField("version") else None
                try:
                    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                    version, signature_name, outputs = server.predict(
                        spec.name, inputs, spec.signature_name or None, version, spec.version_label or None,
                        convert=False, output_filter=list(request.output_filter))
                except ServingError as e:
                    code = grpc.StatusCode.NOT_FOUND if e.kind == "not_found" else grpc.StatusCode.INVALID_ARGUMENT
                    context.abort(code, str(e))
                response = predict_pb2.PredictResponse()
                response.model_spec.name = spec.name
                response.model_spec.version.value = version
                response.model_spec.signature_name = signature_name
                for key, value in outputs.items():
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
                return response

        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), self._grpc)
        bound = self._grpc.add_insecure_port(f"{host}:{port}")
        self._grpc.start()
        return bound

    def stop(self):
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(None)
            self._grpc = None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="A Python stand-in for tensorflow_model_server's predict APIs "
                                                 "(for trying the clients; NOT TF Serving).")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (as tensorflow_model_server; 0: none)")
    parser.add_argument("--rest_api_port", type=int, default=8501, help="REST port (0: none)")
    parser.add_argument("--model_name", help="name of the single model to serve")
    parser.add_argument("--model_base_path", help="its base path (holding numeric version folders)")
    parser.add_argument("--model_config_file", help="a ModelServerConfig text file (e.g. models.config)")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    if args.model_config_file:
        server = StandInServer.from_config_file(args.model_config_file)
    elif args.model_name and args.model_base_path:
        server = StandInServer({args.model_name: args.model_base_path})
    else:
        parser.error("give --model_config_file, or --model_name and --model_base_path")
    if args.port:
        print(f"gRPC on {args.host}:{server.start_grpc(args.port, args.host)}", flush=True)
    if args.rest_api_port:
        print(f"REST on http://{args.host}:{server.start_rest(args.rest_api_port, args.host)}", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
