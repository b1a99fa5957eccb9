"""A client for TensorFlow Serving's gRPC API (`tensorflow.serving.PredictionService/Predict`).

Uses the official `tensorflow-serving-api` protos and `grpcio` (`pip install 'tf-longformer[serving]'`):

    python export/clients/grpc_client.py --server localhost:8500 --model longformer-qa \\
        --assets /models/longformer-qa/1 --question "Who wrote it?" --context "It was written by Ann in 1990."

See export/README.md for every task.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_client import ServingError, add_common_arguments, run_from_args  # noqa: E402

# Large outputs (masked-LM logits are batch x length x vocabulary floats) exceed gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 1 << 30


def _protos():
    try:
        import grpc
        from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError as e:
        raise ImportError(f"The gRPC client needs grpcio and tensorflow-serving-api ({e}); "
                          "pip install 'tf-longformer[serving]'.") from None
    return grpc, tensor_pb2, tensor_shape_pb2, types_pb2, predict_pb2, prediction_service_pb2_grpc


def to_tensor_proto(array: np.ndarray):
    """A numpy int32/int64/float32 array as a TensorProto (values as little-endian `tensor_content`)."""
    _, tensor_pb2, tensor_shape_pb2, types_pb2, _, _ = _protos()
    array = np.asarray(array)
    dtypes = {np.dtype(np.int32): types_pb2.DT_INT32, np.dtype(np.int64): types_pb2.DT_INT64,
              np.dtype(np.float32): types_pb2.DT_FLOAT}
    if array.dtype not in dtypes:
        raise TypeError(f"Cannot send a {array.dtype} tensor; use int32, int64 or float32.")
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in array.shape])
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return tensor_pb2.TensorProto(dtype=dtypes[array.dtype], tensor_shape=shape, tensor_content=little.tobytes())


def from_tensor_proto(proto) -> np.ndarray:
    """A TensorProto as a numpy array: from `tensor_content`, or from the typed value lists (`float_val`, ...)."""
    _, _, _, types_pb2, _, _ = _protos()
    kinds = {types_pb2.DT_FLOAT: (np.float32, "float_val"), types_pb2.DT_DOUBLE: (np.float64, "double_val"),
             types_pb2.DT_INT32: (np.int32, "int_val"), types_pb2.DT_INT64: (np.int64, "int64_val"),
             types_pb2.DT_BOOL: (np.bool_, "bool_val")}
    if proto.dtype not in kinds:
        raise ServingError(f"Unsupported output dtype {types_pb2.DataType.Name(proto.dtype)}.")
    dtype, field = kinds[proto.dtype]
    shape = [d.size for d in proto.tensor_shape.dim]
    count = int(np.prod(shape)) if shape else 1
    if proto.tensor_content:
        values = np.frombuffer(proto.tensor_content, dtype=np.dtype(dtype).newbyteorder("<"))
    else:
        values = np.asarray(getattr(proto, field), dtype=dtype)
        if values.size == 1 and count > 1:  # a single value stands for all of them
            values = np.full(count, values[0], dtype)
        elif values.size == 0 and count:
            values = np.zeros(count, dtype)
    return values.astype(dtype).reshape(shape)


class GrpcTransport:
    """Named numpy tensors to `PredictionService/Predict` and back.

    Sends int32 to the export's int32 signatures; with `int64=True`, sends int64 to the `<signature>_int64` twins
    (TF Serving does not convert dtypes over gRPC: a mismatch is an INVALID_ARGUMENT error).
    """

    def __init__(self, server: str, model: str, version: int | None = None, label: str | None = None,
                 timeout: float = 60.0, int64: bool = False, channel=None):
        if version is not None and label is not None:
            raise ValueError("Give a version or a label, not both.")
        grpc, _, _, _, _, services = _protos()
        self.grpc = grpc
        self.server = server
        self.model = model
        self.version = version
        self.label = label
        self.timeout = timeout
        self.int64 = int64
        self.channel = channel or grpc.insecure_channel(server, options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ])
        self.stub = services.PredictionServiceStub(self.channel)

    def request(self, inputs: dict, signature: str):
        _, _, _, _, predict_pb2, _ = _protos()
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model
        if self.version is not None:
            request.model_spec.version.value = int(self.version)
        elif self.label is not None:
            request.model_spec.version_label = self.label
        request.model_spec.signature_name = signature + ("_int64" if self.int64 else "")
        dtype = np.int64 if self.int64 else np.int32
        for name, value in inputs.items():
            value = np.asarray(value)
            if value.dtype.kind in "iu":
                value = value.astype(dtype)
            request.inputs[name].CopyFrom(to_tensor_proto(value))
        return request

    def predict(self, inputs: dict, signature: str, output_names=None) -> dict:
        request = self.request(inputs, signature)
        try:
            response = self.stub.Predict(request, timeout=self.timeout)
        except self.grpc.RpcError as e:
            raise ServingError(f"{self.server}: {e.code().name}: {e.details()}") from None
        return {name: from_tensor_proto(t) for name, t in response.outputs.items()}

    def close(self):
        self.channel.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Ask a tf-longformer model served by TensorFlow Serving (gRPC).")
    parser.add_argument("--server", default="localhost:8500", help="gRPC address (default localhost:8500)")
    parser.add_argument("--int64", action="store_true", help="send int64 tensors to the <signature>_int64 twins")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    transport = GrpcTransport(args.server, args.model, version=args.version, timeout=args.timeout, int64=args.int64)
    try:
        return run_from_args(args, transport)
    finally:
        transport.close()


if __name__ == "__main__":
    sys.exit(main())
