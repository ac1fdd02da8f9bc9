"""The training engine under every job: one run set-up (:mod:`~kdmark.engine.setup`), one loop
(:mod:`~kdmark.engine.loop`) and the tasks it optimises (:mod:`~kdmark.engine.tasks`)."""
