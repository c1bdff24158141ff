"""The crater workflow: train YOLOX on impact craters on whatever the machine has.

Modules, each one concept:
- recipe: the from-scratch plan (model size, schedule, warmup, optimizer) and what applies it to an exp
- fine_tune: the plan when training starts from pretrained weights
- transforms: the crater augmentations (flips and quarter turns, scale jitter without mosaic)
- exp: CraterExp, the settings the crater exps in exps/crater/ share, and its optimizer choice
- completeness: the warning when training scales show the model craters its catalogue does not label
- trainer: the Trainer plus loss history and per-epoch throughput
- report: the logged plan, the end-of-run plots, closing lines and run_summary.json
- workflow: build the exp, ensure data, choose the batch, log the plan, train, report

Generated crater data lives in yolox.synthetic; catalogues, tiles from a database and projections in
yolox.crater_catalog.
"""
