"""Every Python example in the README runs."""

import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")
BLOCKS = re.findall(r"```python\n(.*?)```", open(README, encoding="utf-8").read(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index):
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})


def test_docstring_examples():
    import doctest

    import tf_longformer.config
    import tf_longformer.layers.attention
    import tf_longformer.layers.encoder
    import tf_longformer.models.longformer
    import tf_longformer.outputs

    for module in (tf_longformer.config, tf_longformer.outputs, tf_longformer.models.longformer,
                   tf_longformer.layers.attention, tf_longformer.layers.encoder):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
