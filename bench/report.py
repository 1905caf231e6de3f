"""Text, Markdown and plots for `moodstream bench`, and the scaling computed on paper."""

from __future__ import annotations

import json
import math
from pathlib import Path

# Redis figures from docs/scaling.md (bench/redis_capacity.py): measured with Python clients
# (client-bound, redis-server at a quarter of a core) and computed for one redis-server core.
REDIS_MEASURED_FPS = 3_700
REDIS_CORE_FPS = 10_000
LINK_1GBIT_FPS = 4_000  # 120 MB/s of 30 KB JPEG frames
CAMERA_RATES = (1, 5, 15)
MACHINE_CORES = 16
CLUSTER_MACHINES = 10

# Accuracy against parameters. The paper's own model is from the paper (as quoted in the
# project's design); the Arriaga et al. (2017, arXiv:1710.07557) figures are the published
# mini-Xception family the paper builds on. Table 3's other rows are not reproduced here.
PUBLISHED_MODELS = [
    ("paper: mini-Xception (Table 3)", 58_423, 0.67),
    ("Arriaga et al. 2017: mini-Xception", 60_000, 0.66),
    ("Arriaga et al. 2017: sequential fully-CNN", 600_000, 0.66),
]

FER_HOWTO = """The `fer` package (PyPI `fer`: its own MTCNN, on PyTorch since 25.x, and a
mini-Xception on TensorFlow, with `FER.detect_emotions` per image) is what many users would
run instead. It pulls in several GB (TensorFlow, PyTorch with CUDA libraries, moviepy), so
it is never installed into the project's environment. To put it beside everything else, on
the same frames in the same run:

```
python3 -m venv /tmp/fer-venv
/tmp/fer-venv/bin/pip install fer opencv-python-headless "setuptools<81"   # about 8 GB
/tmp/fer-venv/bin/pip uninstall -y triton   # PyTorch's GPU compiler: segfaults on import here
moodstream bench --fer-python /tmp/fer-venv/bin/python   # or MOODSTREAM_FER_PYTHON=...
```

(fer 25.10 still imports `pkg_resources`, which setuptools 81 removed.)

`bench/fer_loop.py` is the loop it runs there: `FER(mtcnn=True).detect_emotions` on each of
the frames, one at a time, after one warm-up call."""


def fer_section(results: dict) -> str:
    fer = results.get("fer_package") or {}
    out = ["## The `fer` package", ""]
    if fer.get("fps"):
        out += [f"Measured in this run: fer {fer['version']} did **{fer['fps']} frames/s** on "
                f"the same {fer['frames']} frames ({fer['faces']} faces found; start-up "
                f"{fer['startup_s']} s; moodstream's bulk run found "
                f"{results['bulk']['1']['faces']} on them). The live pipeline's sustained rate "
                f"is **{results['speedup_vs_fer']}x** that, and one bulk worker's "
                f"{results['bulk_speedup_vs_fer']}x. fer runs PyTorch and TensorFlow with "
                "their default thread pools, so it used every core, as the pipeline did.", ""]
    else:
        out += ["Not measured in this run (no `--fer-python` given).", ""]
    return "\n".join(out + [FER_HOWTO])


