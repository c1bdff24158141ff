"""The check's tolerances, each with why. Device and CPU runs of the same fp32 model are not bit-exact: another
backend orders its sums differently and uses other conv algorithms. The fp32 figures below sit a few times above
the float noise measured on the reference fixtures (tests/models/test_reference_fixtures.py: the same model
recomputed with 2 threads and in float64; the float64 gap is the size of fp32 rounding itself) and far below what
real faults give there (wrong BatchNorm eps moves logits by 22, batch statistics in eval by 6.4). Figures measured
on devices belong in docs/, not here.
"""

# Model outputs in head units (xy/stride, log wh, obj/cls logits): float64 gap at most 5.2e-4 -> 4x.
FORWARD = 2e-3
# Loss terms, relative: float64 gap at most 8.4e-6; a device's reductions over thousands of anchors sum in
# another order, so 60x that, still 5 orders below a wrong assignment's effect.
LOSS = 5e-4
# Foreground count and matched boxes are discrete: identical in every fixture recompute.
EXACT = 0.0
# IoU of each positive with its ground truth: float64 gap 5.7e-5 -> about 9x.
ASSIGN_IOU = 5e-4
# Gradients, max abs difference per tensor over that tensor's max abs: float64 gap 8.2e-5 -> 12x.
GRADIENT = 1e-3
# One optimizer or EMA step from identical weights and gradients: elementwise arithmetic, rounding of order 1e-7 of
# the weights; measured as the largest weight difference over the largest change the step made.
STEP = 1e-3
# Decoded boxes after NMS, rows matched (NMS may order ties differently), in pixels: float64 gap 0.024 px -> 2x,
# and decoding here starts from identical head outputs, which leaves only the decode's own rounding.
BOXES_PX = 0.05
# AP@[.5:.95] of the full evaluation: the labels are the CPU's own detections (AP 1 there by construction); float
# noise of FORWARD size can only move detections near the score threshold, which is placed in a gap of the CPU's
# scores; 0.02 is several such detections out of a few hundred, a 3 px shift of every box costs far more.
AP = 0.02

# Mixed precision (fp16/bf16 autocast) against the fp32 CPU reference. Rounding to 2^-11 (fp16) at every layer
# of a random, BatchNorm-calibrated model is amplified to large output errors: CPU fp16 autocast against CPU fp32
# on this fixture came to a few tenths of a head unit, a loss off by about 1e-3 relative, a whole-gradient error of
# about half its norm and an AP50 lower by about a third (figures for docs/). These rows therefore catch the gross
# faults reported for MPS (NaN, a zero or garbage loss or gradient, garbled boxes, AP collapsing to 0), not small
# drifts, which the fp32 rows catch. Provisional: not yet measured on MPS or CUDA.
AMP_FORWARD = 1.0
AMP_LOSS = 2e-2
# a zero gradient has error 1.0 exactly, a NaN one is infinite
AMP_GRADIENT = 0.9
# on AP50 (fp16 box corners move by a fraction of a pixel, which AP at IoU 0.95 cannot absorb); AP 0 gives ~1.0
AMP_AP50 = 0.6

# Training run: every one of the iterations must give a finite loss.
NONFINITE_STEPS = 0
# Memory growth, see memory_watch.growth_rule.
GROWTH_FLOOR_MIB = 64.0
GROWTH_FRACTION = 0.05
