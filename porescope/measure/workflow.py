"""Former home of the measure feature, kept so that existing imports keep working.

The feature now lives in modules of one concept each: :mod:`porescope.measure.params`
(:class:`MeasureParams`), :mod:`porescope.measure.segment` (models, resizing, inference),
:mod:`porescope.measure.measurement` (one micrograph) and :mod:`porescope.measure.folder`
(a folder and its outputs). New code imports from those.
"""

from porescope.measure.folder import (  # noqa: F401
    DOC_SUFFIXES,
    check_output_folder,
    list_images,
    render_report,
    run_measure,
    summary_table,
    write_skipped,
)
from porescope.measure.measurement import MeasureResult, measure_micrograph, measure_one  # noqa: F401
from porescope.measure.params import DEFAULT_SEED, MeasureParams, parse_measure_params  # noqa: F401
from porescope.measure.segment import (  # noqa: F401
    load_model_cached,
    model_pixel_size_nm,
    resize_factor,
)

#: the old name of :class:`MeasureParams`
MeasureSettings = MeasureParams
GROUP = "measure"
