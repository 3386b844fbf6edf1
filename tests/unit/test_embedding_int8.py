"""output.embedding_dtype: int8: one scale and one byte per dimension, each cell decodes alone."""

import numpy as np
import pytest

from pipelines.config import ConfigError, parse_config
from pipelines.model.calibrate import token_cosines
from pipelines.annotate.tables import decode_int8, embedding_array, token_fields


def test_int8_cells_decode_to_the_vectors_at_a_quarter_of_the_bytes():
    rng = np.random.default_rng(0)
    vectors = [rng.normal(size=96).astype(np.float32) * s for s in (1.0, 0.01, 300.0)] + [np.zeros(96, np.float32)]
    column = embedding_array(vectors, "int8")
    assert [len(c.as_py()) for c in column] == [4 + 96] * 4
    decoded = [decode_int8(c.as_py()) for c in column]
    assert token_cosines(vectors[:3], decoded[:3]).min() > 0.999
    assert not decoded[3].any()
    for v, d in zip(vectors, decoded):  # rounding error: at most half a step of the vector's scale
        assert np.abs(v - d).max() <= np.abs(v).max() / 127 / 2 + 1e-6
    assert str(dict((f.name, f.type) for f in token_fields("int8"))["embedding"]) == "binary"


def test_int8_storage_needs_the_native_token_table():
    assert parse_config({"output": {"embedding_dtype": "int8"}}).output.embedding_dtype == "int8"
    with pytest.raises(ConfigError, match="int8 needs engine: native and output.annotations: false"):
        parse_config({"output": {"embedding_dtype": "int8", "annotations": True}})
