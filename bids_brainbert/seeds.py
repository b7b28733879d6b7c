"""Salts that derive the independent random streams of the group analyses from the one ``--random-seed``: each
stream is ``numpy.random.default_rng([seed, SALT])``, so one analysis drawing more or fewer numbers never shifts
another's draws. Each salt is used once; tests/test_steps.py checks they differ."""

DECODING = 5          # decoding: folds, permutations and data-efficiency draws (workflows/decoding.py)
DIMENSIONALITY = 6    # windows drawn per electrode for PCA (workflows/dimensionality.py)
OFFSET_CURVE = 7      # the readout-offset curve of the report, apart from the main decoding draws
POPULATION = 19       # the population model's linear read-out: folds and permutations (workflows/population.py)
FINETUNE_NULL = 23    # the label permutations of fine-tuning's refitted null (analyses/finetune.py)

SALTS = {"DECODING": DECODING, "DIMENSIONALITY": DIMENSIONALITY, "OFFSET_CURVE": OFFSET_CURVE,
         "POPULATION": POPULATION, "FINETUNE_NULL": FINETUNE_NULL}