def _num(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(a, b) -> str:
    return f"{a / b:.1f}x" if a and b else "-"


def stage_costs(results: dict) -> dict:
    """CPU ms per frame of each stage, from this run's measurements."""
    det = results["detector"]["detectors"]["mtcnn-onnx"]
    paper = results["paper_loop"]
    faces_per_frame = paper["faces"] / paper["frames"] if paper["frames"] else 1.0
    classify_ms = 1000 / results["classifier"]["batch32_faces_per_s"]
    codec = results["codec"]
    return {"ingest_encode": codec["encode_ms"], "detector_decode": codec["decode_ms"],
            "detector_mtcnn": det.get("batch_cpu_ms", det["cpu_ms"]),
            "classifier": round(classify_ms * faces_per_frame, 3),
            "faces_per_frame": round(faces_per_frame, 2)}


def scaling_on_paper(costs: dict, rates=CAMERA_RATES, cores: int = MACHINE_CORES,
                     machines: int = CLUSTER_MACHINES) -> dict:
    """Cameras carried at each rate by one core, one machine and a cluster on one Redis.

    Per-core frames/s = 1000 / (sum of the per-frame CPU ms of every stage); the cluster is
    capped by one Redis: REDIS_CORE_FPS computed per core (REDIS_MEASURED_FPS was measured,
    client-bound) and LINK_1GBIT_FPS on a 1 Gbit/s link."""
    stages = {k: v for k, v in costs.items() if k != "faces_per_frame"}
    total_ms = sum(stages.values())
    core_fps = 1000 / total_ms
    machine_fps = core_fps * cores
    cluster_compute = machine_fps * machines
    cluster_fps = min(cluster_compute, REDIS_CORE_FPS)
    rows = []
    for rate in rates:
        rows.append({"camera_fps": rate, "one_core": math.floor(core_fps / rate),
                     "one_machine": math.floor(machine_fps / rate),
                     "cluster": math.floor(cluster_fps / rate),
                     "cluster_1gbit": math.floor(min(cluster_fps, LINK_1GBIT_FPS) / rate)})
    first_stage = max(stages, key=stages.get)
    if cluster_compute > REDIS_CORE_FPS:
        cluster_limit = (f"the Redis core ({REDIS_CORE_FPS:,} frames/s computed) before the "
                         f"{cores * machines} worker cores ({cluster_compute:,.0f} frames/s)")
    else:
        cluster_limit = (f"the {cores * machines} worker cores ({cluster_compute:,.0f} "
                         f"frames/s) before the Redis core ({REDIS_CORE_FPS:,} frames/s)")
    return {"per_frame_ms": round(total_ms, 2), "core_fps": round(core_fps, 2),
            "machine_fps": round(machine_fps, 1), "cluster_compute_fps": round(cluster_compute),
            "cluster_fps": round(cluster_fps), "rows": rows, "first_stage": first_stage,
            "stage_share": {k: round(v / total_ms, 3) for k, v in stages.items()},
            "cluster_limit": cluster_limit}


def classroom_rows(classroom: dict | None, before) -> list[tuple[str, ...]]:
    """The classroom case's lines of the side-by-side table (none when it did not run)."""
    if not classroom:
        return []
    case = classroom["case"]
    n = case["cameras"]
    rows = [(f"classroom {n} cameras x {case['camera_fps']:g} fps: frames/s",
             _num(case["processed_fps"], 2), "-", "-", before("classroom.case.processed_fps")),
            ("classroom: latency p50 / p99 ms",
             f"{_num(case['p50_ms'], 0)} / {_num(case['p99_ms'], 0)}", "-", "-",
             before("classroom.case.p99_ms", "p99 ")),
            ("classroom: cores / RSS MB, all processes",
             f"{case['cpu_cores']['total']:.2f} / "
             f"{_num(case['rss_mb'].get('total', {}).get('max'), 0)}", "-", "-",
             before("classroom.case.cpu_cores.total", "cores "))]
    if classroom.get("capacity"):
        rows.append((f"cameras at p99 <= {classroom['goal_p99_ms']:g} ms "
                     f"({case['camera_fps']:g} fps)", str(classroom["capacity"]["cameras"]),
                     "-", "-", before("classroom.capacity.cameras")))
    return rows


def render_text(results: dict) -> str:
    """The side-by-side table printed by every run."""
    paper = results["paper_loop"]
    pipe = results["pipeline"]
    dets = results["detector"]["detectors"]
    acc = results["accuracy"]
    cls = results["classifier"]
    prev = results.get("vs_previous", {})

    def before(key: str, label: str = "") -> str:
        p = prev.get(key)
        if not p or not p["ratio"]:
            return "-"
        value = f"{p['before']:.4f}" if abs(p["before"]) < 1 else f"{p['before']:,.1f}"
        return f"{label}{value} ({p['ratio']}x)"

    rows = [("figure", "moodstream", "paper loop", "x paper", "previous (now/before)")]
    rows.append(("classifier faces/s (batch 32, 1 thread)", _num(cls["batch32_faces_per_s"]),
                 _num(paper["keras_faces_per_s"]),
                 _ratio(cls["batch32_faces_per_s"], paper["keras_faces_per_s"]),
                 before("classifier.batch32_faces_per_s")))
    onnx, package = dets["mtcnn-onnx"], dets.get("mtcnn", {})
    rows.append(("detector ms/frame 640x480 (batch 4)", _num(onnx["batch_ms"]),
                 _num(package.get("ms")), _ratio(package.get("ms"), onnx["batch_ms"]),
                 before("detector.detectors.mtcnn-onnx.batch_ms")))
    rows.append((f"live pipeline frames/s, backlog ({pipe['detectors']} det.)",
                 _num(pipe["sustained"]["fps"], 2), _num(paper["fps"], 2),
                 _ratio(pipe["sustained"]["fps"], paper["fps"]),
                 before("pipeline.sustained.fps")))
    for n, case in pipe["cameras"].items():
        rows.append((f"  {n} camera(s) x {pipe['camera_fps']:g} fps: frames/s",
                     _num(case["fps"], 2), _num(paper["fps"], 2), "-",
                     before(f"pipeline.cameras.{n}.fps")))
        rows.append((f"  {n} camera(s): latency p50 / p99 ms",
                     f"{_num(case['p50_ms'], 0)} / {_num(case['p99_ms'], 0)}",
                     _num(1000 / paper["fps"] if paper["fps"] else None, 0) + " per frame",
                     "-", before(f"pipeline.cameras.{n}.p99_ms", "p99 ")))
    for n, case in results["bulk"].items():
        rows.append((f"bulk frames/s, {n} worker(s)", _num(case["fps"], 2),
                     _num(paper["fps"], 2), _ratio(case["fps"], paper["fps"]),
                     before(f"bulk.{n}.fps")))
    rows += classroom_rows(results.get("classroom"), before)
    rss = pipe["rss_mb"]
    rows.append(("RSS MB: detector / classifier worker",
                 f"{rss['detector']} / {rss['classifier']}", "-", "-",
                 before("pipeline.rss_mb.detector", "detector ")))
    rows.append(("PrivateTest accuracy", _num(acc["privatetest_accuracy"], 4), "0.67 (paper)",
                 "-", before("accuracy.privatetest_accuracy")))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"\nspeedup_vs_paper_loop: {results['speedup_vs_paper_loop']} (live pipeline "
                 f"sustained frames/s / paper loop frames/s, first {paper['frames']} frames of "
                 f"{results['video']}); paper loop Keras model: {paper['keras_model']}")
    fer = results.get("fer_package") or {}
    if fer.get("fps"):
        lines.append(f"fer package {fer['version']} (its own environment): {fer['fps']} "
                     f"frames/s on the same {fer['frames']} frames ({fer['faces']} faces); "
                     f"live pipeline {results['speedup_vs_fer']}x, bulk (1 worker) "
                     f"{results['bulk_speedup_vs_fer']}x")
    if results.get("previous_mode"):
        lines.append(f"previous: {results['previous_file']} ({results['previous_mode']} run; "
                     "a quick run uses fewer frames than a full one)")
    lines.append(f"wall time {results['wall_s']} s, load average at start "
                 f"{results['machine']['load_avg_at_start']} on {results['machine']['cpus']} "
                 "CPUs")
    return "\n".join(lines)



