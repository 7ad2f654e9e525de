"""Write models/<name>.md from the metadata the training script left in models/<name>.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TEXT = {
    "detector": """A small fully convolutional network (separable convolutions, stride-16 context, two upsampling
steps with skip connections) that predicts, at 1/4 resolution, the probability that each cell lies on
a number plate. Connected regions become rotated rectangles (`agent/recognise/detector.py`).
Segmentation rather than anchor boxes: no anchors to tune, any number of plates and plate angle, and a
single sigmoid output that quantises cleanly to int8. Input: 640x384 grey, uint8: any image is
letterboxed whole into it, one pass (a 1280x720 frame is scaled by 0.5, a 4000x3000 photo by 0.128);
tiles of very large frames only with `recogniser.tile` / `recognise --tile`.

Training data: whole simulated scenes (`sim.dataset.scene_samples`): random installations (mount
2.5-9 m, capture distance 6-30 m, character height 11-60 px at 1280x720, roll ±2.5°), all light
conditions, 30 % colour, defocus, JPEG 35-95, occlusion, 10 % foreign plates, two lanes each way;
cropped to 320x192 windows at scale 0.3-1.1 (plates 20-300 px wide), plus distractor text and lamps
drawn in as negatives, horizontal flips, gamma and gain jitter.

Real photographs (since session 9): the train split of the shared `real-detect` set (2,775 photos,
3,4xx plate boxes from Spain, Romania, Open Images and a mixed Kaggle set; `scripts/real_data.py`),
windows cut at the scales the run-time letterbox gives them and up to 2.5x closer (as the second look
sees a plate), masks from the labelled boxes, 40 % of the plates replaced by a rendered UK plate
(`sim.render`) warped into the box and lit, blurred, noised and compressed like the photo around it,
plus light, blur, noise and JPEG jitter; mixed with the simulated windows above. Sources, licences
and attribution: the table below and the section "Data and attribution".""",
    "reader": """A convolutional reader (no recurrent layers, so it runs as plain int8 convolutions under XNNPACK;
three residual blocks, two where strokes become character shapes and one along the plate for context)
that maps a 32x128 grey crop to 32 columns of 38-class probabilities (0-9, A-Z, CTC blank, and
"hidden": characters covered by a tow bar, a bike rack or another vehicle, one mark per covered run).
A read with a hidden mark is incomplete: the decoder never takes it as a UK mark and its confidence is
at most the chance that nothing was covered, so a confident partial read ("X73MMJ" for SX73MMJ behind a
tow bar) is not published.
CTC rather than fixed slots: UK marks have 2 to 7 characters (foreign up to 10) in varying positions,
and CTC needs no per-character boxes. Two-line square plates are cut into halves laid side by side
before reading (`agent/recognise/preprocess.py`). Decoding applies UK syntax from `agent.plates`,
substituting only characters the reader was unsure of; confident non-UK text is reported as
`foreign` (`agent/recognise/decode.py`). At run time each plate is read from two crops, and from
fourteen when those two disagree (`agent/recognise/consensus.py`); a plate that still reads badly is
tried again with the other outlines a closer and a wider look find (`PlateDetector.alternatives`: the
whole of a steep plate the frame's mask gave a piece of, a plate merged with a bright surround).

Training data: simulated plate crops (`sim.dataset.plate_crop`) as a detector would hand them over:
loose margins spanning the detector's measured box errors (crop 1.05-1.45x the plate width and
1.1-1.75x its height, centre off by ~3 %), ±4° rotation, shear, perspective, plates 16-55 px high,
12 % with part of the plate covered (bars from below or above, the edge of a nearer vehicle),
day/IR-night light, gain and gamma errors, glare, defocus and vertical motion blur, resolution loss,
noise, rain streaks, JPEG 30-95,
30 % colour; plate styles with side bands, raised characters, screw caps, borders, dirt and wear, 30 %
off-standard fonts (thin, bold, Hershey) and spacing; 10 % foreign (EU) plates; 4 % non-plate crops
with an empty label. The last stages add plates cut out of whole rendered frames the way the
recogniser cuts them (`--scene-crops`: the outline off by what the detector's is, the run-time crop
margins and shifts, the frame's own blur, exposure and JPEG), which drawn crops only approximate.
The last two stages add the third residual block (starting as nothing, so the reader starts as the one
before) and count three times the crops the starting reader read worst, bar the worst 2 %, which are
mostly past reading (`--hard-weight`): the near misses are what is left to learn.

The reader sees each crop stretched locally (`local_contrast`: each part between its own darkest and
brightest), so characters faded by glare on one side of the plate keep their contrast; readers
trained before that (no `input_contrast` in reader.json) get one stretch for the whole crop.

Real photographs (since session 9, two stages from the shipped reader, `--real`): half of each
epoch's crops are real (`scripts/real_data.py`): the train split of the shared `real-read` set (plate
crops from 35 countries with their text, cut again with the run-time margins, an outline error of a
few per cent and ±4° from their scene where the data has it, else from the crop; read as one or two
lines as the label says), and rendered UK plates composited into the real scenes of `real-detect` at
their labelled boxes (lit, blurred and compressed like the photo around them: real material has 10 UK
crops), with light, blur, noise, JPEG and resolution-loss jitter; the other half the simulated crops
above. A tenth of `real-read`'s train split (by plate) is held out of training for the confidence
calibration (`sim.evaluate_real.held_out`). At run time an outline as square as a two-line plate (aspect
1.6-3.2) is read both ways and the likelier kept.""",
    "outline": """A small regression network (a convolution, six separable convolutions down to 3x8 cells, a dense
layer on the flattened cells so where things are stays the answer) that moves the detector's four
corners onto the plate's edges (`agent/recognise/outline.py`). Input: 40x128 grey, uint8: the frame
straightened along the detector's outline with half the plate's width and its whole height again as
margin, contrast stretched; output: how far each corner should move, in shares of the input's width
and height. The detector's outline comes from the moments of a mask in 4-pixel cells and is off by
about +-4 % of the plate's width at its ends whatever its training; a third of the plates the reader
got wrong read right from an exact outline. It looks twice, the second time from its own first
outline (`outline.PASSES`); a refined outline more than 2.2 times larger or smaller than the one it
started from, or crossed, is not taken.

