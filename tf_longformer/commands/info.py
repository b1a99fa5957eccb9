"""`tf-longformer info`."""

from __future__ import annotations

import json
import os

from tf_longformer.commands import quiet_tf


def cmd_info(args) -> int:
    """Prints the config and parameter count of a checkpoint directory."""
    quiet_tf()
    from tf_longformer import LongformerConfig
    from tf_longformer.checkpoints import read_state_dict
    from tf_longformer.files import resolve_checkpoint_dir

    directory = resolve_checkpoint_dir(args.model)
    config = LongformerConfig.from_pretrained(directory)
    state, source = read_state_dict(directory)
    params = sum(int(v.size) for v in state.values())
    print(json.dumps({"checkpoint": directory, "weights": os.path.basename(source), "parameters": params,
                      "architectures": getattr(config, "architectures", None),
                      "layers": config.num_hidden_layers, "hidden": config.hidden_size,
                      "heads": config.num_attention_heads, "attention_window": config.attention_window,
                      "max_sequence_length": config.max_sequence_length}, indent=2))
    return 0



def register(sub) -> None:
    p = sub.add_parser("info", help=cmd_info.__doc__, description=cmd_info.__doc__)
    p.add_argument("--model", required=True, help="checkpoint directory or hub id")
    p.set_defaults(func=cmd_info)
