"""A client for TensorFlow Serving's REST API (`POST /v1/models/<name>[/versions/<n>]:predict`), standard library only.

    python export/clients/rest_client.py --server http://localhost:8501 --model longformer-qa \\
        --assets /models/longformer-qa/1 --question "Who wrote it?" --context "It was written by Ann in 1990."

See export/README.md for every task.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_client import ServingError, add_common_arguments, run_from_args  # noqa: E402


class RestTransport:
    """Named numpy tensors to TF Serving's JSON predict API and back.

    `request_format="columnar"` sends `{"inputs": {name: tensor}}` and reads `{"outputs": ...}`; `"row"` sends
    `{"instances": [{name: row}, ...]}` and reads `{"predictions": [...]}`. Both are TF Serving's documented formats.
    """

    def __init__(self, server: str, model: str, version: int | None = None, label: str | None = None,
                 timeout: float = 60.0, request_format: str = "columnar"):
        if request_format not in ("columnar", "row"):
            raise ValueError(f"request_format must be 'columnar' or 'row', got {request_format!r}.")
        if version is not None and label is not None:
            raise ValueError("Give a version or a label, not both.")
        self.server = server.rstrip("/")
        if "://" not in self.server:
            self.server = "http://" + self.server
        self.model = model
        self.version = version
        self.label = label
        self.timeout = timeout
        self.request_format = request_format

    def model_url(self) -> str:
        url = f"{self.server}/v1/models/{self.model}"
        if self.version is not None:
            url += f"/versions/{int(self.version)}"
        elif self.label is not None:
            url += f"/labels/{self.label}"
        return url

    def _send(self, url, body=None):
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
            try:
                message = json.loads(text)["error"]
            except (ValueError, KeyError, TypeError):
                message = text
            raise ServingError(f"{url}: HTTP {e.code}: {message}") from None
        except urllib.error.URLError as e:
            raise ServingError(f"{url}: cannot reach the server ({e.reason}).") from None

    def status(self) -> dict:
        return self._send(self.model_url())

    def metadata(self) -> dict:
        return self._send(self.model_url() + "/metadata")

    def predict(self, inputs: dict, signature: str, output_names=None) -> dict:
        """`{name: array}` in, `{output name: array}` out. `output_names` names a lone unnamed output."""
        inputs = {k: np.asarray(v) for k, v in inputs.items()}
        if self.request_format == "columnar":
            body = {"signature_name": signature, "inputs": {k: v.tolist() for k, v in inputs.items()}}
            result = self._send(self.model_url() + ":predict", body)["outputs"]
            if not isinstance(result, dict):  # TF Serving drops the name of a lone output
                result = {self._lone(output_names): result}
        else:
            batch = {len(v) for v in inputs.values()}
            if len(batch) != 1:
                raise ValueError(f"Row format needs every input to have the same batch size, got {sorted(batch)}.")
            instances = [{k: v[i].tolist() for k, v in inputs.items()} for i in range(batch.pop())]
            rows = self._send(self.model_url() + ":predict", {"signature_name": signature, "instances": instances})
            rows = rows["predictions"]
            if rows and isinstance(rows[0], dict):
                result = {k: [row[k] for row in rows] for k in rows[0]}
            else:
                result = {self._lone(output_names): rows}
        return {k: self._array(v) for k, v in result.items()}

    @staticmethod
    def _lone(output_names):
        if not output_names or len(output_names) != 1:
            raise ServingError(f"The server returned one unnamed output; expected the outputs {output_names}.")
        return output_names[0]

    @staticmethod
    def _array(value):
        array = np.asarray(value)
        if array.dtype.kind == "f":
            return array.astype(np.float32)
        if array.dtype.kind in "iu":
            return array.astype(np.int64)
        return array


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Ask a tf-longformer model served by TensorFlow Serving (REST).")
    parser.add_argument("--server", default="http://localhost:8501", help="REST address (default localhost:8501)")
    parser.add_argument("--format", choices=("columnar", "row"), default="columnar", help="JSON request format")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    transport = RestTransport(args.server, args.model, version=args.version, timeout=args.timeout,
                              request_format=args.format)
    return run_from_args(args, transport)


if __name__ == "__main__":
    sys.exit(main())