Training data: plates in whole rendered frames (random installations, light and weather, 640x360 set
in a 1280x720 frame so plates are at the run-time scale; `sim.dataset.random_scenes`), each outlined
by the shipped detector (frame look and closer look: its real errors, tails included), by two
outlines drawn around that one and by two drawn around the labelled one (ends +-5 % of the width,
top and bottom +-10 % of the height, slope, each corner a little); every crop mirrored too. Targets
are the labelled corners, moves clipped at 0.35 of the input. Huber loss on moves scaled by 10.

Real photographs (since session 12, `--real`): the train split's real scenes (real-detect's photos and
real-read's scenes; `real_data.outline_chunk`), each read by the shipped detector and finder with their
closer look; for every labelled plate the outline they give it, one drawn around that, one drawn round
the labelled box and one as loose as real photos' boxes are (`real_data.loosen`: up to 1.5x the width
and 1.9x the height, off centre), each pointing at the labelled box (an axis-aligned box: real labels
have no corners). Light, blur, noise and JPEG jitter. Real photos' detector boxes were a median 1.2x
the plate's width and 1.3x its height, a quarter over 1.6x; the simulator-only refiner made them worse.""",
}


# Said of a reader trained with --real-glyphs (reader.json's real_glyphs), after TEXT.
GLYPH_TEXT = """Real typefaces (`--real-glyphs`): that share of the plates composited into real scenes is set
from the shared set's real character tiles (`scripts/glyph_plates.py`: 3,598 UK Charles Wright tiles cut
from real plates and ~600 each German, French, Dutch, Belgian, Serbian and Brazilian ones) in each
country's layouts, with its spacing, background, side band and rim varied, instead of rendered: real
stroke shapes, weights and wear of the European typefaces, of which the real crops hold a few hundred
plates."""


# Stages after the residual blocks were added: seed, epochs, lr, further options, work dir, and the
# commit whose scripts it needs (10d89e5: one contrast stretch for the whole crop; a8a88cb: local
# contrast, before --hard-weight; 3c65c56: the third residual block). The final stage, from
# models/reader.json, runs on the current ones.
_WEIGHTED = "--conditions day,overcast,dusk,rain,night,night,glare,glare,night_rain,night_rain"
LATER_STAGES = [(5, 8, 5e-4, "", "reader-wide", "10d89e5"),
                (5, 4, 3e-4, "--train-count 100000 --scene-crops 40000", "reader-scenes", "10d89e5"),
                (6, 4, 2e-4, f"--train-count 60000 --scene-crops 80000 {_WEIGHTED}", "reader-local", "a8a88cb"),
                (7, 3, 2e-4, f"--train-count 60000 --scene-crops 60000 {_WEIGHTED}", "reader-scenes-2", "a8a88cb"),
                (8, 4, 3e-4, f"--train-count 60000 --scene-crops 100000 {_WEIGHTED} --hard-weight 3", "reader-deeper",
                 "3c65c56")]


