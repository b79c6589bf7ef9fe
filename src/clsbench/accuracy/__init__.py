"""accuracy/ — scoring outputs: Top-1..5 to the guide's result.json, ReaL and label sets
(`evaluate`), predictions for unlabelled folders (`predict`). Verdicts are the plan's
(`plan.judge_accuracy`). May import: runtime/, data/, model/, the root helpers."""
