"""Weak supervision: several teachers and labelling functions combined by one label model (stage=weak).

    sources.py      the sources `cfg.weak` names: teacher presets, keyword / regex LFs, a user hook
    labelmodel.py   majority vote, probability averaging, Dawid-Skene EM (pure numpy)
    calibration.py  temperature scaling of a teacher's probabilities, fitted without gold
    noise.py        confident-learning flags of likely wrong labels -> a training weight a row
    summary.py      the LF summary (coverage, overlap, conflict, accuracy) and summary.md
"""