# The shipped reader's last stage: later scripts take each epoch's order from the seed (for checkpoints
# within an epoch), so they train an equally good reader but not the same bytes.
FINAL_STAGE_COMMIT = "4e2aff0"


def _stage(seed: int, epochs: int, lr: float, opts: str, init: str, work: str, final: bool) -> str:
    opts = f" {opts}" if opts else ""
    out = "" if final else f" --out train-runs/{work}/models"
    note = " (writes models/reader.tflite and reader.json)" if final else ""
    return (f"`python scripts/train_reader.py --seed {seed} --epochs {epochs} --lr {lr}{opts} --init-from"
            f" train-runs/{init}/ckpt.weights.h5 --work train-runs/{work}{out}`{note}")


def _final_options(meta: dict) -> str:
    scenes, found = int(meta.get("scene_crops", 0)), int(meta.get("detector_crops", 0))
    opts = [f"--train-count {meta['train_samples'] - scenes - found}"] if scenes or found else []
    opts += [f"--scene-crops {scenes}"] if scenes else []
    opts += [f"--detector-crops {found}"] if found else []
    if meta.get("conditions") not in (None, "all equally"):
        opts.append(f"--conditions {meta['conditions']}")
    if meta.get("hard_weight", 1) != 1:
        opts.append(f"--hard-weight {meta['hard_weight']:g}")
    return " ".join(opts)


def _write(name: str, lines: list[str], steps: list[str]) -> None:
    """The card with numbered reproduce steps."""
    lines = [*lines, "", "Reproduce (needs `pip install -e '.[train]'`):", "",
             *(f"{i}. {t}" for i, t in enumerate(steps, 1))]
    (ROOT / "models" / f"{name}.md").write_text("\n".join(lines) + "\n")


