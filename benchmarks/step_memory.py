"""Peak RSS of our 768-d Gowalla training step alone, in its own process: set-up, then six steps
with the divergence guard keeping a state every other one, as training does.

    python benchmarks/step_memory.py [--data DIR] [--dim 768]

``bench_engine.py`` runs it as a child and prints its figure beside its own: the bench's peak
RSS is the whole process's, which the textbook reference step dominates. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lgcn_tui import config, presets  # noqa: E402
from lgcn_tui.run.lifecycle import Run  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "gowalla")
    parser.add_argument("--dim", type=int, default=768)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lgcn-step-memory-") as out:
        cfg = config.from_preset(presets.find("gowalla-paper"), [
            "run.device=cpu", f"model.dim={args.dim}", "model.item_init=xavier", f'data.path="{args.data}"',
            f'run.out_dir="{out}"', "eval.sim_pairs=0", "graph.kernel=bag"])
        run = Run(cfg, preset="gowalla-paper")
        run.setup()
        set_up = peak_mb()
        users, pos, neg = run.sampler.epoch(run.generator)
        size = cfg.optim.batch_size
        for k in range(6):
            if k % 2 == 0:
                run.guard.keep(k, k, run.model, run.optimizer, run.schedule)
            run._unchecked.append(run._step(users[k * size:(k + 1) * size], pos[k * size:(k + 1) * size],
                                            neg[k * size:(k + 1) * size]))
        run.cleanup()
    print(json.dumps({"dim": args.dim, "peak_rss_setup_mb": round(set_up), "peak_rss_steps_mb": round(peak_mb())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