def save(fig, path):
    """Write a finished figure and free it; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

def plot_all(results: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 - used as matplotlib.ticker

    outdir.mkdir(parents=True, exist_ok=True)
    pipe, paper = results["pipeline"], results["paper_loop"]
    cams = sorted(pipe["cameras"], key=int)
    written = []

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([int(c) for c in cams], [pipe["cameras"][c]["fps"] for c in cams], "o-",
            label="moodstream live, delivered")
    ax.plot([int(c) for c in cams], [pipe["cameras"][c]["offered_fps"] for c in cams], ":",
            color="gray", label=f"offered ({pipe['camera_fps']:g} fps per camera)")
    ax.axhline(pipe["sustained"]["fps"], color="C0", ls="--", label="moodstream, backlog")
    ax.axhline(paper["fps"], color="C3", ls="--", label="paper loop")
    ax.set_xlabel("cameras")
    ax.set_ylabel("frames/s")
    ax.set_title(f"Throughput against cameras ({results['machine']['cpus']} CPUs)")
    ax.legend(fontsize=8)
    written.append(save(fig, outdir / "throughput_vs_cameras.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for c in cams:
        samples = sorted(pipe["cameras"][c].get("samples") or [])
        if samples:
            ax.plot(samples, [(i + 1) / len(samples) for i in range(len(samples))],
                    label=f"{c} camera(s)")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("capture-to-label latency, ms (log)")
    ax.set_ylabel("fraction of faces")
    ax.set_title("Latency distribution (CDF)")
    ax.legend(fontsize=8)
    written.append(save(fig, outdir / "latency_distribution.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, params, acc), dy in zip(PUBLISHED_MODELS, (8, -12, 6), strict=True):
        ax.scatter(params, acc * 100, color="gray")
        ax.annotate(name, (params, acc * 100), fontsize=7, xytext=(4, dy),
                    textcoords="offset points")
    ours = results["accuracy"]
    if ours["params"] and ours["privatetest_accuracy"] is not None:
        ax.scatter(ours["params"], ours["privatetest_accuracy"] * 100, color="C0", marker="*",
                   s=120)
        ax.annotate("moodstream (shipped model)", (ours["params"],
                    ours["privatetest_accuracy"] * 100), fontsize=7, xytext=(4, -10),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlim(2e4, 5e6)
    ax.set_ylim(0, 100)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("parameters (log)")
    ax.set_ylabel("FER-2013 PrivateTest accuracy, %")
    ax.set_title("Accuracy against parameters")
    written.append(save(fig, outdir / "accuracy_vs_params.png"))
    return written


def render_markdown(results: dict) -> str:
    pipe, paper, acc = results["pipeline"], results["paper_loop"], results["accuracy"]
    scale = scaling_on_paper(stage_costs(results))
    out = ["# Benchmarks", "",
           f"Written by `moodstream bench` (full run) on {results['when']}, "
           f"{results['machine']['cpus']} CPUs, load average "
           f"{results['machine']['load_avg_at_start']} at the start "
           "(other work shared the machine; every figure is a lower bound). "
           f"Frames: the first {paper['frames']} frames of {results['video']} (596x336). "
           "Rerun with `make bench` (`moodstream bench`); `moodstream bench --quick --json` "
           "for a 2-minute check that writes nothing; `moodstream bench --render` redraws "
           "this page and its plots from bench/results.json.",
           "", "## Side by side", "",
           "The paper loop is the paper's method as written: the mtcnn package "
           "(`MTCNN().detect_faces`, default settings) and Keras `predict` of the paper's "
           "mini-Xception on one face at a time, one frame at a time, in one process, "
           f"on the same frames in the same run. Its Keras model: {paper['keras_model']}. "
           "As the paper's code does, it runs MTCNN with the package's defaults (smallest "
           "face 20 px); moodstream's detectors use a smallest face of 40 px. The detector "
           "row compares both MTCNNs at the same settings (40 px).", "",
           "```", render_text(results), "```", "",
           f"**speedup_vs_paper_loop = {results['speedup_vs_paper_loop']}**: the live "
           f"pipeline's sustained frames/s ({pipe['detectors']} mtcnn-onnx detector workers "
           "with batch 4, one classifier, a real redis-server, every frame through the "
           "streams) divided by the paper loop's.", ""]
    prev = results.get("vs_previous") or {}
    if prev:
        out += [f"### Against the previous results ({results.get('previous_file')}, "
                f"{results.get('previous_mode')} run)", "",
                "| figure | now | before | now/before |", "| --- | --- | --- | --- |"]
        out += [f"| {k} | {v['now']:,.2f} | {v['before']:,.2f} | {v['ratio']} |"
                for k, v in prev.items()]
        out.append("")
    else:
        out += ["No previous results file was present; this run's bench/results.json is the "
                "baseline for the next release.", ""]
    out += ["## Live pipeline against cameras", "",
            f"Each camera publishes {pipe['camera_fps']:g} frames/s; delivered frames/s "
            "counts from the first publish to the last label. When the offered rate passes "
            "what the workers carry, the backlog grows and latency with it.", "",
            "| cameras | offered fps | delivered fps | p50 ms | p99 ms | faces timed |",
            "| --- | --- | --- | --- | --- | --- |"]
    for n, case in sorted(pipe["cameras"].items(), key=lambda kv: int(kv[0])):
        out.append(f"| {n} | {case['offered_fps']:g} | {case['fps']:.2f} | "
                   f"{_num(case['p50_ms'], 0)} | {_num(case['p99_ms'], 0)} | "
                   f"{len(case.get('samples') or [])} |")
    out += ["", "![throughput](benchmarks/throughput_vs_cameras.png)",
            "![latency](benchmarks/latency_distribution.png)", ""]
    if results.get("classroom"):
        out += classroom_markdown(results["classroom"])
    elif results.get("classroom_error"):
        out += ["## Classroom", "", f"Not measured in this run: {results['classroom_error']}",
                ""]
    out += classroom_faces_markdown(results)
    out += agreement_markdown(results)
    out += gating_markdown(results)
    out += [
            "## Detectors (640x480, min face 40, 1 thread)", "",
            "| detector | ms/frame | cpu ms/frame | batch 4: ms/frame | batch 4: cpu ms |",
            "| --- | --- | --- | --- | --- |"]
    for name, d in results["detector"]["detectors"].items():
        out.append(f"| {name} | {d['ms']} | {d['cpu_ms']} | {d.get('batch_ms', '-')} | "
                   f"{d.get('batch_cpu_ms', '-')} |")
    out += ["", "## Accuracy against parameters", "",
            "| model | parameters | FER-2013 PrivateTest | source |", "| --- | --- | --- | --- |"]
    for name, params, value in PUBLISHED_MODELS:
        source = "the paper" if name.startswith("paper") else "Arriaga et al., arXiv:1710.07557"
        out.append(f"| {name} | {params:,} | {value:.1%} | {source} |")
    out += [f"| moodstream shipped model | {acc['params'] or 0:,} | "
            f"{_num((acc['privatetest_accuracy'] or 0) * 100)}% | this run "
            f"({'evaluated' if acc.get('evaluated') else 'from the ONNX metadata'}) |", "",
            "Only the paper's own row of its Table 3 is reproduced; the other published "
            "figures are from the mini-Xception paper the model follows. The shipped model's "
            "figure is whatever model ships at the time of the run.", "",
            "![accuracy](benchmarks/accuracy_vs_params.png)", "",
            "## Scaling on paper", "",
            "From this run's per-stage CPU cost per 640x480 frame (ms, one thread each): "
            + ", ".join(f"{k} {v}" for k, v in stage_costs(results).items()
                        if k != "faces_per_frame")
            + f" (the classifier at {stage_costs(results)['faces_per_frame']} faces per frame, "
            "as the paper loop found on these frames). "
            f"Total {scale['per_frame_ms']} ms, so one core carries {scale['core_fps']} "
            f"frames/s, a {MACHINE_CORES}-core machine {scale['machine_fps']} and "
            f"{CLUSTER_MACHINES} such machines {scale['cluster_compute_fps']:,} before Redis. "
            f"One Redis: ~{REDIS_MEASURED_FPS:,} frames/s measured (client-bound), "
            f"~{REDIS_CORE_FPS:,} frames/s computed per Redis core, ~{LINK_1GBIT_FPS:,} "
            "frames/s on a 1 Gbit/s link (docs/scaling.md). Worker cores only: Redis, the "
            "aggregator and the dashboard run on cores of their own.", "",
            f"| camera fps | one core | one {MACHINE_CORES}-core machine | "
            f"{CLUSTER_MACHINES} machines, one Redis | same, 1 Gbit/s link |",
            "| --- | --- | --- | --- | --- |"]
    for row in scale["rows"]:
        out.append(f"| {row['camera_fps']} | {row['one_core']:,} | {row['one_machine']:,} | "
                   f"{row['cluster']:,} | {row['cluster_1gbit']:,} |")
    out += ["", f"What saturates first: on one core and one machine, the **{scale['first_stage']}"
            f"** stage ({scale['stage_share'][scale['first_stage']]:.0%} of the CPU per frame); "
            f"in the cluster, {scale['cluster_limit']}. The aggregator and dashboard are not "
            "in the per-frame sum (they work per face label, far below these costs).", "",
            fer_section(results)]
    return "\n".join(out)


def write_report(results: dict, docs: Path, results_path: Path) -> list[Path]:
    written = plot_all(results, docs / "benchmarks")
    md = docs / "benchmarks.md"
    md.write_text(render_markdown(results) + "\n")
    stored = {k: v for k, v in results.items() if k != "vs_previous"}
    results_path.write_text(json.dumps(stored, indent=1) + "\n")
    return [md, results_path, *written]


# ---------------------------------------------------------------- the classroom case

# Process kinds in the order the tables list them; any other kind follows.
KIND_ORDER = ("redis-server", "up", "ingest", "detector", "classifier", "aggregator",
              "dashboard", "bulk-worker")


def classroom_kinds(case: dict) -> list[tuple[str, int, float, dict, float | None]]:
    """(kind, processes, cores, {"mean", "max"} RSS MB, PSS MB) per process kind, then the
    total."""
    cores, rss, procs = case["cpu_cores"], case["rss_mb"], case["processes"]
    pss = case.get("pss_mb") or {}
    kinds = [k for k in KIND_ORDER if k in cores or k in rss]
    kinds += sorted((set(cores) | set(rss)) - set(kinds) - {"total"})
    return [(k, sum(procs.values()) if k == "total" else procs.get(k, 0), cores.get(k, 0.0),
             rss.get(k, {}), pss.get(k)) for k in [*kinds, "total"]]


def classroom_summary(classroom: dict) -> list[str]:
    """The main case in words: the lines both the text and the Markdown use."""
    case, mix = classroom["case"], classroom["mix"]
    dropped = ", ".join(f"{v} {k}" for k, v in case["dropped"].items()) or "none"
    verdict = "fits" if case["fits"] else "does not fit: " + "; ".join(case["reasons"])
    red = case["redis"]
    load = case.get("load_avg", {})
    labels = f"face labels/s {case['labels_per_s']}"
    if case.get("reused_per_s"):
        labels += f" ({case['reused_per_s']} of them reused from the track)"
    lines = [
        f"{case['cameras']} cameras x {case['camera_fps']:g} fps ({mix['multi_face_cameras']} "
        f"multi-face; {mix['faces_by_eye_per_frame']} faces a frame by eye, "
        f"{_num(case['faces_per_frame'], 2)} found), {case['detectors']} detectors, "
        f"{case['window_s']:g} s window",
        f"frames/s offered / published / processed: {case['offered_fps']:g} / "
        f"{case['published_fps']} / {case['processed_fps']}; {labels}",
        f"capture->label latency p50 / p99: {_num(case['p50_ms'], 0)} / "
        f"{_num(case['p99_ms'], 0)} ms over {case['latency_samples']:,} face labels "
        f"(goal p99 <= {classroom['goal_p99_ms']:g} ms)",
        f"dropped: {dropped}; backlog {case['pending_start']} -> {case['pending_end']} frames",
        f"verdict: {verdict}",
        f"Redis per camera: frames stream {red['frames_kb_s_per_camera']} KB/s "
        f"({red['frame_entry_kb']} KB a frame); all traffic in {red['net_in_kb_s_per_camera']}"
        f" KB/s, out {red['net_out_kb_s_per_camera']} KB/s",
        f"load average {load.get('start', '-')} at the window's start, {load.get('end', '-')}"
        f" at its end; the benchmark's own sampling {case['bench_cores']} cores (not in the "
        "total)"]
    if each := case.get("per_camera"):
        lines.insert(3, f"per camera, all processes: {_num(each['cores'], 3)} cores, "
                     f"{_num(each['rss_mb'], 0)} MB RSS; {_num(each['cpu_ms_per_face'], 2)} "
                     "ms CPU per face per frame")
    return lines


def capacity_lines(classroom: dict) -> tuple[str, list[tuple]]:
    """The capacity search: a headline and its rows (cameras, figures..., verdict)."""
    cap = classroom.get("capacity")
    if not cap:
        return "", []
    head = (f"cameras per machine ({cap['rule']}; {cap['window_s']:g} s windows): "
            f"{cap['cameras']}")
    rows = []
    for n, row in cap["tried"].items():
        verdict = "fits" if row["fits"] else "no: " + "; ".join(row["reasons"])
        rows.append((n, _num(row.get("offered_fps"), 0), _num(row.get("published_fps")),
                     _num(row.get("processed_fps")), _num(row.get("p50_ms"), 0),
                     _num(row.get("p99_ms"), 0), _num(row.get("cpu_cores"), 2),
                     _num(row.get("rss_mb"), 0), verdict))
    return head, rows


CAPACITY_HEADER = ("cameras", "offered", "published", "processed", "p50 ms", "p99 ms",
                   "cores", "RSS MB", "verdict")


def classroom_title(classroom: dict) -> str:
    """"classroom" and, for a faces-per-camera workload, which one."""
    work = classroom.get("workload")
    if not work:
        return "classroom"
    return f"classroom, ~{faces_words(work['faces'])} ({work['name']})"


def faces_words(faces: str) -> str:
    return "1 face" if faces == "1" else f"{faces} faces"


def classroom_text(classroom: dict) -> str:
    lines = [f"{classroom_title(classroom)}: " + classroom_summary(classroom)[0]]
    lines += ["  " + line for line in classroom_summary(classroom)[1:]]
    table = [("kind", "processes", "cores", "RSS MB mean", "RSS MB max", "PSS MB")]
    table += [(k, str(n), f"{c:.2f}", _num(m.get("mean"), 0), _num(m.get("max"), 0),
               _num(p, 0)) for k, n, c, m, p in classroom_kinds(classroom["case"])]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in table]
    head, rows = capacity_lines(classroom)
    if head:
        rows = [CAPACITY_HEADER, *rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(CAPACITY_HEADER))]
        lines += [head] + ["  " + "  ".join(c.ljust(w) for c, w in
                                            zip(r, widths, strict=True)).rstrip()
                           for r in rows]
    return "\n".join(lines)


def classroom_markdown(classroom: dict) -> list[str]:
    work = classroom.get("workload")
    if work and work["faces"] != "5":
        out = [f"### Classroom, ~{faces_words(work['faces'])} a camera: {work['name']}", "",
               f"Each camera: {work['use']}; otherwise as the mix above.", ""]
        out += [f"- {line}" for line in classroom_summary(classroom)]
        return out + classroom_tables_markdown(classroom)
    out = ["## Classroom", "",
           "Many cameras, most of them multi-face, through `moodstream up "
           + " ".join(classroom["up_args"]) + "` as shipped (`bench/classroom.py`): each "
           "camera a video of its own, made in a temporary folder from the group photos and "
           "the one-face clip of the shared media, panning and zooming a few pixels a frame "
           f"with mild noise at {classroom['source_fps']:g} fps, looped; ingest samples it "
           "at the camera's rate. Latency is the classifiers' capture-to-label figure of "
           "every face label in the window; cores are CPU seconds per second of the window "
           "from /proc, per process kind (told apart by command line); RSS is summed per "
           "kind each second; PSS (shared pages shared out) at the window's end.", ""]
    out += [f"- {line}" for line in classroom_summary(classroom)]
    return out + classroom_tables_markdown(classroom)


def classroom_tables_markdown(classroom: dict) -> list[str]:
    """A case's table per process kind and its capacity search."""
    case = classroom["case"]
    out = ["", "| process kind | processes | cores | RSS MB mean | RSS MB max | PSS MB |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for kind, n, cores, rss, pss in classroom_kinds(case):
        name = f"**{kind}**" if kind == "total" else kind
        out.append(f"| {name} | {n} | {cores:.2f} | {_num(rss.get('mean'), 0)} | "
                   f"{_num(rss.get('max'), 0)} | {_num(pss, 0)} |")
    head, rows = capacity_lines(classroom)
    if head:
        out += ["", f"**{head}**", "", "| " + " | ".join(CAPACITY_HEADER) + " |",
                "| " + " | ".join("---" for _ in CAPACITY_HEADER) + " |"]
        out += ["| " + " | ".join(row) + " |" for row in rows]
    return out + [""]


# ---------------------------------------------------------------- capacity per faces a camera

def faces_cases(results: dict) -> dict[str, dict]:
    """Every classroom workload of a run by faces per camera, the mix ("classroom", also in
    results files older than the workloads) as "5", in the order of the faces."""
    cases = dict(results.get("classroom_faces") or {})
    if results.get("classroom"):
        cases["5"] = results["classroom"]
    elif results.get("classroom_error"):
        cases["5"] = {"error": results["classroom_error"]}
    return dict(sorted(cases.items(), key=lambda kv: float(kv[0])))


FACES_HEADER = ("faces/camera", "workload", "found/frame", "cameras", "cores", "RSS MB",
                "p99 ms", "verdict", "cameras that fit", "cores/camera", "RSS MB/camera",
                "CPU ms/face/frame", "reused labels/s")


def faces_table(results: dict) -> list[tuple[str, ...]]:
    """One row of FACES_HEADER per workload: its main case, the capacity search's answer
    and the cost per camera (classroom.cost_per_camera)."""
    from moodstream.bench.classroom import cost_per_camera

    rows = []
    for key, result in faces_cases(results).items():
        if "error" in result:
            rows.append((key, "-", "-", "-", "-", "-", "-", f"not run: {result['error']}",
                          "-", "-", "-", "-", "-"))
            continue
        case = result["case"]
        work = result.get("workload") or {"name": "small groups"}
        each = case.get("per_camera") or cost_per_camera(case)
        capacity = result.get("capacity")
        rows.append((key, work["name"], _num(case.get("faces_per_frame"), 1),
                     str(case["cameras"]), _num(case["cpu_cores"]["total"], 2),
                     _num(case["rss_mb"].get("total", {}).get("max"), 0),
                     _num(case["p99_ms"], 0),
                     "fits" if case["fits"] else "no: " + "; ".join(case["reasons"]),
                     str(capacity["cameras"]) if capacity else "-",
                     _num(each.get("cores"), 3), _num(each.get("rss_mb"), 0),
                     _num(each.get("cpu_ms_per_face"), 2), _num(case.get("reused_per_s"), 1)))
    return rows


FACES_TITLE = "Capacity per faces a camera"
FACES_NOTE = ("each camera 5 fps; fits: every frame processed, nothing dropped stale or "
              "capped, p99 capture->label <= 250 ms; per camera: all processes' cores and "
              "largest RSS over the window divided by the cameras; CPU ms per face per frame "
              "= cores x 1000 / faces found per second")


def faces_table_text(results: dict) -> str:
    rows = faces_table(results)
    if not rows:
        return ""
    rows = [FACES_HEADER, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(FACES_HEADER))]
    return "\n".join([f"{FACES_TITLE.lower()}:"] + [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows] + [f"  ({FACES_NOTE})"])


