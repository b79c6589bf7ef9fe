"""model/ — what a model is: the table of torchvision (and timm) classifiers with their
presets and published accuracy (`table`, `spec`, `timm`), model files and the metadata
clsbench records in them (`files`, `fold`), where weights come from (`provenance`), PyTorch
weights files and building their architecture (`weights`), realistic stand-in weights
(`stand_in`). May import: the root helpers (`_io`, `ui`) only."""
