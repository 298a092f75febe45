"""Per-image membrane analysis: measurements, truth comparison and distribution figures.

Modules, one concept each:

* :mod:`~porescope.analysis.params`: :class:`AnalyzeParams`, the ``analyze`` params group;
* :mod:`~porescope.analysis.membrane`: :func:`analyse_mask`, everything measured on one mask;
* :mod:`~porescope.analysis.truth`: the exact truth of a synthetic image per estimator;
* :mod:`~porescope.analysis.comparison`: measured against true, error statistics;
* :mod:`~porescope.analysis.figures` and :mod:`~porescope.analysis.plots`: figures;
* :mod:`~porescope.analysis.accuracy`: the predicted test masks against the reference
  (the ``analyze`` stage);
* :mod:`~porescope.analysis.validation`: accuracy on fresh synthetic membranes with exact
  truth (the ``validate`` stage).

The package itself imports nothing: a stage that needs one module loads only that module
(and dvc.yaml declares exactly the modules each stage imports).
"""
