"""runtime/ — running a model: the backend seam and its table of (backend, precision) pairs
(`backends/`), the engines that drive batches through it (`engines/`: local, stream, feeder,
Ray), the per-batch step (`stages`), per-image outputs and their Parquet form (`outputs`,
`parquet`), the Top-k ranking rule (`scores`), timing primitives and the vendor's perf file
(`timing`), GPU decoding (`gpudecode`). May import: data/, model/, the root helpers."""
