"""Seconds per training epoch of the mini-Xception on FER-2013-sized data, with the training
augmentation beside a no-augmentation baseline measured in the same run.

    python bench/train_speed.py                 # the paper's network, 64 px, batch 128
    python bench/train_speed.py --size 48 --batch 64 --steps 60

Times ``--steps`` optimizer steps after a warm-up and scales them to one epoch of the
28,709 Training images. Random pixels stand in for faces: the cost does not depend on them.
The cases run in turn for ``--rounds`` rounds and each keeps its fastest round, so the first
case does not pay the process's one-time costs. A last case trains with Keras' own
BatchNormalization layer, the network as it was before the fused layer
(``models.architecture``).
"""

from __future__ import annotations

import argparse
import json
import os
import time

TRAIN_IMAGES = 28_709


def seconds_per_step(size: int, batch: int, steps: int, augment: dict | None,
                     policy: str = "float32", input_norm: str = "none",
                     threads: int = 2, fused_batch_norm: bool = True) -> float:
    import keras
    import numpy as np
    import tensorflow as tf

    from moodstream.models.architecture import build_mini_xception
    from moodstream.models.data import make_dataset

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TensorFlow already started in this process: its thread pool stays
    keras.mixed_precision.set_global_policy(policy)
    rng = np.random.default_rng(0)
    n = batch * (steps + 5)
    # 48 px uint8 like FER-2013; the dataset resizes on the fly only when asked, so resize
    # here once as training does (models.data.load_split).
    from moodstream.models.data import resize_images

    x = resize_images(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), size)[..., None]
    y = (np.arange(n) % 7).astype(np.int32)
    ds = make_dataset(x, y, batch, training=True, aug=augment)
    model = build_mini_xception(size, input_norm=input_norm, fused_batch_norm=fused_batch_norm)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    warm = ds.take(5)
    model.fit(warm, epochs=1, verbose=0)
    timed = ds.skip(5).take(steps)
    t0 = time.perf_counter()
    model.fit(timed, epochs=1, verbose=0)
    keras.mixed_precision.set_global_policy("float32")
    return (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from moodstream.models.train import DEFAULT_CONFIG

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64, help="input side in px (64 = paper)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=40, help="timed steps per case")
    p.add_argument("--policy", default="float32",
                   help="Keras dtype policy for the augmented case (e.g. mixed_bfloat16)")
    p.add_argument("--rounds", type=int, default=2,
                   help="rounds over the cases; each case keeps its fastest")
    p.add_argument("--json", action="store_true", help="print one JSON line at the end")
    args = p.parse_args(argv)

    steps_per_epoch = TRAIN_IMAGES // args.batch
    aug = DEFAULT_CONFIG["augment"]
    cases = [("no augmentation (baseline)", None, "float32", True),
             ("augmentation (training recipe)", aug, "float32", True)]
    if args.policy != "float32":
        cases.append((f"augmentation, {args.policy}", aug, args.policy, True))
    cases.append(("augmentation, Keras BatchNormalization", aug, "float32", False))
    best: dict[str, float] = {}
    print(f"mini-Xception {args.size}x{args.size}, batch {args.batch}, "
          f"{steps_per_epoch} steps per epoch, {args.steps} timed steps per case, "
          f"{args.rounds} round(s)")
    for _ in range(max(1, args.rounds)):
        for label, aug_case, policy, fused in cases:
            sps = seconds_per_step(args.size, args.batch, args.steps, aug_case, policy,
                                   fused_batch_norm=fused)
            best[label] = min(sps, best.get(label, sps))
    rows = {label: {"ms_per_step": round(sps * 1000, 1),
                    "seconds_per_epoch": round(sps * steps_per_epoch, 1)}
            for label, sps in best.items()}
    base = rows[cases[0][0]]["seconds_per_epoch"]
    for label, row in rows.items():
        row["ratio_to_baseline"] = round(row["seconds_per_epoch"] / base, 2)
        print(f"  {label:<36} {row['ms_per_step']:8.1f} ms/step "
              f"{row['seconds_per_epoch']:7.1f} s/epoch  x{row['ratio_to_baseline']:.2f}")
    if args.json:
        print(json.dumps({"size": args.size, "batch": args.batch, "cases": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
