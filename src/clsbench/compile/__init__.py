"""compile/ — making what a backend runs: pth → ONNX with its parity check and the export
cache (`export`), ONNX Runtime and OpenVINO artifacts per precision with their parity
records and int8 accuracy control (`artifacts`, `ort_control`), the guide's .om through the
vendor's atc (`ascend`). May import: plan, accuracy/, runtime/, data/, model/, the root helpers."""
