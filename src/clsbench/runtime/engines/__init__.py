"""The engines that run the per-batch step (stages.BatchStep) over a run's pending inputs:
`local` (offline, in order, one runtime), `stream` (a whole pipeline per CPU process),
`feeder` (decode processes feeding one device runtime), `raydata` (Ray Data). infer.py
chooses one and turns what it returns into the run's record."""
