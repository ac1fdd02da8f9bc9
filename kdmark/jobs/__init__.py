"""What a user runs, each on the engine: train and distill (:mod:`~kdmark.jobs.train`), prune
(:mod:`~kdmark.jobs.prune`), evaluate (:mod:`~kdmark.jobs.evaluate`), whole pipelines
(:mod:`~kdmark.jobs.pipeline`) and their report (:mod:`~kdmark.jobs.report`)."""