def faces_table_markdown(results: dict) -> list[str]:
    rows = faces_table(results)
    if not rows:
        return []
    return [f"## {FACES_TITLE}", "", FACES_NOTE[0].upper() + FACES_NOTE[1:] + ".", "",
            "| " + " | ".join(FACES_HEADER) + " |",
            "| " + " | ".join("---" for _ in FACES_HEADER) + " |",
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def classroom_sections_text(results: dict) -> str:
    """Every classroom workload's figures, then the capacity per faces a camera ("" when
    the run had none)."""
    parts = [classroom_text(r) for r in faces_cases(results).values() if "error" not in r]
    if table := faces_table_text(results):
        parts.append(table)
    return "\n".join(parts)


def classroom_faces_markdown(results: dict) -> list[str]:
    """The table per faces a camera, then the workloads other than the mix in detail."""
    out = faces_table_markdown(results)
    for key, result in faces_cases(results).items():
        if key != "5" and "error" not in result:
            out += classroom_markdown(result)
    return out


# ---------------------------------------------------------------- parity and agreement

AGREEMENT_TITLE = "Parity and agreement"


def agreement_lines(results: dict) -> list[str]:
    """Whatever the agreement measurement returned (moodstream.bench.agreement.measure),
    one "name: value" line per leaf, nested names joined by dots; [] when it did not run."""
    if results.get("agreement_error"):
        return [f"not measured: {results['agreement_error']}"]
    figures = results.get("agreement")
    if not figures:
        return []

    def leaves(tree: dict, prefix: str = ""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                shown = f"{value:,.4g}" if isinstance(value, float) else str(value)
                yield f"{prefix}{key}: {shown}"

    return list(leaves(figures))


def agreement_text(results: dict) -> str:
    lines = agreement_lines(results)
    return "\n".join([f"{AGREEMENT_TITLE.lower()}:"] + ["  " + line for line in lines]) \
        if lines else ""


def agreement_markdown(results: dict) -> list[str]:
    lines = agreement_lines(results)
    return [f"## {AGREEMENT_TITLE}", "", *(f"- {line}" for line in lines), ""] if lines else []


# ---------------------------------------------------------------- detector gating (issue 14)

GATING_HEADER = ("configuration", "cpu ms/frame", "x full", "faces (x full)",
                 "same label as full")
GATING_TITLE = "Detection that does not redo work: gating and tracking parity"


def gating_tables(gating: dict) -> list[tuple[str, list[tuple[str, ...]]]]:
    """(workload heading, rows of GATING_HEADER) per workload of bench/detector_gating.py."""
    tables = []
    for work, table in gating["workloads"].items():
        rows = [(name, _num(t["cpu"]), f"{t['x_full_cpu']:.2f}",
                 f"{t['faces']} ({t['faces_vs_full']:.3f})", f"{t['labels_agree']:.3f}")
                for name, t in table.items()]
        tables.append((f"{work} ({table['full']['frames']} frames)", rows))
    return tables


def gating_recall_lines(gating: dict) -> list[str]:
    return [f"dlib reference boxes found on the annotated photos (full size), {name}: "
            f"{matched}/{total}" for name, (matched, total) in gating["recall"].items()]


def gating_setup(gating: dict) -> str:
    seconds = gating.get("seconds")
    return (f"{'-' if seconds is None else f'{seconds:g}'} s per workload at "
            f"{gating.get('fps', 5.0):g} fps, min face {gating.get('min_face', '-')}, "
            f"1 thread, best of {gating.get('rounds', '-')} round(s), load average "
            f"{gating.get('load_avg_at_start', '-')} on {gating.get('cpus', '-')} CPUs")


def gating_section_text(results: dict) -> str:
    """The gating and tracking figures as `moodstream bench` prints them ("" when the run
    had none)."""
    if results.get("detector_gating_error"):
        return f"detector gating: not measured ({results['detector_gating_error']})"
    gating = results.get("detector_gating")
    if not gating:
        return ""
    lines = [f"detector gating and tracking: {gating_setup(gating)}"]
    for heading, rows in gating_tables(gating):
        rows = [GATING_HEADER, *rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(GATING_HEADER))]
        lines += [f"  {heading}"] + ["    " + "  ".join(c.ljust(w) for c, w in
                                                      zip(r, widths, strict=True)).rstrip()
                                     for r in rows]
    lines += ["  " + line for line in gating_recall_lines(gating)]
    return "\n".join(lines)


def gating_markdown(results: dict) -> list[str]:
    if results.get("detector_gating_error"):
        return [f"## {GATING_TITLE}", "",
                f"Not measured in this run: {results['detector_gating_error']}", ""]
    gating = results.get("detector_gating")
    if not gating:
        return []
    out = [f"## {GATING_TITLE}", "",
           "Full MTCNN on every frame against each mechanism of the lean detector (lean "
           "pyramid, motion gating, track-guided detection) and all of them together "
           "(`bench/detector_gating.py`), one camera, one frame per call, the state through "
           "a real redis-server as in the worker. Workloads: clip, the shared one-face video; "
           "group, the two dlib group photos at 640x480 swaying and zooming a little from "
           "frame to frame; still, one group photo repeated unchanged. cpu is the process "
           "CPU time per frame, x full its ratio to full detection in the same round; faces "
           "are those found against full detection's; same label is the share of full "
           "detection's faces whose matching face gets the same label from the shipped "
           f"emotion model. {gating_setup(gating)}.", ""]
    for heading, rows in gating_tables(gating):
        out += [f"**{heading}**", "", "| " + " | ".join(GATING_HEADER) + " |",
                "| --- | ---: | ---: | ---: | ---: |"]
        out += ["| " + " | ".join(row) + " |" for row in rows]
        out.append("")
    out += [f"- {line}" for line in gating_recall_lines(gating)]
    return out + [""]
