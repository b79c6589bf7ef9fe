"""Who runs the stages: the local engine lives in infer/stream/feeder; `raydata` runs them on Ray Data."""
