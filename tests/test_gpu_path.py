"""The cuda backend's device-generic parts and the device streaming layout, on the CPU.

The GPU itself is measured by benchmarks/gpu.sh (docs/performance.md); here the same code
runs with device="cpu", mode="eager": the uint8 upload and on-device normalization, the
one-batch-behind pipelining, the decode workers' shared-memory hand-over, the GPU-decode
path's plumbing, and what the guide's scripts read from the result.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import PROXY, guide_acc_eval, run_cli

from clsbench import ClsbenchError

CPU = {"device": "cpu", "mode": "eager"}


@pytest.fixture(scope="module")
def cuda_on_cpu():
    from clsbench.runtime.backends import open_backend

    return open_backend("cuda", str(PROXY), batch_size=4, precision="fp32", arch="mnasnet1_0", **CPU)


def test_normalization_on_the_device_is_torchvisions_to_the_bit(cuda_on_cpu):
    """uint8 crops normalized by the backend == ToTensor + Normalize on the same pixels."""
    import torch
    from torchvision.transforms import functional as F

    from clsbench.model.table import get_model

    pp = get_model("mnasnet1_0").preprocessing
    u8 = np.random.default_rng(0).integers(0, 256, (4, 3, 224, 224), dtype=np.uint8)
    want = np.stack([F.normalize(F.to_tensor(np.ascontiguousarray(x.transpose(1, 2, 0))), pp.mean, pp.std).numpy()
                     for x in u8])
    got = cuda_on_cpu.normalize(torch.from_numpy(u8)).numpy()
    assert got.dtype == np.float32 and np.array_equal(got, want)


def test_pipelined_batches_come_back_in_order_and_match_pytorch(cuda_on_cpu):
    """One batch behind on the GPU; every result must belong to its own batch."""
    from clsbench.runtime.backends.torch import TorchBackend
    from clsbench.model.table import get_model
    from clsbench.data.preprocess import normalize_batch

    pp = get_model("mnasnet1_0").preprocessing
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 256, (4, 3, 224, 224), dtype=np.uint8) for _ in range(3)]
    ref = TorchBackend(str(PROXY), arch="mnasnet1_0", batch_size=4)
    want = [ref.run(normalize_batch(b, pp)) for b in batches]
    got = list(cuda_on_cpu.pipelined(batches))
    assert len(got) == 3
    for g, w in zip(got, want):
        assert np.abs(g - w).max() < 1e-4 * max(1.0, np.abs(w).max())
    assert not np.allclose(got[0], got[1])
    with pytest.raises(ClsbenchError, match="built for uint8"):
        list(cuda_on_cpu.pipelined([batches[0][:2]]))


def test_cuda_backend_refuses_what_needs_a_gpu():
    from clsbench.runtime.backends import open_backend

    with pytest.raises(ClsbenchError, match="mode 'graph' needs a CUDA device"):
        open_backend("cuda", str(PROXY), batch_size=1, arch="mnasnet1_0", device="cpu", mode="graph")
    with pytest.raises(ClsbenchError, match="mode 'fast' is not one of eager, graph, compile"):
        open_backend("cuda", str(PROXY), batch_size=1, arch="mnasnet1_0", device="cpu", mode="fast")


@pytest.mark.parametrize("decode", ["cpu", "gpu"])
def test_streaming_to_a_device_backend_writes_what_the_guide_reads(tmp_path, proxy_dataset, decode):
    """`run --stream --backend cuda`: decode processes (or the device decoder) feed one
    runtime; 29 images at batch 8 (a padded last batch); outputs per image equal PyTorch's
    on the exact crops (decode cpu) or agree in top-1 (decode gpu, torchvision's decoder
    here), result.json is what the guide's evaluation script computes, no shared-memory
    file is left behind."""
    from clsbench.runtime.backends.torch import TorchBackend
    from clsbench.model.table import get_model
    from clsbench.runtime.outputs import load_scores
    from clsbench.flows.run import RunOptions, run
    from clsbench.data.preprocess import preprocess_image

    before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    s = run(str(PROXY), str(proxy_dataset), RunOptions(
        backend="cuda", precision="fp32", batch_size=8, stream=True, decode=decode, workers=2,
        work_dir=str(tmp_path / "w"), show_progress=False, backend_options=CPU))
    dump = tmp_path / "w/result/dumpOutput_device0"
    labels = proxy_dataset / "val_label.txt"
    assert json.loads(guide_acc_eval(dump, labels)) == json.loads((tmp_path / "w/result.json").read_text())
    assert s["accuracy"]["images"] == 29
    pp = get_model("mnasnet1_0").preprocessing
    images = sorted((proxy_dataset / "val").iterdir())
    ref = TorchBackend(str(PROXY), arch="mnasnet1_0", batch_size=len(images)).run(np.stack([preprocess_image(p, pp) for p in images]))
    got = np.stack([load_scores(dump / f"{p.name.split('.')[0]}_1.txt") for p in images])
    if decode == "cpu":
        assert np.abs(got - ref).max() < 1e-4 * np.abs(ref).max()
    else:
        assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9
    after = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    assert not [f for f in after - before if f.startswith("clsbench-crops-")]


def test_device_streaming_writes_parquet_rows_in_image_order(tmp_path, proxy_dataset, monkeypatch):
    """The feeder's writer threads with a Parquet dataset: one writer, so the rows come in the
    order the images were run (sorted), split into parts of CLSBENCH_PARQUET_ROWS."""
    pq = pytest.importorskip("pyarrow.parquet")
    from clsbench.flows.run import RunOptions, run

    monkeypatch.setenv("CLSBENCH_PARQUET_ROWS", "8")
    run(str(PROXY), str(proxy_dataset), RunOptions(
        backend="cuda", precision="fp32", batch_size=4, stream=True, workers=2, outfmt="parquet",
        work_dir=str(tmp_path / "w"), show_progress=False, backend_options=CPU))
    parts = sorted((tmp_path / "w/result/outputs_device0.parquet").glob("part-*.parquet"))
    keys = [k for p in parts for k in pq.read_table(p, columns=["image"]).column(0).to_pylist()]
    assert keys == sorted(p.name.split(".")[0] for p in (proxy_dataset / "val").iterdir())
    assert [pq.read_metadata(p).num_rows for p in parts] == [8, 8, 8, 5]


def test_decode_gpu_needs_stream_and_the_cuda_backend(tmp_path, proxy_dataset):
    p = run_cli("run", "--weights", str(PROXY), "--data", str(proxy_dataset), "--work-dir", str(tmp_path / "w"),
                "--decode", "gpu", check=False)
    assert p.returncode == 2 and "--decode gpu needs --stream, --backend cuda and the local engine" in p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "w").exists()


def test_gpu_bench_runs_end_to_end_on_the_cpu(tmp_path):
    """benchmarks/gpu_bench.py's every section on tiny sizes: the script that runs once on a
    lent GPU must not fail there for a reason a CPU can show."""
    from helpers import ROOT, run_script

    p = run_script(ROOT / "benchmarks/gpu_bench.py", "--out", tmp_path, "--device", "cpu", "--smoke", check=False,
                   torch=True)
    assert p.returncode == 0, p.stderr[-2000:]
    rec = json.loads((tmp_path / "gpu.json").read_text())
    assert rec["skipped"] == [], rec["skipped"]
    assert {"parity", "compute", "profile", "decode", "e2e"} <= set(rec)
    assert rec["parity"]["fp32"]["top1_agreement"] == 1.0
    assert rec["e2e"][-1]["decode"] == "agreement" and rec["e2e"][-1]["top1_agreement"] >= 0.9
    assert "## End to end" in (tmp_path / "gpu.md").read_text()
