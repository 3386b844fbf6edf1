"""Bytes per token of the token_embeddings table, fp32 vs float16, from a real mBERT-shaped run's lake."""
import sys, glob, os
import numpy as np, pyarrow as pa, pyarrow.parquet as pq, pyarrow.dataset as ds
from pipelines.annotate.tables import embedding_array
lake = sys.argv[1]
files = glob.glob(f"{lake}/**/*.parquet", recursive=True)
table = ds.dataset(files).to_table()
n = table.num_rows
pq.write_table(table, "/tmp/full.parquet", compression="snappy"); size32 = os.path.getsize("/tmp/full.parquet")
vectors = [np.asarray(v, dtype=np.float32) for v in table.column("embedding").to_pylist()]
half = table.set_column(table.schema.get_field_index("embedding"), "embedding", embedding_array(vectors, "float16"))
pq.write_table(half, "/tmp/half.parquet", compression="snappy")
size16 = os.path.getsize("/tmp/half.parquet")
print(f"tokens {n}, dim {len(vectors[0])}: float32 {size32/n:.0f} B/token (re-encoded with pyarrow, snappy), "
      f"float16 {size16/n:.0f} B/token (same rows, same writer)")
