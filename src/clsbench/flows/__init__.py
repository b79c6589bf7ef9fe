"""flows/ — the commands that chain the others: `run` (export → preprocess → info → infer →
eval in one resumable command), `demo` (a dataset of shipped photos, then run, then the
trained proxy), `zoo` (many models × configs). May import: measure/ and everything below."""
