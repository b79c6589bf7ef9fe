"""The inference path runs without torch; onnxruntime never phones home."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest


BLOCK_TORCH = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision"):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
    sys.meta_path.insert(0, _NoTorch())
""")


def test_inference_path_imports_and_runs_without_torch(tmp_path, tiny_dataset, onnx_model):
    """preprocess → info → infer → eval through the CLI, with torch made unimportable."""
    code = BLOCK_TORCH + textwrap.dedent(f"""
        from clsbench.cli.commands import main
        steps = [
            ["preprocess", "-q", "--model", "mnasnet", {str(tiny_dataset / 'val')!r}, "prep"],
            ["info", "bin", "prep", "x.info", "224", "224"],
            ["infer", "-q", "--model", {str(onnx_model)!r}, "--info", "x.info", "--batch-size", "4"],
            ["eval", "result/dumpOutput_device0", {str(tiny_dataset / 'val_label.txt')!r}, ".", "result.json"],
            ["infer", "--model", {str(onnx_model)!r}, "--loop", "1", "--warmup", "0"],
        ]
        for s in steps:
            assert main(s) == 0, s
        assert not any(m.split(".")[0] in ("torch", "torchvision") for m in sys.modules), "torch was imported"
        try:
            import torch
        except ModuleNotFoundError:
            print("TORCH-FREE OK")
    """)
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "TORCH-FREE OK" in p.stdout
    assert (tmp_path / "result.json").is_file()


def test_export_without_torch_says_what_to_install(tmp_path):
    (tmp_path / "w.pth").write_bytes(b"PK")  # there (a missing file is told first, without torch)
    code = BLOCK_TORCH + "from clsbench.cli.commands import main; sys.exit(main(['export', '--weights', 'w.pth', '--output', 'm.onnx']))"
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 2 and "pip install 'clsbench[export]'" in p.stderr


CI_MARKERS = {"CI", "CONTINUOUS_INTEGRATION", "TF_BUILD", "JENKINS_URL", "GITHUB_ACTIONS", "GITLAB_CI",
              "BUILD_ID", "BUILD_NUMBER", "BUILDKITE", "TRAVIS", "CIRCLECI", "TEAMCITY_VERSION"}

LIVE = textwrap.dedent("""
    import sys, time
    if sys.argv[1] == "clsbench":
        from clsbench.runtime.backends import get_backend
        import numpy as np
        x = np.zeros((1, 3, 224, 224), np.float32)
        get_backend("onnxruntime")(sys.argv[2], batch_size=1).run(x)
        try:
            import nncf  # noqa: F401  (compile's int8 path)
            get_backend("openvino")(sys.argv[2], batch_size=1).run(x)
        except ImportError:
            pass
    else:
        import onnxruntime as ort
        ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
        try:
            import openvino  # noqa: F401  (with openvino-telemetry installed, this writes ~/intel)
        except ImportError:
            pass
    time.sleep(8)  # onnxruntime's telemetry starts in processes that live a few seconds
""")


@pytest.mark.slow
def test_no_telemetry_files_or_lookups(tmp_path, onnx_model):
    def start(kind):
        home = tmp_path / kind
        home.mkdir()
        # as on a user's machine: runtimes silence themselves when they detect a CI system
        # (CI=true is set where this suite runs in CI), which would make the control vacuous
        env = {k: v for k, v in os.environ.items() if k not in CI_MARKERS and k != "ORT_DISABLE_TELEMETRY"}
        env["HOME"] = str(home)
        cmd = [sys.executable, "-c", LIVE, kind, str(onnx_model)]
        if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
            cmd = ["unshare", "-n", *cmd]  # loopback only: nothing can leave even if it tried
        return home, subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def files(home, p):
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        return sorted(str(q.relative_to(home)) for q in home.rglob("*"))

    # both live their seconds at once, each with a home of its own (they mostly sleep)
    ours, bare = start("clsbench"), start("bare-runtimes")
    assert files(*ours) == []  # onnxruntime, openvino and nncf loaded: nothing written
    control = files(*bare)
    if not control:
        pytest.skip("these runtime builds write no telemetry files; nothing to prove against")
    assert any("onnxruntime" in c for c in control)  # e.g. .cache/Microsoft/.../deviceid
    from importlib import metadata

    try:  # (not an import: clsbench, loaded in this process, makes it unimportable)
        metadata.version("openvino-telemetry")
    except metadata.PackageNotFoundError:
        return
    assert any(c.startswith("intel") for c in control)  # e.g. intel/openvino_ga_cid
