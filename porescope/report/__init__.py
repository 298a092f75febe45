"""The certificate report: document model, Markdown / HTML rendering, offline plots.

Modules, one concept each:

* :mod:`~porescope.report.document`: the blocks a report is made of;
* :mod:`~porescope.report.markdown`, :mod:`~porescope.report.html`: the two renderers;
  :mod:`~porescope.report.output`: the rendered :class:`~porescope.report.output.Report` and
  writing it;
* :mod:`~porescope.report.formatting`: number and text formats of the cells;
* :mod:`~porescope.report.estimator_choice`: which count estimator to trust per porosity band;
* :mod:`~porescope.report.figures`: PNG sizes, downscaling, the training-curve figure;
* :mod:`~porescope.report.params`: :class:`~porescope.report.params.ReportParams` (params group
  ``report``);
* :mod:`~porescope.report.inputs`: reading the pipeline's outputs the report shows;
* :mod:`~porescope.report.certificate`, :mod:`~porescope.report.setup_rows`,
  :mod:`~porescope.report.section_parts`: tables and pieces the sections share;
* :mod:`~porescope.report.sections_pipeline` (:func:`build_report`) and
  :mod:`~porescope.report.sections_measure` (:func:`measure_report`): the two reports;
* :mod:`~porescope.report.offline_html`: DVC plots pages that load nothing from the network.
"""
