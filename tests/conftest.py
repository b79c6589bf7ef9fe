"""Shared fixtures: real photographs (scikit-image's shipped samples), realistic weights,
the trained proxy and its task images, an exported model and a tiny ImageNet-layout
dataset. Nothing is downloaded. Helpers and the guide's reading rules: helpers.py."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from PIL import Image

from helpers import PHOTO_CASES, PROXY, photo, run_cli

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def _test_cache() -> str:
    """The export cache of this test session (shared by its xdist workers, never the user's
    ~/.cache): runs of the same weights on the same images in fresh work dirs copy one export."""
    import tempfile

    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run:
        path = Path(tempfile.gettempdir()) / f"clsbench-test-cache-{run}"
        path.mkdir(exist_ok=True)
        return str(path)
    import atexit
    import shutil

    path = tempfile.mkdtemp(prefix="clsbench-test-cache-")
    atexit.register(shutil.rmtree, path, True)
    return path


os.environ["CLSBENCH_CACHE"] = _test_cache()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests that take more than a few seconds")
    _pin_xdist_worker()
    _check_mutants_imported()


def _check_mutants_imported() -> None:
    """Under mutmut (`make mutate`), the tests must import the mutated copy of clsbench, not
    the tree the editable install points at (a mutant the tests never import survives for
    nothing): refuse to start otherwise, and hand the copy to every process a test starts."""
    if "MUTANT_UNDER_TEST" not in os.environ:
        return
    import clsbench

    src = Path(clsbench.__file__).resolve().parents[1]
    if src.parent.name != "mutants":
        raise pytest.UsageError(f"mutmut: the tests import clsbench from {src}, not from mutants/src")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))
    # a mutant a property fails is killed by its first failing example: shrinking it to the
    # smallest one (what a person debugging wants) took most of each mutant's time
    from hypothesis import Phase, settings

    settings.register_profile("mutmut", phases=(Phase.explicit, Phase.reuse, Phase.generate))
    settings.load_profile("mutmut")


def _pin_xdist_worker() -> None:
    """Under pytest-xdist (`make test` runs two workers), each worker and every process it
    starts is pinned to CPUs of its own: runtimes size their thread pools from the CPUs a
    process may use (`backends.default_threads`), so two workers never spin-wait on each
    other's cores (measured: unpinned, ORT and OpenVINO pools on both cores of both workers
    ran the suite ~2x slower than one worker alone)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    i = int(worker[2:])
    if count > len(cpus):  # more workers than CPUs: each still on one CPU of its own
        share = [cpus[i % len(cpus)]]
    else:
        share = [c for j, c in enumerate(cpus) if j % count == i % count]
    os.sched_setaffinity(0, share)


def pytest_sessionfinish(session, exitstatus):
    """In CI an unexpected skip is a failure: a missing extra must not pass quietly. Skips
    whose reason starts with 'expected:' (a GPU present, a runtime build that writes no
    telemetry) are allowed."""
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    bad = []
    for rep in reporter.stats.get("skipped", []):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        if "expected:" not in reason:
            bad.append(f"{rep.nodeid}: {reason}")
    if bad:
        reporter.write_line(f"CI: {len(bad)} unexpected skip(s) count as failures:", red=True)
        for b in bad:
            reporter.write_line(f"  {b}", red=True)
        session.exitstatus = 1


