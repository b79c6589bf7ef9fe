"""data/ — images and tensors: image folders, labels and the guide's .info files (`folders`),
exact preprocessing to the guide's .bin files (`preprocess`), the compact uint8 store
(`store`), label sets (ImageNet-1k names, ReaL, ImageNet-A/-R: `labelsets`), the trained
proxy's procedural task (`proxy_task`). The data files beside these modules (class names,
ReaL labels, the model table, the proxy's weights) are package data: see NOTICE.md.
May import: model/ and the root helpers."""
