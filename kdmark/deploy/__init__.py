"""Shipping a model: ONNX export and INT8 (:mod:`~kdmark.deploy.export`), the ``Predictor`` and its face detectors
(:mod:`~kdmark.deploy.predict`, :mod:`~kdmark.deploy.detectors`), ``kdmark predict`` on files
(:mod:`~kdmark.deploy.predict_files`), measurements (:mod:`~kdmark.deploy.bench`) and the offline web page
(:mod:`~kdmark.deploy.web`)."""