@contextlib.contextmanager
def made_once(tmp_path_factory, name: str):
    """The folder of a session artifact made once per test run, not once per xdist worker:
    it lies in the temp folder all workers of the run share; the first worker to need it gets
    `(folder, True)` and makes it while holding a lock, the others wait for the lock and get
    `(folder, False)`. A make that fails leaves no mark: the next worker makes it again (and
    fails the same way). Nothing else is put into the folder (tests list what is in it)."""
    import fcntl
    import shutil

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, marks = root / f"shared-{name}", root / "made-once"  # not beside the folder: clsbench
    marks.mkdir(exist_ok=True)  # keeps its own locks and records there
    mark = marks / f"{name}.made"
    with open(marks / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if mark.exists():
            yield folder, False
            return
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        yield folder, True
        mark.touch()


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    with made_once(tmp_path_factory, "photos") as (d, make):
        for name, src, size in PHOTO_CASES if make else ():
            im = photo(src).resize(size, Image.BICUBIC)
            if name.startswith("gray"):
                im = im.convert("L")
            im.save(d / name, quality=92) if name.endswith(".jpg") else im.save(d / name)
    return d


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """ImageNet layout: val/ (13 JPEGs: a prime, so most batch sizes leave a partial batch)."""
    with made_once(tmp_path_factory, "imagenet") as (root, make):
        if make:
            _tiny_dataset(root)
    return root


def _tiny_dataset(root: Path) -> None:
    from clsbench.data.folders import write_labels
    from clsbench.flows.demo import build_demo_dataset

    build_demo_dataset(root, per_class=3)  # 15 images
    val = root / "val"
    names = sorted(os.listdir(val))
    for n in names[13:]:
        (val / n).unlink()
    labels = (root / "val_label.txt").read_text().splitlines()[:13]
    write_labels(root / "val_label.txt", [(l.split()[0], int(l.split()[1])) for l in labels])


@pytest.fixture(scope="session")
def proxy_dataset(tmp_path_factory) -> Path:
    """The trained proxy's own task, ImageNet layout: 29 JPEGs of shapes x colours (a prime
    count), labels 0..15. The proxy gets most of them right, so accuracy is informative: a
    wrong label, a shifted class or a lost image changes result.json."""
    from clsbench.data.proxy_task import write_images

    with made_once(tmp_path_factory, "proxydata") as (root, make):
        if make:
            write_images(root, 29, seed=2024)
    return root


@pytest.fixture(scope="session")
def proxy_weights() -> Path:
    assert PROXY.is_file(), "run scripts/make_proxy_weights.py"
    return PROXY


@pytest.fixture(scope="session")
def spec():
    from clsbench.model.table import get_model

    return get_model("mnasnet1_0")


@pytest.fixture(scope="session")
def weights(tmp_path_factory, spec) -> Path:
    """Realistic random weights: BN statistics re-estimated on real photos, logits std ~1."""
    from clsbench.flows.demo import calibration_batch
    from clsbench.model.stand_in import save_realistic_weights

    with made_once(tmp_path_factory, "weights") as (d, make):
        if make:
            save_realistic_weights(spec, calibration_batch(spec.preprocessing, n=48), str(d / "realistic_mnasnet1_0.pth"))
    return d / "realistic_mnasnet1_0.pth"


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory, weights, photo_dir) -> Path:
    from clsbench.compile.export import export_onnx

    with made_once(tmp_path_factory, "model") as (d, make):
        if make:
            export_onnx(str(weights), str(d / "mnasnet1.0.onnx"), parity_images=str(photo_dir))
    return d / "mnasnet1.0.onnx"


@pytest.fixture(scope="session")
def proxy_onnx(tmp_path_factory, proxy_weights) -> Path:
    from clsbench.compile.export import export_onnx

    with made_once(tmp_path_factory, "proxy") as (d, make):
        if make:
            export_onnx(str(proxy_weights), str(d / "proxy.onnx"))
    return d / "proxy.onnx"


@pytest.fixture(scope="session")
def prep(tmp_path_factory, tiny_dataset, spec) -> Path:
    from clsbench.data.preprocess import preprocess_dir

    with made_once(tmp_path_factory, "prep") as (d, make):
        if make:
            preprocess_dir(tiny_dataset / "val", d / "prep_dataset", spec.preprocessing, workers=2, show_progress=False)
    return d / "prep_dataset"


@pytest.fixture(scope="session")
def info_file(tmp_path_factory, prep) -> Path:
    from clsbench.data.folders import gen_bin_info

    with made_once(tmp_path_factory, "info") as (d, make):
        if make:
            gen_bin_info(str(prep), str(d / "prep_bin.info"), 224, 224)
    return d / "prep_bin.info"


@pytest.fixture(scope="session")
def proxy_run(tmp_path_factory, proxy_weights, proxy_dataset):
    """The reference run (ONNX Runtime fp32, .bin files) the other engines are compared with."""
    with made_once(tmp_path_factory, "ortrun") as (work, make):
        if make:
            run_cli("run", "-q", "--weights", proxy_weights, "--data", proxy_dataset, "--batch-size", "4",
                    "--work-dir", work)
    return work
