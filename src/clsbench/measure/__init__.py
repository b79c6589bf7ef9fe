"""measure/ — measuring one plan: offline inference over .bin files, a store or images with
its perf record (`infer`), perf sweeps of backends × precisions × batches (`sweep`), MLPerf
LoadGen scenarios (`loadgen`). May import: report/ and everything below it."""