def main(name: str) -> None:
    meta = json.loads((ROOT / "models" / f"{name}.json").read_text())
    text = f"{TEXT[name]}\n\n{GLYPH_TEXT}" if name == "reader" and meta.get("real_glyphs") else TEXT[name]
    lines = [f"# Model card: {name}", "", text, "", "| item | value |", "| --- | --- |"]
    for k, v in meta.items():
        lines.append(f"| {k} | {v} |")
    extra = ROOT / "models" / f"{name}.eval.md"
    if extra.exists():
        lines += ["", extra.read_text().strip()]
    cmd = f"python scripts/train_{name}.py --seed {meta['seed']}"
    if name == "detector" and meta.get("epochs", 10) > 10:  # trained to 10, then resumed to the total
        cmd = f"{cmd} --epochs 10 && {cmd} --epochs {meta['epochs']}"
    if name == "reader" and meta.get("real_glyphs"):  # session 13: two stages from the session 9 reader
        steps = [
            "the reader shipped at commit e4b1402 (its own training chain is in that commit's models/reader.md): "
            "`git checkout e4b1402 -- models` into a folder DIR's models",
            "`python scripts/train_reader.py --seed 41 --train-count 30000 --val-count 3000 --epochs 2 --lr 0.0002 "
            "--init-shipped --out DIR --work train-runs/reader-glyph --real ../shared/data --real-count 40000 "
            "--real-glyphs 0.5` (982 s on 2 cores beside the test suite, 413 s of it making the crops)",
            f"`python scripts/train_reader.py --seed {meta['seed']} --train-count {meta['train_samples']} "
            f"--val-count 3000 --epochs {meta['schedule_epochs']} --lr {meta['lr']} --init-from "
            "train-runs/reader-glyph/ckpt.weights.h5 --work train-runs/reader-glyph2 --real ../shared/data "
            f"--real-count {meta['real_count']} --real-glyphs {meta['real_glyphs']}` with the first stage's "
            "chunk files linked into train-runs/reader-glyph2 (chunks are deterministic in seed and number: "
            f"only the 30,000 more simulated crops are made; {meta['train_wall_s']} s), then copy "
            "reader.tflite and reader.json into models/. The first stage's crops were made under OpenCV 5.1, "
            "the second stage's 30,000 more simulated ones under 4.14 (the machine's install changed between "
            "them); every figure in this card is measured under 5.1, which pyproject.toml now requires",
            "`python scripts/fit_confidence.py` (models/confidence.json)",
        ]
        _write(name, lines, steps)
        return
    if name == "reader" and meta.get("real_count"):  # real-photo stages from the reader shipped before them
        steps = [
            "the reader shipped at commit 441bc90 (its own training chain is in that commit's models/reader.md): "
            "`git checkout 441bc90 -- models` into a folder DIR's models",
            "with the scripts of commit f7c4a0f: `python scripts/train_reader.py --seed 21 --train-count 50000 "
            "--real ../shared/data --real-count 50000 --epochs 3 --lr 5e-4 --init-shipped --out DIR` "
            "(2,537 s on 2 cores shared with the detector's training, incl. ~11 min making the real crops)",
            f"with the scripts of commit a0a23dd: `python scripts/train_reader.py --seed {meta['seed']} "
            f"--train-count 50000 --real ../shared/data --real-count {meta['real_count']} --epochs "
            f"{meta['schedule_epochs']} --lr {meta['lr']} --init-from train-runs/reader/ckpt.weights.h5 --work "
            f"train-runs/reader2` (writes models/reader.tflite and reader.json; {meta['train_wall_s']} s, incl. "
            "~12 min making the real crops, beside the detector's training)",
            "with the scripts of session 14 (commit 35b5ffa or later): `python scripts/fit_confidence.py --real "
            "../shared/data` (models/confidence.json: 6,000 simulated scenes and the real reads, weighted by "
            "group; 785 s)",
        ]
        _write(name, lines, steps)
        return
    if name == "reader" and meta.get("init_from"):  # fine-tuned in stages from the first reader (37 classes)
        steps = [
            "with the scripts of commit 23a5cb4 (before the hidden class; `git checkout 23a5cb4 -- agent sim"
            " scripts`): `python scripts/train_reader.py --seed 1 --epochs 10`, then `... --seed 1 --epochs 16`"
            " interrupted after the log says `epoch 14 done` (later scripts have `--stop-after 14`)",
            "with the scripts of commit 69e6f58 (before the residual blocks): `python scripts/train_reader.py"
            " --seed 3 --epochs 8 --lr 1e-3 --init-from train-runs/reader/ckpt.weights.h5 --work"
            " train-runs/reader-occluded`, then `python scripts/train_reader.py --seed 4 --epochs 6 --lr 5e-4"
            " --init-from train-runs/reader-occluded/ckpt.weights.h5 --work train-runs/reader-occluded-2`",
        ]
        prev = "reader-occluded-2"
        for seed, epochs, lr, opts, work, commit in LATER_STAGES:
            cmd = _stage(seed, epochs, lr, opts, prev, work, final=False)
            steps.append(f"with the scripts of commit {commit}: {cmd}")
            prev = work
        final = _stage(meta["seed"], meta["schedule_epochs"], meta["lr"], _final_options(meta), prev, "reader-final",
                       final=True)
        steps.append(f"with the scripts of commit {FINAL_STAGE_COMMIT}: {final}")
        steps.append("`python scripts/fit_confidence.py` (models/confidence.json)")
        _write(name, lines, steps)
        return
    if name == "outline" and meta.get("real_count"):  # two stages from the simulator-only refiner
        steps = [
            "the simulator-only refiner of commit 3a1879b: `git checkout 3a1879b -- models` into a folder DIR's "
            "models (its own run: `python scripts/train_outline.py --seed 5`, as that commit's card says)",
            "`python scripts/train_outline.py --seed 6 --train-count 30000 --val-count 3000 --real ../shared/data "
            "--real-count 30000 --epochs 4 --lr 3e-4 --init-shipped --work train-runs/outline-real --out DIR` "
            "(1,251 s on 2 cores, making the data included)",
            f"`python scripts/train_outline.py --seed {meta['seed']} --train-count 60000 --val-count 3000 --real "
            f"../shared/data --real-count {meta['real_count']} --epochs {meta['epochs']} --lr {meta['lr']} "
            "--init-from train-runs/outline-real/ckpt.weights.h5 --work train-runs/outline-real2 --out DIR` "
            f"({meta['train_wall_s']} s with the first stage's chunk files linked into train-runs/outline-real2: "
            "chunks are deterministic in seed and number, so only the 30,000 more simulated outlines were made), "
            "then copy DIR/outline.tflite and outline.json into models/",
        ]
        _write(name, lines, steps)
        return
    lines += ["", f"Reproduce: `{cmd}` (needs `pip install -e '.[train]'`)."]
    (ROOT / "models" / f"{name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    for n in sys.argv[1:] or ["detector", "outline", "reader"]:
        main(n)
