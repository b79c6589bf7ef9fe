"""Mutation testing over clsbench's critical promises: apply one small, realistic bug at a
time, run the tests that guard that promise, and record whether they caught it.

    .venv/bin/python scripts/mutate.py [--only NAME ...] [--out docs/testing.md]

Not in CI (it runs the relevant tests once per mutation: about 10 minutes of tests on 2 cores);
`--check` only checks that every mutation still applies, and CI runs that.
Each mutation is an exact text replacement that must match once, made in a copy of the tree
whose tests are checked to import the copy (never the working tree); the file is restored
afterwards even on Ctrl-C. "killed": the tests failed with the bug in; "survived": they
passed, i.e. the promise is not really tested.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "clsbench"


@dataclass
class Mutation:
    name: str
    promise: str  # the README guarantee it breaks
    file: str
    old: str
    new: str
    tests: tuple


T_PRE = ("tests/test_preprocess.py",)
T_EVAL = ("tests/test_evaluate.py", "tests/test_cli.py::test_guide_commands_unchanged")
T_PERF = ("tests/test_infer.py::test_perf_file_guide_format_and_parser_rule",)
T_EXPORT = ("tests/test_export.py",)
T_ATOMIC = ("tests/test_reliability.py::test_torn_writes_impossible_outputs_and_bins",
            "tests/test_reliability.py::test_torn_writes_a_failure_between_write_and_rename_leaves_no_file")
T_LABELS = ("tests/test_dataset.py",)
T_PLAN_PRESET = ("tests/test_plan.py::test_plan_preset_is_the_models_own_with_the_flag_on_top",)
T_BROWSER_RUN = ("tests/test_report_browser.py::test_run_report_in_chromium",)
T_COMPARE = ("tests/test_offpath.py::test_compare_judges_top1_just_past_the_threshold",)
T_MIDDLE = ("tests/test_offpath.py::test_unreadable_file_mid_listing_parquet_rows_are_their_images",)
T_STABILITY = ("tests/test_offpath.py::test_unstable_threshold_alone",)
T_PARITY_RULES = ("tests/test_offpath.py::test_parity_top1_rule_alone",)
T_NO_NEWLINE = ("tests/test_offpath.py::test_last_line_without_newline_counts",)
T_HELD_OUT = ("tests/test_offpath.py::test_held_out_images_are_named_and_disjoint_from_calibration",)
T_REUSE = ("tests/test_plan.py::test_second_dataset_in_the_same_work_dir_is_not_reused",
           "tests/test_plan.py::test_image_replaced_in_place_is_redone_alone")

T_ONE_PLAN_PRESET = ("tests/test_one_plan.py::test_infer_refuses_bin_files_of_another_preset",)

CATALOGUE = [
    Mutation("resize-rounds", "preprocess: long side truncated as torchvision", "data/preprocess.py",
             "return img.resize((size, int(size * h / w))", "return img.resize((size, round(size * h / w))", T_PRE),
    Mutation("crop-floors", "preprocess: centre crop rounds like the reference", "data/preprocess.py",
             "top = int(round((h - size) / 2.0))", "top = (h - size) // 2", T_PRE),
    Mutation("normalize-order", "preprocess: /255, -mean, /std in float32, in that order", "data/preprocess.py",
             "x /= np.asarray(pp.std, dtype=np.float32)[None, :, None, None]",
             "x *= 1 / np.asarray(pp.std, dtype=np.float32)[None, :, None, None]", T_PRE),
    Mutation("resize-rounds-landscape", "preprocess: long side truncated as torchvision (landscape)",
             "data/preprocess.py", "return img.resize((int(size * w / h), size)",
             "return img.resize((round(size * w / h), size)", T_PRE),
    Mutation("inceptionv3-resize", "presets: inceptionv3 is 342/299", "model/table.py",
             '"inceptionv3": Preprocessing(342, 299', '"inceptionv3": Preprocessing(320, 299', T_PRE),
    Mutation("bicubic-as-bilinear", "presets: the interpolation of the preset is used", "data/preprocess.py",
             '"bicubic": Image.BICUBIC', '"bicubic": Image.BILINEAR',
             ("tests/test_preprocess.py::test_bicubic_preset_is_bicubic",)),
    Mutation("no-1001-shift", "eval: a 1001-class output shifts labels by +1", "accuracy/evaluate.py",
             "shift = 1 if self.n_classes == 1001 else 0", "shift = 0", T_EVAL),
    Mutation("rounding-1-digit", "eval: str(round(acc*100, 2)) + '%'", "accuracy/evaluate.py",
             'str(round(acc * 100, 2)) + "%"', 'str(round(acc * 100, 1)) + "%"', T_EVAL),
    Mutation("ties-unstable", "eval: ties rank by ascending class index", "runtime/scores.py",
             'out[~plain] = np.argsort(-logits[~plain], axis=1, kind="stable")[:, :TOPK]',
             'out[~plain] = np.argsort(logits[~plain], axis=1, kind="stable")[:, ::-1][:, :TOPK]', T_EVAL),
    Mutation("key-first-underscore", "eval: image key cut at the last '_'", "runtime/outputs.py",
             'cut = temp.rfind("_")', 'cut = temp.find("_")', T_EVAL),
    Mutation("perf-fields-swapped", "infer: the vendor's five-line perf file, parsed by the zoo's rule",
             "runtime/timing.py", 'for stage in ("e2e", "data read", "preprocess", "infer", "post"):',
             'for stage in ("e2e", "preprocess", "data read", "infer", "post"):', T_PERF),
    Mutation("interface-rate-wrong", "infer: Interface throughputRate = compute-only rate", "runtime/timing.py",
             '"Interface throughputRate": rate(self.computed, self.infer_s)',
             '"Interface throughputRate": rate(self.samples, self.wall_s)', T_PERF),
    Mutation("parity-self", "export: parity measured on the exported file", "compile/export.py",
             "got = OnnxRuntimeBackend(onnx_path, batch_size=x.shape[0]).run(x)",
             "got = torch_references(net, x)[0]", T_EXPORT),
    Mutation("parity-loose", "export: within 10x PyTorch fp32's own error", "compile/export.py",
             "PARITY_FACTOR = 10.0", "PARITY_FACTOR = 4000.0", T_EXPORT),
    Mutation("inception-no-transform", "export: built as torchvision builds it for its weights", "model/weights.py",
             "**dict(spec.builder_args))", "**{k: v for k, v in spec.builder_args if k != 'transform_input'})",
             ("tests/test_export.py::test_inception_v3_built_as_torchvision_builds_it_for_its_weights",)),
    Mutation("write-in-place", "writes are atomic", "_io.py",
             "fd, tmp = exclusive_temp(os.fspath(tmp_dir) if tmp_dir else head or \".\", name)",
             "tmp = path\n        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)", T_ATOMIC),
    Mutation("temps-in-guide-folder", "the guide's folders hold only what it reads", "_io.py",
             "os.fspath(tmp_dir) if tmp_dir else head or", "head or", T_ATOMIC),
    Mutation("record-inside-dump", "the guide's eval reads clsbench's output folder", "_io.py",
             'return _beside(folder, "{}.clsbench.json")', 'return Path(folder) / ".clsbench.json"',
             ("tests/test_infer.py::test_perf_file_guide_format_and_parser_rule",
              "tests/test_preprocess.py::test_bin_files_byte_identical_to_independent_reference")),
    Mutation("wnid-rank", "run: class folders get ImageNet indices", "data/folders.py",
             "index = {w: i for i, w in enumerate(imagenet_wnids())}",
             "index = {w: i for i, w in enumerate(sorted({p.parts[0] for p in listing.images}))}", T_LABELS),
    Mutation("bom-dropped", "labels: a BOM is not data", "data/folders.py",
             'read_text(encoding="utf-8-sig")', 'read_text(encoding="utf-8")', T_LABELS),
    Mutation("label-range", "labels: out of range is an error", "data/folders.py",
             "label >= num_classes", "label > num_classes", T_LABELS),
    Mutation("resume-rewrites", "infer: a rerun computes only missing outputs", "measure/infer.py",
             "pending = [item for item, n in zip(source.items, names) if n not in done]",
             "pending = list(source.items)", ("tests/test_infer.py::test_resume_redoes_only_missing_outputs",)),
    Mutation("padding-misaligned", "infer: the last partial batch is padded; padding outputs dropped",
             "runtime/stages.py", "logits = logits[:n]\n", "logits = logits[-n:]\n",
             ("tests/test_infer.py::test_outputs_match_direct_backend_run_and_round_trip",)),
    Mutation("text-6-digits", "infer: %+.8e text outputs (float32 round-trips)", "runtime/outputs.py",
             "out[:, 11] = 101  # 'e'", "out[:, 11] = 69  # 'E'",
             ("tests/test_infer.py::test_text_scores_are_python_e8_formatting_and_round_trip",)),
    # ---- the nine classes a probe found unguarded (issue "Tests that catch what they claim")
    Mutation("override-on-default-preset", "plan: an override applies on top of the model's own preset", "plan.py",
             "    if base is None:\n        base, base_source = get_model(DEFAULT_MODEL)",
             "    if True:\n        base, base_source = get_model(DEFAULT_MODEL)", T_PLAN_PRESET),
    Mutation("report-diff-wrong-figure", "report: every number shown is the record's", "report/html.py",
             "f\"{acc[f'top{k}'] - ref:+.2f}\"", "f\"{acc['top5'] - ref:+.2f}\"", T_BROWSER_RUN),
    Mutation("compare-top1-loose", "report: a Top-1 drop past 0.1 points between like runs is a regression",
             "report/html.py", '"Top-1 %": dict(percent=False, limit=0.1 if same_data else None)',
             '"Top-1 %": dict(percent=False, limit=1.0 if same_data else None)', T_COMPARE),
    Mutation("padding-rows-written", "infer: padding outputs are never written", "runtime/stages.py",
             "logits = logits[:n]\n", "logits = logits[:]\n", T_MIDDLE),
    Mutation("unstable-threshold-loose", "perf: a spread over 10 % is UNSTABLE", "runtime/timing.py",
             "UNSTABLE_SPREAD = 0.10", "UNSTABLE_SPREAD = 0.50", T_STABILITY),
    Mutation("ray-logits-by-position", "ray: each output is its own image's", "runtime/engines/raydata.py",
             "logits[idx] = out", "logits[s:s + len(idx)] = out",
             ("tests/test_ray.py::test_ray_engine_equals_local_engine_and_resumes",)),
    Mutation("parity-top1-rule-off", "export: top-1 must agree where the margin is clear", "compile/export.py",
             "    if disagree.any():\n", "    if False:\n", T_PARITY_RULES),
    Mutation("last-line-dropped", "labels and .info: a last line without a newline counts", "data/folders.py",
             "enumerate(text.splitlines(), 1)", 'enumerate(text.split("\\n")[:-1], 1)', T_NO_NEWLINE),
    Mutation("calib-overlaps-held-out", "compile: held-out images exclude the calibration images", "compile/artifacts.py",
             "start = calib.end if calib and not separate else 0",
             "start = calib.end - 1 if calib and not separate else 0", T_HELD_OUT),
    Mutation("tag-preset-swapped", "models: every tag has its own weights' preset", "model/table.py",
             '    p = e["preset"]\n', '    p = table()["models"][name]["weights"][table()["models"][name]["default"]]["preset"]\n',
             ("tests/test_offpath.py::test_every_tag_preset_equals_torchvision",)),
    # ---- the resolver and the reuse rule
    Mutation("plan-ignores-recorded-preset", "plan: the preset a model file records is used", "plan.py",
             '(recorded_pp, "the model file") if recorded_pp is not None else',
             '(recorded_pp, "the model file") if False else', ("tests/test_offpath.py::test_recorded_preset_is_used",)),
    Mutation("plan-recompiles-compiled", "plan: a compiled file runs as is", "plan.py",
             "if stored is None and precision and target(chosen, precision).compiled:",
             "if precision and target(chosen, precision).compiled:",
             ("tests/test_plan.py::test_compiled_int8_files_run_through_run",)),
    Mutation("plan-proxy-unrecognised", "plan: the proxy is judged against its own record", "model/provenance.py",
             'if ident.sha256 == proxy_record()["sha256"]:', "if False:",
             ("tests/test_cli.py::test_run_end_to_end_then_resume",)),
    Mutation("verdict-for-any-weights", "plan: no accuracy verdict for weights of unknown provenance", "plan.py",
             'if provenance == "official" and spec and spec.top1 is not None:', "if spec and spec.top1 is not None:",
             ("tests/test_plan.py::test_other_and_stand_in_weights_get_no_verdict",)),
    Mutation("outputs-reused-by-name", "reuse: an output is reused only for the very input it came from",
             "_io.py", "return {n for n in present if n in sources and recorded.get(n) == sources[n]}",
             "return {n for n in present if n in sources}", T_REUSE),
    Mutation("bins-reused-by-size", "reuse: a .bin is reused only for the very image it came from",
             "data/preprocess.py", "and recorded.get(name) == sources[name]:", ":",
             ("tests/test_plan.py::test_preprocess_into_a_used_folder_takes_the_new_images",)),
    Mutation("store-slots-not-rechecked", "reuse: a store slot of a replaced image is redone", "data/store.py",
             "stale = [i for i in range(len(names)) if done[i] and was[i] != index[\"fingerprints\"][i]]",
             "stale = []", ("tests/test_plan.py::test_store_slots_of_replaced_images_are_redone",)),
    Mutation("fingerprint-without-mtime", "reuse: a file replaced in place by one of the same size is redone",
             "_io.py", "return [os.path.realpath(path), st.st_size, st.st_mtime_ns]",
             "return [os.path.realpath(path), st.st_size]",
             ("tests/test_offpath.py::test_same_size_replacement_is_redone",)),
    # the first hour: label sets and predictions
    Mutation("real-top5-is-top1", "ReaL: right at 5 when any of the top-5 is a ReaL label", "data/labelsets.py",
             "self.top5 += any(p in real for p in pred)", "self.top5 += pred[0] in real",
             ("tests/test_first_hour.py::test_real_labels_equal_timm_real_labels_imagenet",)),
    Mutation("real-counts-unlabelled", "ReaL: images without a ReaL label are left out", "data/labelsets.py",
             "            if not real:\n                self.without_real += 1\n                continue\n",
             "            if not real:\n                self.without_real += 1\n",
             ("tests/test_first_hour.py::test_real_labels_equal_timm_real_labels_imagenet",)),
    Mutation("label-set-not-masked", "--label-set scores on the subset's columns only", "accuracy/evaluate.py",
             "scores, label = scores[:, self.subset.columns], self.subset.labels(keys, self.labels)",
             "label = self.subset.columns[self.subset.labels(keys, self.labels)]",
             ("tests/test_first_hour.py::test_label_set_scores_like_timm_masking_the_logits",)),
    Mutation("predictions-no-softmax", "predictions: probabilities are the softmax of the outputs", "accuracy/predict.py",
             "z = np.exp(z - z.max(axis=1, keepdims=True))", "z = z - z.min(axis=1, keepdims=True)",
             ("tests/test_first_hour.py::test_predictions_without_labels_equal_torchvision_and_onnxruntime",)),
    # LoadGen
    Mutation("loadgen-invalid-read-as-valid", "loadgen: VALID is LoadGen's verdict", "measure/loadgen.py",
             'return {"fields": fields, "valid": result == "VALID",', 'return {"fields": fields, "valid": bool(result),',
             ("tests/test_loadgen.py::test_a_slowed_backend_at_a_tight_bound_is_invalid_and_says_why",)),
    Mutation("loadgen-responses-misordered", "loadgen: each response carries its own sample's logits", "measure/loadgen.py",
             "self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(s.id, y[i].ctypes.data, y[i].nbytes)",
             "self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(s.id, y[-1 - i].ctypes.data, y[i].nbytes)",
             ("tests/test_loadgen.py::test_accuracy_mode_equals_eval_and_the_logits_run_writes",)),
    # a suite people run (and runs users wait less for)
    Mutation("model-parsed-per-question", "a model file is parsed once per version", "model/files.py",
             "    return _facts_of(tuple(file_fingerprint(path)))", "    return _read_facts(str(path))",
             ("tests/test_plan.py::test_a_model_file_is_parsed_once_per_version",)),
    Mutation("model-facts-ignore-rewrite", "a model file rewritten in place is read again", "model/files.py",
             "    return _facts_of(tuple(file_fingerprint(path)))", "    return _facts_of((os.path.realpath(path),))",
             ("tests/test_plan.py::test_a_model_file_is_parsed_once_per_version",)),
    Mutation("pool-by-cpu-count", "workers: one per usable CPU, at most one per 256 images", "data/preprocess.py",
             "workers = min(usable_cpus(), jobs // JOBS_PER_WORKER)", "workers = os.cpu_count() or 1",
             ("tests/test_preprocess.py::test_default_pool_is_sized_by_usable_cpus_and_images",)),
    Mutation("ort-int8-imports-torch", "an ORT int8 compile keeps torch out", "compile/artifacts.py",
             "    _ort_tools_without_torch()\n", "",
             ("tests/test_backends.py::test_onnxruntime_int8_compile_keeps_torch_out",)),
    Mutation("ray-local-joins-last-cluster", "ray: a run without --ray-address starts its own instance",
             "runtime/engines/raydata.py", '    ray.init(address="local", **kw)\n', "    ray.init(**kw)\n",
             ("tests/test_ray.py::test_ray_actor_killed_mid_run",)),
    Mutation("reference-run-per-precision", "compile: one fp32 reference run per images", "compile/artifacts.py",
             "    if key not in _REFERENCE:\n", "    if True:\n",
             ("tests/test_backends.py::test_the_fp32_reference_is_computed_once_per_images",)),
    # every command through one plan (issue 32): the shared resolver, the reuse rule, the new checks
    Mutation("tensors-never-checked", "plan: tensors meet only the model whose preset made them", "plan.py",
             "if have == need or not r.preset_known:", "if True:", T_ONE_PLAN_PRESET),
    Mutation("tensor-preset-not-read", "infer: the .bin folder's recorded preset is what is checked", "measure/infer.py",
             "self.made_with = recorded_preset(info, used)",
             "self.made_with = None", T_ONE_PLAN_PRESET),
    Mutation("eval-ignores-the-record", "eval: the model recorded beside the outputs decides the verdict", "plan.py",
             'recorded = ((read_record(where) or {}).get("identity") or {}).get("model")', "recorded = None",
             ("tests/test_one_plan.py::test_eval_check_gives_no_verdict_on_stand_in_outputs",)),
    Mutation("pth-reaches-the-backend", "infer: a .pth is refused with what to type, never a traceback", "plan.py",
             'if not can_export and t.artifact in ("export", "compile"):', "if False:",
             ("tests/test_one_plan.py::test_infer_pth_is_refused_with_what_to_type_not_a_traceback",)),
    Mutation("cells-reused-by-path", "perf: cells reused only when measured from the same files", "measure/sweep.py",
             "changed = [n for n in now if n not in still_valid(now, recorded, now)] + [n for n in recorded if n not in now]",
             "changed = []", ("tests/test_cell_reuse.py::test_perf_model_replaced_at_the_same_path_is_measured_again",)),
    Mutation("artifact-by-name", "perf: a compiled artifact only of the model given", "measure/sweep.py",
             "    if was == now:", "    if True:",
             ("tests/test_cell_reuse.py::test_perf_refuses_a_compiled_artifact_of_another_model",)),
    Mutation("bf16-labelled-fp32", "compile: no IR labelled bf16 where the CPU runs fp32", "compile/artifacts.py",
             "check_precision_supported(t.backend, t.precision)  # an IR", "(t.backend, t.precision)  # an IR",
             ("tests/test_precision_executed.py::test_compile_refuses_bf16_without_data_too",)),
    Mutation("output-over-input-by-link", "an output is never its own input, however spelled", "_io.py",
             "same = same or os.path.samefile(output, p)", "same = same",
             ("tests/test_not_own_input.py::test_export_never_writes_over_its_weights",)),
    Mutation("nan-accepted", "options: NaN and infinities are refused in one line", "cli/args.py",
             "if not math.isfinite(v) or v < least", "if v < least", ("tests/test_options.py",)),
]


def _test_exists(test: str) -> bool:
    path, _, name = test.partition("::")
    f = ROOT / path
    return f.is_file() and (not name or f"def {name.split('[')[0]}(" in f.read_text())


def make_copy() -> tuple[Path, dict]:
    """The tree copied to a temp folder, with the environment its tests run in: its src/
    first on the import path, checked (an editable install of the original would otherwise
    be what the tests import, and every mutant would survive untested)."""
    import os
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="clsbench-mutate-"))
    for d in ("src", "tests", "compat", "scripts", "benchmarks"):
        shutil.copytree(ROOT / d, tmp / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp / "src"), os.environ.get("PYTHONPATH", "")]))
    where = subprocess.run([sys.executable, "-c", "import clsbench; print(clsbench.__file__)"], env=env, cwd=tmp,
                           capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(tmp)):
        raise SystemExit(f"the copy's tests would import {where}, not the copy in {tmp}")
    return tmp, env


def run_tests(tests, root: Path, env: dict, timeout=900) -> tuple[bool, float]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                       cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode == 0, time.perf_counter() - t0


def apply(m: Mutation, src: Path = SRC) -> str:
    path = src / m.file
    text = path.read_text()
    if text.count(m.old) != 1:
        raise SystemExit(f"mutation {m.name}: the text to replace occurs {text.count(m.old)} times in {path}")
    path.write_text(text.replace(m.old, m.new))
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="mutation names")
    ap.add_argument("--out", default=str(ROOT / "docs" / "testing.md"))
    ap.add_argument("--check", action="store_true",
                    help="only check that every mutation still applies to the source (CI runs this; writes nothing)")
    a = ap.parse_args()
    todo = [m for m in CATALOGUE if not a.only or m.name in a.only]
    stale = [f"{m.name}: the text to replace occurs {(SRC / m.file).read_text().count(m.old)} times in {m.file}"
             for m in todo if (SRC / m.file).read_text().count(m.old) != 1]
    missing = [f"{m.name}: no test {t}" for m in todo for t in m.tests if not _test_exists(t)]
    if stale or missing:
        raise SystemExit("\n".join(stale + missing))
    if a.check:
        print(f"all {len(todo)} mutations apply")
        return 0
    copy, env = make_copy()  # the mutants are made there: the working tree is never edited
    src = copy / "src" / "clsbench"
    union = sorted({t for m in todo for t in m.tests})
    ok, secs = run_tests(union, copy, env)
    if not ok:
        raise SystemExit("the guarding tests fail without any mutation: fix them first")
    rows = []
    for m in todo:
        original = apply(m, src)
        try:
            passed, secs = run_tests(m.tests, copy, env)
        finally:
            (src / m.file).write_text(original)
        verdict = "survived" if passed else "killed"
        rows.append((m, verdict, secs))
        print(f"{verdict:9} {secs:6.1f}s  {m.name}: {m.promise}", flush=True)
    killed = sum(v == "killed" for _, v, _ in rows)
    if not a.only:
        write_table(a.out, rows, killed)
    print(f"{killed} of {len(rows)} mutations killed")
    return 0 if killed == len(rows) else 1


def write_table(out, rows, killed) -> None:
    import datetime

    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lines = [
        "# Testing: what the suite catches", "",
        "`make test` runs the whole suite; an unexpected skip fails CI. Independent references",
        "live in `tests/helpers.py`: each guide script's reading rule re-implemented from",
        "docs/formats.md (the eval that crashes on a stray file, the zoo's perf-file parser,",
        "gen_dataset_info's glob, the reference preprocessing), never clsbench's own code.", "",
        "## Mutation testing", "",
        "`.venv/bin/python scripts/mutate.py` applies each bug below alone and runs the tests",
        f"that guard the promise it breaks (not in CI: {sum(s for *_, s in rows) / 60:.0f} minutes of tests in this run on "
        "the 2-core machine).",
        f"Result of the last run ({datetime.date.today()}, revision {rev}): **{killed} of {len(rows)} killed**.",
        "CI runs `scripts/mutate.py --check` (every mutation still applies; `tests/test_offpath.py`).", "",
        "| mutation | promise it breaks (README) | file | tests run | result | seconds |",
        "|---|---|---|---|---|---:|"]
    for m, verdict, secs in rows:
        tests = ", ".join(f"`{t.replace('tests/', '')}`" for t in m.tests)
        lines.append(f"| {m.name} | {m.promise} | `{m.file}` | {tests} | {verdict} | {secs:.0f} |")
    Path(out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
