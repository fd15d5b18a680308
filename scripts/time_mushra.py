"""Time a MUSHRA study's build per item, then rate it with simulated listeners and print the results.

    python scripts/time_mushra.py CLEAN_FILES... [--preset musicgen_like] [--seconds 10] [--visqol]

Each clean file (its first ``--seconds``) is degraded with the preset and restored by every
restorer that can run here. The simulated listeners find the hidden reference (92 to 100), put
the anchors near 15 and 35, and score every other condition by a hidden quality that falls with
its LSD (``95 - 15 * LSD``, so the correlation table shows how far the other metrics agree with
LSD on these sounds), plus item, listener and rating noise; three of them rate at random.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restorelab.audio import load_audio, write_wav  # noqa: E402
from restorelab.listening.mushra import mushra_plan  # noqa: E402
from restorelab.listening.mushra_results import mushra_markdown, mushra_results  # noqa: E402
from restorelab.listening.study import HIDDEN_REFERENCE, LOW_ANCHOR, MID_ANCHOR, build_study  # noqa: E402
from restorers import build_available, output_names  # noqa: E402


def simulated_rows(study, listeners: int, careless: int, seed: int) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(listeners):
        bias = rng.normal(0, 5)
        for number, page in enumerate(mushra_plan(study, k)):
            clip = study.clip(page.clip_id)
            for label in page.order:
                candidate = clip.candidate(label)
                if k < careless:
                    score = rng.uniform(0, 100)
                elif label == HIDDEN_REFERENCE:
                    score = rng.uniform(92, 100)
                else:
                    truth = {LOW_ANCHOR: 15.0, MID_ANCHOR: 35.0}.get(label, 95 - 15 * candidate.metrics["lsd"])
                    score = truth + bias + rng.normal(0, 8)
                rows.append({"study_id": study.id, "listener_id": f"l{k}", "page_id": f"{k}-{number}",
                             "clip_id": page.clip_id, "condition": label, "kind": candidate.kind,
                             "score": str(int(np.clip(round(score), 0, 100))), "flags": ""})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clean", nargs="+")
    parser.add_argument("--preset", default="musicgen_like")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--visqol", action="store_true")
    parser.add_argument("--listeners", type=int, default=20)
    args = parser.parse_args()
    restorers, skipped = build_available(output_names(None))
    with tempfile.TemporaryDirectory() as folder:
        clips = []
        for path in args.clean:
            clip = load_audio(path)
            clips.append(write_wav(Path(folder) / Path(path).with_suffix(".wav").name,
                                   clip.audio[:, : int(args.seconds * clip.sample_rate)], clip.sample_rate))
        start = time.perf_counter()
        study = build_study(clips, Path(folder) / "study", restorers=restorers, test="mushra", preset=args.preset,
                            with_visqol=args.visqol)
        elapsed = time.perf_counter() - start
        conditions = sum(len(clip.candidates) for clip in study.clips)
        print(f"built {len(study.clips)} item(s) of {args.seconds:g} s with {len(restorers)} restorer(s) "
              f"({', '.join(restorers)}; skipped: {', '.join(skipped) or 'none'}), {conditions} conditions, "
              f"ViSQOL {'on' if args.visqol else 'off'}: {elapsed:.1f} s, {elapsed / len(study.clips):.2f} s per item")
        results = mushra_results(study, simulated_rows(study, args.listeners, 3, seed=0))
        print(mushra_markdown(results))


if __name__ == "__main__":
    main()
