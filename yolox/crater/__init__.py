"""The crater workflow: train YOLOX on impact craters on whatever the machine has.

Modules, each one concept:
- recipe: the from-scratch plan (model size, schedule, warmup, optimizer) and what applies it to an exp
- transforms: the crater augmentations (flips and quarter turns, scale jitter without mosaic)
- exp: CraterExp, the settings the crater exps in exps/crater/ share, and its optimizer choice
- synthetic, synthetic_mosaic: generated crater tiles (COCO layout) and large mosaics with their crater list
- trainer: the Trainer plus loss history and per-epoch throughput
- report: the logged plan, the end-of-run plots, closing lines and run_summary.json
- workflow: build the exp, ensure data, choose the batch, log the plan, train, report
"""
